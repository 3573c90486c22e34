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
    # SMART authorization. Off only with `serve --insecure-no-auth` (or FHIR_AUTH=false), for experiments.
    auth: bool = field(default_factory=lambda: _env_bool("FHIR_AUTH", True))
    # The token issuer (`iss`); the FHIR base URL when empty.
    issuer: str = field(default_factory=lambda: _env("FHIR_ISSUER", ""))
    access_token_ttl: int = field(default_factory=lambda: _env_int("FHIR_ACCESS_TOKEN_TTL", 3600))
    # offline_access refresh tokens; online_access ones live as long as the login session.
    refresh_token_ttl: int = field(default_factory=lambda: _env_int("FHIR_REFRESH_TOKEN_TTL", 90 * 86400))
    session_ttl: int = field(default_factory=lambda: _env_int("FHIR_SESSION_TTL", 8 * 3600))
    # A new signing key is made when the newest is older than this; older keys stay published a while.
    key_rotation_days: int = field(default_factory=lambda: _env_int("FHIR_KEY_ROTATION_DAYS", 30))
    # How often expired sessions, codes, refresh tokens and revocations are deleted, in seconds.
    purge_interval: int = field(default_factory=lambda: _env_int("FHIR_PURGE_INTERVAL", 600))
    # Upstream OpenID provider of professionals (e.g. Pro Santé Connect); federation is off when empty.
    upstream_issuer: str = field(default_factory=lambda: _env("FHIR_UPSTREAM_ISSUER", ""))
    # Name shown on the login page's "log in with ..." link.
    upstream_name: str = field(default_factory=lambda: _env("FHIR_UPSTREAM_NAME", "Pro Santé Connect"))
    upstream_client_id: str = field(default_factory=lambda: _env("FHIR_UPSTREAM_CLIENT_ID", ""))
    # The client secret at the upstream provider (environment only, never a CLI flag).
    upstream_client_secret: str = field(default_factory=lambda: _env("FHIR_UPSTREAM_CLIENT_SECRET", ""))
    upstream_scope: str = field(default_factory=lambda: _env("FHIR_UPSTREAM_SCOPE", "openid"))
    # JSON object: our claim name -> dotted path in the upstream id_token/userinfo claims ("rpps" required).
    upstream_claims: str = field(default_factory=lambda: _env("FHIR_UPSTREAM_CLAIMS", '{"rpps": "rpps"}'))
    # Years a closed DMP is kept (and may be reopened) before `fhir-server purge-closed` removes it.
    dmp_retention_years: int = field(default_factory=lambda: _env_int("FHIR_DMP_RETENTION_YEARS", 10))
    # Patient/$summary: how far back pharmacy reimbursements count as current medication, and acts as
    # recent care (months); which document types it shows the latest one of (LOINC, comma-separated).
    summary_medication_months: int = field(
        default_factory=lambda: _env_int("FHIR_SUMMARY_MEDICATION_MONTHS", 6)
    )
    summary_act_months: int = field(default_factory=lambda: _env_int("FHIR_SUMMARY_ACT_MONTHS", 12))
    summary_document_types: str = field(
        default_factory=lambda: _env(
            "FHIR_SUMMARY_DOCUMENT_TYPES", "60591-5,11490-0,11502-2,18748-4,11488-4,15507-7,34874-8,11526-1"
        )
    )
    # Patient/$prior-exams: how many months back it looks when the request gives no `months`.
    prior_exams_months: int = field(default_factory=lambda: _env_int("FHIR_PRIOR_EXAMS_MONTHS", 24))
    # How many months of staged reimbursements a newly opened DMP receives (DOMAIN.md: 12, later 24).
    reimbursement_history_months: int = field(
        default_factory=lambda: _env_int("FHIR_REIMBURSEMENT_HISTORY_MONTHS", 12)
    )
    # Bulk export ($export): where the NDJSON files go (the data directory's exports/ when empty).
    export_dir: str = field(default_factory=lambda: _env("FHIR_EXPORT_DIR", ""))
    # An output file is closed and a new one started before it would grow past this size.
    export_file_max_bytes: int = field(
        default_factory=lambda: _env_int("FHIR_EXPORT_FILE_MAX_BYTES", 256 * 1024 * 1024)
    )
    # How long a finished export's files stay downloadable, in seconds (then they are deleted).
    export_ttl: int = field(default_factory=lambda: _env_int("FHIR_EXPORT_TTL", 24 * 3600))
    # Exports one client may have queued or running at once; one more gets 429.
    export_max_jobs_per_client: int = field(
        default_factory=lambda: _env_int("FHIR_EXPORT_MAX_JOBS_PER_CLIENT", 2)
    )
    # Export workers the server runs itself (0: only `fhir-server export-worker` processes do the work).
    export_workers: int = field(default_factory=lambda: _env_int("FHIR_EXPORT_WORKERS", 1))
    # A worker holds a job for this many seconds at a time and renews it while it works; a job whose
    # worker died is taken over by another once the lease has run out.
    export_lease: int = field(default_factory=lambda: _env_int("FHIR_EXPORT_LEASE", 30))
    # The HMAC key of research pseudonyms; when empty one is generated once and kept in MongoDB.
    pseudonym_secret: str = field(default_factory=lambda: _env("FHIR_PSEUDONYM_SECRET", ""))
    # The folder of the habilitation matrix (habilitations.json and its schema) and code systems.
    terminology_dir: Path = field(
        default_factory=lambda: Path(
            _env("FHIR_TERMINOLOGY_DIR", str(Path(__file__).resolve().parents[1] / "terminology"))
        )
    )

    # The folder of the DMP StructureDefinitions (profiles/).
    profiles_dir: Path = field(
        default_factory=lambda: Path(
            _env("FHIR_PROFILES_DIR", str(Path(__file__).resolve().parents[1] / "profiles"))
        )
    )
    # Apply the DMP profile of a type in full to every write, not only to resources claiming it.
    profiles_enforced: bool = field(default_factory=lambda: _env_bool("FHIR_PROFILES_ENFORCED", False))

    @property
    def fhir_base(self) -> str:
        """The FHIR base URL, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.port}/fhir"

    @property
    def export_path(self) -> Path:
        """Where export files are written."""
        return Path(self.export_dir) if self.export_dir else self.data_dir / "exports"

    @property
    def token_issuer(self) -> str:
        """The ``iss`` of the tokens this server signs."""
        return self.issuer.rstrip("/") if self.issuer else self.fhir_base
