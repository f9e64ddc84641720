"""Stored files' bytes on disk, beside the journal: `FileStore`.

Plan (the records are `domain.storage`'s; this module holds only bytes):

- Where: `DATA_DIR/storage/<storageId>` holds a stored file's bytes, exactly as uploaded;
  `DATA_DIR/storage/incoming/` holds uploads in progress (`<storageId>.<random>.part`).
- An upload (`Incoming`): created in `incoming/`, written chunk by chunk (the caller never
  holds the whole body), its sha256 computed as it goes; `finish()` fsyncs the file, renames
  it to its final name and fsyncs the directory. Only then does the server journal the file's
  record (`FileStored`, through the engine), and only once that is durable does it answer 200.
- Crash states, and what start-up (`reconcile`) does with each:
  - killed while receiving: a `.part` in `incoming/` -> removed;
  - killed after the rename, before the record is durable: a final file the journal does not
    record -> removed (the client was never answered, the URL is still unused);
  - killed after the record is durable: the file is recorded and complete -> kept.
  So after a start there is, for each storage id, a complete recorded file or nothing.
- Deletion: `storage:delete` and an erasure that reaches a file journal `FileDeleted`; the
  engine calls `remove` for each such event as its batch is committed, before any of the
  batch's callers is answered, so the bytes are gone when the mutation returns. A crash between
  the commit and the unlink leaves a file no longer recorded: `reconcile` removes it at start.
- Checks (`check`): each recorded file's size and sha256 against its record, for snapshots and
  `turnstile replay --verify`; `copy_into` copies the files recorded at one journal position
  into another data dir (`replay --until-seq/--until-time --into`).

Everything here blocks (file I/O): callers on the event loop run it in a worker thread, except
`remove`, a single unlink.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

STORAGE_DIR = "storage"
INCOMING_DIR = "incoming"
#: What the download path reads at once.
READ_CHUNK = 1024 * 1024
#: Most buffers one `writev` is given (the system's limit is higher: 1024 on Linux).
MAX_PIECES = 64


def storage_dir(data_dir: Path) -> Path:
    return data_dir / STORAGE_DIR


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


@attrs.frozen(kw_only=True)
class FileProblem:
    """A recorded file that is not as recorded: `missing`, `size` (another size) or `sha256`
    (same size, other bytes)."""

    storage_id: str
    problem: str
    detail: str

    def describe(self) -> str:
        return f"stored file {self.storage_id}: {self.detail}"


class Incoming:
    """One upload being written to `incoming/`. Not thread-safe: one writer at a time."""

    def __init__(self, store: FileStore, storage_id: str) -> None:
        self.store = store
        self.storage_id = storage_id
        self.size = 0
        self._hash = hashlib.sha256()
        incoming = store.root / INCOMING_DIR
        incoming.mkdir(parents=True, exist_ok=True)
        self.path = incoming / f"{storage_id}.{os.urandom(6).hex()}.part"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._hash.update(data)
        self.size += len(data)

    def write_all(self, pieces: Sequence[bytes | memoryview]) -> None:
        """Write `pieces` in order (one `writev` where it takes them all, no joined copy)."""
        assert self._fd is not None
        if len(pieces) > MAX_PIECES:  # many small pieces (a slow client): one buffer
            pieces = [b"".join(pieces)]
        written = os.writev(self._fd, pieces)
        total = sum(len(piece) for piece in pieces)
        if written < total:  # a short write: the rest one by one
            rest = b"".join(pieces)[written:]
            view = memoryview(rest)
            while view:
                view = view[os.write(self._fd, view) :]
        for piece in pieces:
            self._hash.update(piece)
        self.size += total

    @property
    def sha256(self) -> str:
        """The sha256 of what was written, base64."""
        return sha256_b64(self._hash.digest())

    def finish(self) -> Path:
        """Make the upload durable under its final name: fsync, rename, fsync the directory."""
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.store.path(self.storage_id)
        os.replace(self.path, final)
        _fsync_dir(self.store.root)
        return final

    def abort(self) -> None:
        """Remove what was written (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


class FileStore:
    """The bytes of one data dir's stored files (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = storage_dir(data_dir)

    def path(self, storage_id: str) -> Path:
        if not storage_id or "/" in storage_id or storage_id.startswith("."):
            raise ValueError(f"not a storage id: {storage_id!r}")
        return self.root / storage_id

    def begin(self, storage_id: str) -> Incoming:
        """Start writing an upload for `storage_id` (in `incoming/`, invisible until
        `Incoming.finish`)."""
        return Incoming(self, storage_id)

    def remove(self, storage_id: str) -> bool:
        """Unlink a file's bytes; whether there were any."""
        try:
            self.path(storage_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def open(self, storage_id: str) -> int | None:
        """A read-only descriptor of a file's bytes (the caller closes it), None if absent."""
        try:
            return os.open(self.path(storage_id), os.O_RDONLY)
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        """The storage ids with bytes on disk."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_file())

    def reconcile(self, recorded: Mapping[str, Any]) -> list[str]:
        """At start: remove every upload in progress and every file the journal does not
        record as stored (`recorded`: storage id -> record). The names removed."""
        removed: list[str] = []
        incoming = self.root / INCOMING_DIR
        if incoming.is_dir():
            for part in sorted(incoming.iterdir()):
                part.unlink(missing_ok=True)
                removed.append(f"{INCOMING_DIR}/{part.name}")
        for name in self.names():
            if name not in recorded:
                self.remove(name)
                removed.append(name)
        if removed:
            _fsync_dir(self.root)
        return removed

    def check(self, recorded: Mapping[str, Any]) -> list[FileProblem]:
        """Each recorded file (storage id -> a record with `size` and `sha256`) against its
        bytes on disk: the problems, in storage id order."""
        problems: list[FileProblem] = []
        for storage_id in sorted(recorded):
            record = recorded[storage_id]
            path = self.path(storage_id)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                problems.append(
                    FileProblem(
                        storage_id=storage_id,
                        problem="missing",
                        detail=(f"recorded ({record.size} bytes) but missing from {path}"),
                    )
                )
                continue
            if size != record.size:
                problems.append(
                    FileProblem(
                        storage_id=storage_id,
                        problem="size",
                        detail=(f"{path} holds {size} bytes, recorded {record.size}"),
                    )
                )
                continue
            digest = hashlib.sha256()
            with path.open("rb") as file:
                while chunk := file.read(READ_CHUNK):
                    digest.update(chunk)
            if sha256_b64(digest.digest()) != record.sha256:
                problems.append(
                    FileProblem(
                        storage_id=storage_id,
                        problem="sha256",
                        detail=(f"{path} does not match its recorded sha256 {record.sha256}"),
                    )
                )
        return problems

    def copy_into(self, target: FileStore, recorded: Mapping[str, Any]) -> list[str]:
        """Copy the recorded files into `target` (durably: each file and the directory
        fsynced); the storage ids whose bytes are no longer here (deleted since)."""
        missing: list[str] = []
        target.root.mkdir(parents=True, exist_ok=True)
        for storage_id in sorted(recorded):
            source = self.path(storage_id)
            if not source.is_file():
                missing.append(storage_id)
                continue
            destination = target.path(storage_id)
            shutil.copyfile(source, destination)
            fd = os.open(destination, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(target.root)
        return missing


__all__ = ["FileProblem", "FileStore", "Incoming", "sha256_b64", "storage_dir"]
