"""Server settings: one frozen object read from environment variables (prefix ``FHIR_``).

Every setting is listed in the README with its default. CLI flags override the environment by building
a settings object with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"setting {name}={raw!r} is not a whole number") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """What the server and CLI need to know; see the README's settings table."""

    host: str = field(default_factory=lambda: _env("FHIR_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("FHIR_PORT", 8080))
    # Public base URL used in Location headers and Bundle links; derived from host/port when empty.
    base_url: str = field(default_factory=lambda: _env("FHIR_BASE_URL", ""))
    data_dir: Path = field(default_factory=lambda: Path(_env("FHIR_DATA_DIR", "./data")))
    mongo_uri: str = field(default_factory=lambda: _env("FHIR_MONGO_URI", ""))
    mongo_db: str = field(default_factory=lambda: _env("FHIR_MONGO_DB", "fhir"))
    # Requests larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = field(default_factory=lambda: _env_int("FHIR_MAX_BODY_BYTES", 10 * 1024 * 1024))
    default_page_size: int = field(default_factory=lambda: _env_int("FHIR_DEFAULT_PAGE_SIZE", 50))
    max_page_size: int = field(default_factory=lambda: _env_int("FHIR_MAX_PAGE_SIZE", 1000))
    # How long a search page link (next/previous) keeps working, in seconds.
    page_link_ttl: int = field(default_factory=lambda: _env_int("FHIR_PAGE_LINK_TTL", 3600))
    # Most resources a chained parameter or _has may match before the search is refused as too costly.
    max_chain_matches: int = field(default_factory=lambda: _env_int("FHIR_MAX_CHAIN_MATCHES", 10_000))
    # Entries accepted in one batch/transaction Bundle.
    max_bundle_entries: int = field(default_factory=lambda: _env_int("FHIR_MAX_BUNDLE_ENTRIES", 1000))
    # WiredTiger cache of the embedded database.
    embedded_cache_size: str = field(default_factory=lambda: _env("FHIR_EMBEDDED_CACHE_SIZE", "1G"))
    log_level: str = field(default_factory=lambda: _env("FHIR_LOG_LEVEL", "INFO"))
    access_log: bool = field(default_factory=lambda: _env_bool("FHIR_ACCESS_LOG", True))

    @property
    def fhir_base(self) -> str:
        """The FHIR base URL, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.port}/fhir"
