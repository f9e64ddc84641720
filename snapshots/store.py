"""Snapshot files: the state of every aggregate and read model at one journal position.

A snapshot is a SQLite file `snapshot-<seq>.db` in the snapshot dir, written under a temporary
name, fsynced, then renamed, so a crash mid-write leaves no file that looks finished. Each
state row and each read-model blob carries a CRC-32; `meta` records the format, the journal
position `seq` and `complete = 1` as the last write.

Trust rules: a file is *valid* only if it opens, passes `PRAGMA quick_check`, has the current
format and `complete = 1`. `newest_valid()` skips (and reports) any file that is not; a state
row whose checksum fails on read raises `DamagedSnapshot`, and the caller rebuilds that stream
from the journal instead.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import zlib
from collections.abc import Iterable
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


def create_file(path: Path) -> sqlite3.Connection:
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
