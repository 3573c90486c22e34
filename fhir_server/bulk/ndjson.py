"""NDJSON output files of an export: one resource per line, a new file before one would pass the size cap.

A file is *finished* when it is flushed, synced to disk and closed; only finished files are recorded in
the job (fhir_server.bulk.jobs), so a worker that dies leaves at most one unfinished file behind, which
the next worker ignores and the job's clean-up deletes. File names carry the worker's attempt number,
so a worker that lost its lease can never write into a file another worker owns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class OutputFile:
    """A finished NDJSON file: its name in the job's folder, how many lines and bytes it holds."""

    name: str
    count: int
    size: int

    def to_doc(self) -> dict[str, object]:
        return {"name": self.name, "count": self.count, "size": self.size}


class NdjsonWriter:
    """Writes lines of one output kind (a resource type, or deletions) into numbered files in ``folder``.

    ``next_number`` is where a resumed part continues; ``max_bytes`` caps each file (a single line
    larger than the cap still gets a file of its own: lines are never split).
    """

    def __init__(self, folder: Path, stem: str, attempt: int, max_bytes: int, next_number: int = 1) -> None:
        self.folder = folder
        self.stem = stem
        self.attempt = attempt
        self.max_bytes = max(1, max_bytes)
        self.number = next_number
        self._file: IO[bytes] | None = None
        self._name = ""
        self._count = 0
        self._size = 0

    @property
    def pending(self) -> int:
        """Lines written to the unfinished file."""
        return self._count

    def fits(self, line: bytes) -> bool:
        """Whether ``line`` (with its newline) still fits in the current file."""
        return self._count == 0 or self._size + len(line) + 1 <= self.max_bytes

    def write(self, line: bytes) -> None:
        """Append one line (without its newline) to the current file, opening it if needed."""
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._name = f"{self.stem}.{self.number:04d}.a{self.attempt}.ndjson"
            self._file = open(self.folder / self._name, "wb", buffering=_BUFFER)  # noqa: SIM115
        self._file.write(line)
        self._file.write(b"\n")
        self._count += 1
        self._size += len(line) + 1

    def finish(self) -> OutputFile | None:
        """Close the current file durably and return it (None when nothing was written to it)."""
        if self._file is None:
            return None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        done = OutputFile(self._name, self._count, self._size)
        self._file, self._count, self._size = None, 0, 0
        self.number += 1
        return done

    def abandon(self) -> None:
        """Close and delete the unfinished file (the job was cancelled or the lease lost)."""
        if self._file is not None:
            self._file.close()
            (self.folder / self._name).unlink(missing_ok=True)
            self._file, self._count, self._size = None, 0, 0


def file_number(name: str) -> int:
    """The sequence number in a file name made by :class:`NdjsonWriter`."""
    return int(name.split(".")[-3])
