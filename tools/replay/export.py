"""`turnstile replay DATA_DIR --export FILE.jsonl`: the journal's events as JSON lines.

One object per event, in seq order: `{"seq", "stream", "version", "type", "at", "payload"}`
with the payload decoded (the event's fields, camelCase as the codec writes them). Filters
(`streams`, `types`, `since_ms <= at <= until_ms`) are applied by the journal's scan. A row
that fails its checksum is not exported: it is reported (with its seq and stream) and the
export goes on.

Without `follow` the export ends at the journal's end as it was when it started. With `follow`
it then tails the journal, which a running server keeps writing through WAL: every
`poll_seconds` it reads the rows committed since, read-only, until `stop` is set (the command
sets it on SIGINT or SIGTERM) or `follow_seconds` have passed. Output is flushed after each
poll, so a reader of the file sees whole lines.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import attrs
import orjson

from engine import codec
from engine.journal import Row, checksum
from tools.replay.findings import Finding, Findings
from tools.replay.progress import Progress, ProgressFactory, quiet
from tools.replay.source import read_journal

POLL_SECONDS = 0.2


class Sink(Protocol):
    def write(self, data: bytes, /) -> Any: ...

    def flush(self) -> Any: ...


@attrs.frozen(kw_only=True)
class ExportFilter:
    streams: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None


@attrs.frozen(kw_only=True)
class ExportSummary:
    exported: int
    #: The journal position read up to (every matching row <= it was exported or reported).
    last_seq: int
    followed: bool
    #: "end" (journal's end reached), "stop" (signal) or "time" (follow_seconds ran out).
    ended_by: str
    #: Rows not exported (damaged); the first 1,000 are listed in `findings`.
    damaged: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exported": self.exported,
            "lastSeq": self.last_seq,
            "followed": self.followed,
            "endedBy": self.ended_by,
            "damaged": self.damaged,
            "findings": [finding.as_json() for finding in self.findings],
        }


def line_of(row: Row) -> bytes:
    """The JSON line of one (checksum-verified) row: its payload in its type's current schema
    (upcast from an older one), or as written where this build cannot upcast it."""
    payload = orjson.loads(row.payload)
    with contextlib.suppress(ValueError):  # a newer build's row, or no upcaster: as written
        payload = codec.upcast_payload(row.type, row.schema, payload)
    return (
        orjson.dumps(
            {
                "seq": row.seq,
                "stream": row.stream,
                "version": row.version,
                "type": row.type,
                "at": row.at,
                "payload": payload,
            }
        )
        + b"\n"
    )


def export_events(
    data_dir: Path,
    out: Sink,
    where: ExportFilter | None = None,
    *,
    follow: bool = False,
    follow_seconds: float | None = None,
    stop: threading.Event | None = None,
    poll_seconds: float = POLL_SECONDS,
    progress: ProgressFactory = quiet,
    on_follow: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the matching events to `out` (read-only on the data dir). `on_follow(seq)` is
    called once when following starts, with the position caught up to."""
    where = where or ExportFilter()
    stop = stop or threading.Event()
    findings = Findings()
    exported = 0
    journal = read_journal(data_dir)

    def export_range(after: int, until: int, bar: Progress) -> None:
        nonlocal exported
        for row in journal.scan(
            after_seq=after,
            until_seq=until,
            streams=where.streams or None,
            types=where.types or None,
            since_ms=where.since_ms,
            until_ms=where.until_ms,
        ):
            if checksum(row.payload) != row.crc:
                findings.add(
                    "damaged-row",
                    "payload fails its checksum; not exported",
                    seq=row.seq,
                    stream=row.stream,
                )
                continue
            try:
                line = line_of(row)
            except orjson.JSONDecodeError as exc:
                findings.add(
                    "damaged-row",
                    f"payload is not JSON ({exc}); not exported",
                    seq=row.seq,
                    stream=row.stream,
                )
                continue
            out.write(line)
            exported += 1
            bar.update(row.seq)
        out.flush()

    try:
        cursor = journal.last_seq()
        with progress("export", cursor) as bar:
            export_range(0, cursor, bar)
        ended_by = "end"
        if follow:
            if on_follow is not None:
                on_follow(cursor)
            deadline = None if follow_seconds is None else time.monotonic() + follow_seconds
            while True:
                wait = poll_seconds
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - time.monotonic()))
                if stop.wait(wait):
                    ended_by = "stop"
                    break
                end = journal.last_seq()
                if end > cursor:
                    export_range(cursor, end, quiet("follow", end))
                    cursor = end
                if deadline is not None and time.monotonic() >= deadline:
                    ended_by = "time"
                    break
    finally:
        journal.close()
    return ExportSummary(
        exported=exported,
        last_seq=cursor,
        followed=follow,
        ended_by=ended_by,
        damaged=len(findings),
        findings=tuple(findings.items),
    )
