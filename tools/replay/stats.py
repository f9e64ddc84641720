"""`turnstile replay DATA_DIR --stats`: what the journal holds and how fast it grew.

Counts and payload bytes per event type and per stream kind, the biggest streams, and the
event rate over time in buckets of whole minutes (chosen so there are at most about 60, or as
given). All of it is aggregated by the journal (`JournalReader.totals`, `counts`, `rate`) on
a read-only reader, at one position: memory does not grow with the journal. Payload bytes
are the encoded events; the file sizes are what the disk holds (the journal with its
write-ahead log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from engine.journal import GroupCount, JournalReader
from tools.replay.source import journal_path, read_journal
from tools.replay.times import format_time

MINUTE_MS = 60_000
#: Bucket widths in minutes, smallest first; past the last, whole days.
_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_TARGET_BUCKETS = 60


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
    journal = read_journal(data_dir)
    try:
        with journal.consistent():  # every figure from one journal position
            totals = journal.totals()
            width = bucket_minutes or _auto_width(totals.first_at, totals.last_at)
            return JournalStats(
                data_dir=data_dir,
                events=totals.events,
                payload_bytes=totals.payload_bytes,
                file_bytes=file_bytes,
                first_seq=totals.first_seq,
                last_seq=totals.last_seq,
                first_at=totals.first_at,
                last_at=totals.last_at,
                streams=totals.streams,
                by_type=_counts(journal.counts("type")),
                by_kind=_counts(journal.counts("kind")),
                biggest=_counts(journal.counts("stream", limit=top)),
                bucket_minutes=width,
                rate=_rate(journal, totals.first_at, totals.last_at, width),
            )
    finally:
        journal.close()


def _counts(groups: list[GroupCount]) -> tuple[Count, ...]:
    return tuple(Count(name=g.name, events=g.events, bytes=g.bytes) for g in groups)


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
    journal: JournalReader, first_at: int | None, last_at: int | None, width: int
) -> tuple[Bucket, ...]:
    """Events per bucket of `width` minutes, buckets aligned to multiples of the width since
    the epoch, empty ones included between the first and the last."""
    if first_at is None or last_at is None:
        return ()
    step = width * MINUTE_MS
    counted = journal.rate(step)
    return tuple(
        Bucket(start=b * step, events=counted.get(b, 0), per_minute=counted.get(b, 0) / width)
        for b in range(first_at // step, last_at // step + 1)
    )
