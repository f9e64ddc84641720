"""Snapshot files: the state of every aggregate and read model at one journal position.

A snapshot is a SQLite file `snapshot-<seq>.db` in the snapshot dir, written under a temporary
name, fsynced, then renamed, so a crash mid-write leaves no file that looks finished. Each
state row and each read-model blob carries a CRC-32; `meta` records the format, the journal
position `seq` and `complete = 1` as the last write.

Trust rules: a file is *valid* only if it opens, passes `PRAGMA quick_check`, has the current
format and `complete = 1`. `newest_valid()` skips (and reports) any file that is not; a state
row whose checksum fails on read raises `DamagedSnapshot`, and the caller rebuilds that stream
from the journal instead.

This package knows the files only: it imports nothing from the engine. Folding the journal
into the states a snapshot holds is the engine's (engine/snapshotting.py), which writes them
through `SnapshotWriter`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

log = logging.getLogger("turnstile.snapshots")

FORMAT_VERSION = 1
SNAPSHOT_DIR = "snapshots"
_NAME = re.compile(r"^snapshot-(\d{16})\.db$")


class DamagedSnapshot(Exception):
    pass


@attrs.frozen
class StateRow:
    stream: str
    version: int
    payload: bytes


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOT_DIR


def file_name(seq: int) -> str:
    return f"snapshot-{seq:016d}.db"


def list_files(directory: Path) -> list[tuple[int, Path]]:
    """Finished snapshot files, newest first."""
    if not directory.exists():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


class Snapshot:
    """A valid snapshot opened read-only. Use from one thread; `close()` when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection, seq: int) -> None:
        self.path = path
        self.seq = seq
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> Snapshot:
        """Open and validate; raise `DamagedSnapshot` if the file cannot be trusted."""
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise DamagedSnapshot(f"{path.name}: cannot open: {exc}") from None
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise DamagedSnapshot(f"{path.name}: quick_check says {check}")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != str(FORMAT_VERSION) or meta.get("complete") != "1":
                raise DamagedSnapshot(f"{path.name}: unfinished or of another format")
            seq = int(meta["seq"])
        except (sqlite3.Error, KeyError, ValueError) as exc:
            conn.close()
            raise DamagedSnapshot(f"{path.name}: {exc}") from None
        except DamagedSnapshot:
            conn.close()
            raise
        return cls(path, conn, seq)

    def close(self) -> None:
        self._conn.close()

    def state(self, stream: str) -> StateRow | None:
        found = self._conn.execute(
            "SELECT version, payload, crc FROM states WHERE stream = ?", (stream,)
        ).fetchone()
        if found is None:
            return None
        version, payload, crc = found
        if zlib.crc32(payload) != crc:
            raise DamagedSnapshot(f"{self.path.name}: state of {stream} fails its checksum")
        return StateRow(stream, version, payload)

    def states(self) -> Iterable[StateRow]:
        for stream, version, payload, crc in self._conn.execute(
            "SELECT stream, version, payload, crc FROM states ORDER BY stream"
        ):
            if zlib.crc32(payload) != crc:
                raise DamagedSnapshot(f"{self.path.name}: state of {stream} fails its checksum")
            yield StateRow(stream, version, payload)

    def read_model(self, name: str) -> bytes | None:
        """One read model's payload (None if the file holds none of that name)."""
        found = self._conn.execute(
            "SELECT payload, crc FROM read_models WHERE name = ?", (name,)
        ).fetchone()
        if found is None:
            return None
        payload, crc = found
        if zlib.crc32(payload) != crc:
            raise DamagedSnapshot(f"{self.path.name}: read model {name} fails its checksum")
        return bytes(payload)

    def read_models(self) -> dict[str, bytes]:
        out = {}
        for name, payload, crc in self._conn.execute("SELECT name, payload, crc FROM read_models"):
            if zlib.crc32(payload) != crc:
                raise DamagedSnapshot(f"{self.path.name}: read model {name} fails its checksum")
            out[name] = payload
        return out


def newest_valid(directory: Path, *, at_most_seq: int | None = None) -> Snapshot | None:
    """The newest snapshot that opens and validates (and is not ahead of the journal)."""
    for seq, path in list_files(directory):
        if at_most_seq is not None and seq > at_most_seq:
            log.warning("snapshot %s is ahead of the journal (%d); skipped", path.name, at_most_seq)
            continue
        try:
            return Snapshot.open(path)
        except DamagedSnapshot as exc:
            log.warning("skipping damaged snapshot: %s", exc)
    return None


def _create_file(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS states (
            stream TEXT PRIMARY KEY, version INTEGER NOT NULL,
            payload BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS read_models (
            name TEXT PRIMARY KEY, payload BLOB NOT NULL, crc INTEGER NOT NULL);
        """
    )
    return conn


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotWriter:
    """A snapshot being written: a temporary file (a copy of `base`, if given) that becomes
    `snapshot-<seq>.db` in `finish()` only, after every row is in it and it is fsynced; until
    then no reader takes it for a snapshot. Use from one thread; `close()` if not finished."""

    def __init__(self, directory: Path, seq: int, tmp: Path, conn: sqlite3.Connection) -> None:
        self.directory = directory
        self.seq = seq
        self._tmp = tmp
        self._conn = conn

    @classmethod
    def create(cls, directory: Path, seq: int, *, base: Path | None = None) -> SnapshotWriter:
        """Start the snapshot at `seq` in `directory`, from a copy of the file `base` (whose
        rows the new one keeps unless replaced). Leftovers of builds killed mid-way are
        removed first (one builder at a time per directory)."""
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db.tmp"):
            stale.unlink(missing_ok=True)
        tmp = (directory / file_name(seq)).with_suffix(".db.tmp")
        if base is not None:
            shutil.copyfile(base, tmp)
        conn = _create_file(tmp)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '0')")
        return cls(directory, seq, tmp, conn)

    def state(self, stream: str) -> StateRow | None:
        """The stream's row in the file so far (from the base); `DamagedSnapshot` if it fails
        its checksum."""
        found = self._conn.execute(
            "SELECT version, payload, crc FROM states WHERE stream = ?", (stream,)
        ).fetchone()
        if found is None:
            return None
        version, payload, crc = found
        if zlib.crc32(payload) != crc:
            raise DamagedSnapshot(f"state of {stream} fails its checksum")
        return StateRow(stream, int(version), payload)

    def finish(self, states: Iterable[StateRow], read_models: Mapping[str, bytes]) -> Path:
        """Write `states` and `read_models` (replacing rows of the same name) and the meta in
        one transaction, fsync, rename into place and fsync the directory: when it returns
        the snapshot is durable and valid. Returns its path."""
        conn = self._conn
        try:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)",
                ((row.stream, row.version, row.payload, zlib.crc32(row.payload)) for row in states),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO read_models VALUES (?, ?, ?)",
                ((name, payload, zlib.crc32(payload)) for name, payload in read_models.items()),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("format", str(FORMAT_VERSION)), ("seq", str(self.seq)), ("complete", "1")],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        final = self.directory / file_name(self.seq)
        fsync_path(self._tmp)
        os.replace(self._tmp, final)
        fsync_path(self.directory)
        return final

    def close(self) -> None:
        """Give up an unfinished snapshot (its temporary file is removed)."""
        self._conn.close()
        self._tmp.unlink(missing_ok=True)


def prune(directory: Path, *, keep: int) -> None:
    """Delete all but the `keep` newest snapshot files."""
    for _, old in list_files(directory)[keep:]:
        old.unlink(missing_ok=True)
