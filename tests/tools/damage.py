"""Damage done on purpose to a data dir, the way disks and operators do it: bytes flipped in
the files themselves, rows deleted, rows forged with valid checksums, snapshots cut short."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from engine.journal import JOURNAL_FILE
from snapshots.store import list_files, snapshot_dir


def journal(data_dir: Path) -> Path:
    return data_dir / JOURNAL_FILE


def execute(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def checkpoint(data_dir: Path) -> None:
    """Move everything from the write-ahead log into journal.db, so its bytes are all there."""
    execute(journal(data_dir), "PRAGMA wal_checkpoint(TRUNCATE)")


def flip_byte_of(path: Path, needle: bytes) -> None:
    """Flip one bit in the middle of `needle`, which must occur exactly once in the file."""
    data = bytearray(path.read_bytes())
    assert data.count(needle) == 1, f"{needle!r} is not unique in {path.name}"
    at = data.find(needle) + len(needle) // 2
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def flip_payload_byte(data_dir: Path, seq: int) -> str:
    """Flip a bit of row `seq`'s payload in the journal file; returns the row's stream."""
    checkpoint(data_dir)
    [(stream, payload)] = execute(
        journal(data_dir), "SELECT stream, payload FROM events WHERE seq = ?", (seq,)
    )
    flip_byte_of(journal(data_dir), payload)
    return str(stream)


def rows(data_dir: Path, sql: str = "", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return execute(
        journal(data_dir),
        "SELECT seq, stream, version, type, payload, at FROM events " + sql + " ORDER BY seq",
        params,
    )


def append_row(data_dir: Path, stream: str, type_name: str, body: dict[str, Any], at: int) -> int:
    """Append a forged event with a valid checksum (next seq, next version of `stream`)."""
    path = journal(data_dir)
    [(seq,)] = execute(path, "SELECT coalesce(max(seq), 0) + 1 FROM events")
    [(version,)] = execute(
        path, "SELECT coalesce(max(version), 0) + 1 FROM events WHERE stream = ?", (stream,)
    )
    payload = json.dumps(body, separators=(",", ":")).encode()
    execute(
        path,
        "INSERT INTO events VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
        (seq, stream, version, type_name, payload, at, zlib.crc32(payload)),
    )
    return int(seq)


def snapshot_file(data_dir: Path) -> Path:
    [(_, path)] = list_files(snapshot_dir(data_dir))
    return path


def snapshot_state(data_dir: Path, stream: str) -> bytes:
    [(payload,)] = execute(
        snapshot_file(data_dir), "SELECT payload FROM states WHERE stream = ?", (stream,)
    )
    return bytes(payload)


def flip_snapshot_payload_byte(data_dir: Path, stream: str) -> None:
    """Flip a bit of a snapshot state row's payload, its checksum left as it was. (Written
    through SQLite: a snapshot file may hold stale copies of a row in free pages, so the bytes
    of the live row cannot be found reliably in the file.)"""
    payload = bytearray(snapshot_state(data_dir, stream))
    payload[len(payload) // 2] ^= 0x01
    execute(
        snapshot_file(data_dir),
        "UPDATE states SET payload = ? WHERE stream = ?",
        (bytes(payload), stream),
    )


def forge_snapshot_state(data_dir: Path, stream: str, path: tuple[str, ...], value: Any) -> None:
    """Change one field of a snapshot's state row, checksum recomputed (a wrong, not a
    damaged, snapshot)."""
    state = json.loads(snapshot_state(data_dir, stream))
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    payload = json.dumps(state, separators=(",", ":")).encode()
    execute(
        snapshot_file(data_dir),
        "UPDATE states SET payload = ?, crc = ? WHERE stream = ?",
        (payload, zlib.crc32(payload), stream),
    )
