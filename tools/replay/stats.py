"""`turnstile replay DATA_DIR --stats`: what the journal holds and how fast it grew.

Counts and payload bytes per event type and per stream kind, the biggest streams, and the
event rate over time in buckets of whole minutes (chosen so there are at most about 60, or as
given). All of it is aggregated by SQLite over a read-only connection: memory does not grow
with the journal. Payload bytes are the encoded events; the file sizes are what the disk holds
(the journal with its write-ahead log).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import attrs

from tools.replay.source import connect_ro, journal_path
from tools.replay.times import format_time

MINUTE_MS = 60_000
#: Bucket widths in minutes, smallest first; past the last, whole days.
_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_TARGET_BUCKETS = 60
_KIND = "substr(stream, 1, instr(stream || '/', '/') - 1)"


@attrs.frozen(kw_only=True)
class Count:
    name: str
    events: int
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "events": self.events, "bytes": self.bytes}


@attrs.frozen(kw_only=True)
class Bucket:
    start: int
    events: int
    per_minute: float

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "startTime": format_time(self.start),
            "events": self.events,
            "perMinute": self.per_minute,
        }


@attrs.frozen(kw_only=True)
class JournalStats:
    data_dir: Path
    events: int
    payload_bytes: int
    file_bytes: int
    first_seq: int | None
    last_seq: int | None
    first_at: int | None
    last_at: int | None
    streams: int
    by_type: tuple[Count, ...]
    by_kind: tuple[Count, ...]
    biggest: tuple[Count, ...]
    bucket_minutes: int
    rate: tuple[Bucket, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "dataDir": str(self.data_dir),
            "events": self.events,
            "payloadBytes": self.payload_bytes,
            "fileBytes": self.file_bytes,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "firstAt": self.first_at,
            "lastAt": self.last_at,
            "streams": self.streams,
            "byType": [c.as_json() for c in self.by_type],
            "byStreamKind": [c.as_json() for c in self.by_kind],
            "biggestStreams": [c.as_json() for c in self.biggest],
            "bucketMinutes": self.bucket_minutes,
            "rate": [b.as_json() for b in self.rate],
        }


def journal_stats(
    data_dir: Path, *, top: int = 10, bucket_minutes: int | None = None
) -> JournalStats:
    """Statistics of the journal (read-only). Raises `source.NoJournal` without one."""
    if bucket_minutes is not None and bucket_minutes < 1:
        raise ValueError("bucket minutes must be at least 1")
    path = journal_path(data_dir)
    file_bytes = sum(
        p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )
    conn = connect_ro(path)
    try:
        conn.execute("BEGIN")  # every figure from one journal position
        events, payload, first_seq, last_seq, first_at, last_at, streams = conn.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), min(seq), max(seq),"
            " min(at), max(at), count(DISTINCT stream) FROM events"
        ).fetchone()
        width = bucket_minutes or _auto_width(first_at, last_at)
        return JournalStats(
            data_dir=data_dir,
            events=events,
            payload_bytes=payload,
            file_bytes=file_bytes,
            first_seq=first_seq,
            last_seq=last_seq,
            first_at=first_at,
            last_at=last_at,
            streams=streams,
            by_type=_counts(conn, "type"),
            by_kind=_counts(conn, _KIND),
            biggest=_counts(conn, "stream", limit=top),
            bucket_minutes=width,
            rate=_rate(conn, first_at, last_at, width),
        )
    finally:
        conn.close()


def _counts(conn: sqlite3.Connection, column: str, limit: int | None = None) -> tuple[Count, ...]:
    sql = (
        f"SELECT {column} AS name, count(*) AS n, sum(length(payload)) AS b FROM events"
        " GROUP BY name ORDER BY n DESC, b DESC, name"
    )
    params: tuple[int, ...] = ()
    if limit is not None:
        sql += " LIMIT ?"
        params = (limit,)
    return tuple(Count(name=n, events=e, bytes=b) for n, e, b in conn.execute(sql, params))


def _auto_width(first_at: int | None, last_at: int | None) -> int:
    if first_at is None or last_at is None:
        return 1
    minutes = (last_at - first_at) // MINUTE_MS + 1
    for width in _WIDTHS:
        if minutes <= width * _TARGET_BUCKETS:
            return width
    days = -(-minutes // (_TARGET_BUCKETS * 1440))
    return days * 1440


def _rate(
    conn: sqlite3.Connection, first_at: int | None, last_at: int | None, width: int
) -> tuple[Bucket, ...]:
    """Events per bucket of `width` minutes, buckets aligned to multiples of the width since
    the epoch, empty ones included between the first and the last."""
    if first_at is None or last_at is None:
        return ()
    step = width * MINUTE_MS
    counted = dict(
        conn.execute("SELECT at / ? AS b, count(*) FROM events GROUP BY b", (step,)).fetchall()
    )
    return tuple(
        Bucket(start=b * step, events=counted.get(b, 0), per_minute=counted.get(b, 0) / width)
        for b in range(first_at // step, last_at // step + 1)
    )
