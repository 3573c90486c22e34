"""Embedded database: start SecantusDB (a MongoDB-wire server on WiredTiger) as a child process.

Used only when no ``FHIR_MONGO_URI`` is set. The launcher records the running database's address in
``<data-dir>/embedded.json`` so that a CLI command run while the server is up reaches the same database
instead of trying to open the same files a second time. Application code never imports SecantusDB: it
is reached over TCP like any ``mongod``.

The process that starts the database stops it when it is done. So if a CLI command starts it and a
server then starts while the command runs, the server loses its database when the command exits: start
the server first (or use ``FHIR_MONGO_URI``) when both run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from fhir_server.config import Settings

log = logging.getLogger("fhir_server.db")

_ADDRESS_FILE = "embedded.json"
_LOCK_FILE = "embedded.lock"
_START_TIMEOUT_S = 60.0
# SecantusDB takes a few seconds to flush and close WiredTiger after SIGTERM.
_STOP_TIMEOUT_S = 60.0


@dataclass
class Database:
    """Where the database is, and the process we started for it (if we did)."""

    uri: str
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _secantus_command() -> str:
    beside = Path(sys.executable).parent / "secantusd-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if not found:
        raise SystemExit("secantusd-py not found: install the SecantusDB package or set FHIR_MONGO_URI")
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def _ping(uri: str, timeout_ms: int = 1000) -> bool:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        await client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await client.close()


def _uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


async def _running_embedded(data_dir: Path) -> str | None:
    """The URI of an embedded database already serving ``data_dir``, if one answers."""
    path = data_dir / _ADDRESS_FILE
    try:
        info = json.loads(path.read_text())
        uri, pid = str(info["uri"]), int(info["pid"])
    except (OSError, ValueError, KeyError):
        return None
    if _pid_alive(pid) and await _ping(uri):
        return uri
    return None


def _start_process(data_dir: Path, settings: Settings) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    db_path = data_dir / "db"
    db_path.mkdir(parents=True, exist_ok=True)
    log_file = (data_dir / "secantusd.log").open("ab")
    cmd = [
        _secantus_command(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(db_path),
        "--sync-on-commit",
        "--cache-size",
        settings.embedded_cache_size,
        "--log-level",
        "WARNING",
    ]
    # A session of its own: Ctrl-C in the terminal reaches the server, which then stops the database
    # cleanly, instead of killing the database under a server that is still answering.
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    log_file.close()
    return proc, port


async def start_database(settings: Settings) -> Database:
    """Reach the configured database, starting the embedded one if needed.

    With ``FHIR_MONGO_URI`` set nothing is started. Otherwise an embedded database already running on the
    data directory is reused, or a new one is started and recorded there.
    """
    if settings.mongo_uri:
        return Database(uri=settings.mongo_uri)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / _LOCK_FILE).open("w") as lock:
        # Serialises two processes starting at the same moment on the same data directory.
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            uri = await _running_embedded(data_dir)
            if uri:
                log.info("using the embedded database already running at %s", uri)
                return Database(uri=uri)
            proc, port = _start_process(data_dir, settings)
            uri = _uri(port)
            deadline = time.monotonic() + _START_TIMEOUT_S
            # Wait for the port before the first client: a client's monitor keeps retrying otherwise.
            while not _port_open(port) or not await _ping(uri, timeout_ms=2000):
                if proc.poll() is not None:
                    raise SystemExit(
                        f"the embedded database exited with code {proc.returncode}; "
                        f"see {data_dir / 'secantusd.log'}"
                    )
                if time.monotonic() > deadline:
                    _terminate(proc)
                    raise SystemExit(f"the embedded database did not answer within {_START_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.1)
            (data_dir / _ADDRESS_FILE).write_text(json.dumps({"uri": uri, "pid": proc.pid}))
            log.info("embedded database started at %s (data in %s)", uri, data_dir / "db")
            return Database(uri=uri, process=proc, data_dir=data_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("the embedded database did not stop within %.0f s; killing it", _STOP_TIMEOUT_S)
        proc.kill()
        proc.wait()


async def stop_database(db: Database) -> None:
    """Stop the embedded database if this process started it; otherwise do nothing."""
    if db.process is None:
        return
    if db.data_dir is not None:
        with contextlib.suppress(OSError):
            (db.data_dir / _ADDRESS_FILE).unlink()
    await asyncio.to_thread(_terminate, db.process)
    log.info("embedded database stopped")


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The database for the lifetime of a block: started if needed, stopped if we started it."""
    db = await start_database(settings)
    try:
        yield db
    finally:
        await stop_database(db)
