"""How results read: aligned tables for people, one JSON document for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tools.replay.export import ExportSummary
from tools.replay.findings import Finding
from tools.replay.pitr import RecoveryCopy
from tools.replay.stats import Count, JournalStats
from tools.replay.times import format_time
from tools.replay.verify import VerifyReport

_BAR = 30


def json_document(document: dict[str, Any]) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if numeric[i] else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def findings_table(findings: Sequence[Finding]) -> str:
    return table(
        ("SEQ", "STREAM", "KIND", "WHAT"),
        [(f.seq, f.stream, f.kind, f.message) for f in findings],
    )


def render_verify(report: VerifyReport) -> str:
    out = [
        f"journal    {report.data_dir}",
        f"rows       {report.rows:,} (last seq {report.last_seq:,}), {report.streams:,} streams",
    ]
    if report.snapshots:
        out.append("snapshots")
        out.append(
            table(
                ("FILE", "SEQ", "STATUS", "STATES", "NOTE"),
                [
                    (
                        s.file,
                        s.seq,
                        s.status,
                        s.states,
                        "newest valid" if s.newest_valid else s.detail,
                    )
                    for s in report.snapshots
                ],
            )
        )
    else:
        out.append("snapshots  none")
    if report.findings:
        out.append(f"findings   {sum(report.counts.values()):,}")
        out.append(findings_table(report.findings))
        if report.left_out:
            out.append(f"  ... and {report.left_out:,} more not listed")
    if report.notes:
        out.append("notes")
        out.extend(f"  - {note}" for note in report.notes)
    if report.ok:
        out.append("OK: every row, stream, invariant and snapshot checks out")
    else:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(report.counts.items()))
        out.append(f"FAILED: {sum(report.counts.values()):,} problem(s): {kinds}")
    return "\n".join(out) + "\n"


def render_copy(copy: RecoveryCopy) -> str:
    out = [f"source     {copy.source}"]
    if copy.until_ms is not None:
        out.append(f"until      {format_time(copy.until_ms)} -> seq {copy.until_seq:,}")
    else:
        out.append(f"until      seq {copy.until_seq:,}")
    if copy.ok:
        last = "-" if copy.last_at is None else format_time(copy.last_at)
        out.append(f"into       {copy.into}")
        out.append(
            f"copied     {copy.rows:,} rows ({copy.streams:,} streams, last decided {last}),"
            f" {copy.requests:,} idempotency records, {copy.takes:,} rate-limit takes"
        )
    else:
        out.append("findings")
        out.append(findings_table(copy.findings))
    out.extend(f"note       {note}" for note in copy.notes)
    out.append(
        "OK: `turnstile serve --data-dir " + str(copy.into) + "` starts from this copy"
        if copy.ok
        else "FAILED: no copy was made"
    )
    return "\n".join(out) + "\n"


def _counts(title: str, header: str, counts: Sequence[Count]) -> list[str]:
    return [
        title,
        table((header, "EVENTS", "BYTES"), [(c.name, c.events, c.bytes) for c in counts]),
    ]


def render_stats(stats: JournalStats) -> str:
    out = [
        f"journal    {stats.data_dir}",
        f"events     {stats.events:,} in {stats.streams:,} streams"
        + (f", seq {stats.first_seq:,}..{stats.last_seq:,}" if stats.events else ""),
        f"bytes      {stats.payload_bytes:,} of payloads, {stats.file_bytes:,} on disk",
    ]
    if stats.first_at is not None and stats.last_at is not None:
        out.append(f"decided    {format_time(stats.first_at)} .. {format_time(stats.last_at)}")
    if not stats.events:
        return "\n".join(out) + "\n"
    out += _counts("\nby event type", "TYPE", stats.by_type)
    out += _counts("\nby stream kind", "KIND", stats.by_kind)
    out += _counts(f"\nbiggest streams (top {len(stats.biggest)})", "STREAM", stats.biggest)
    peak = max(b.events for b in stats.rate) or 1
    out.append(f"\nevents per minute ({stats.bucket_minutes}-minute buckets)")
    out.append(
        table(
            ("FROM", "EVENTS", "PER MINUTE", ""),
            [
                (format_time(b.start), b.events, b.per_minute, "#" * -(-b.events * _BAR // peak))
                for b in stats.rate
            ],
        )
    )
    return "\n".join(out) + "\n"


def render_export(summary: ExportSummary, destination: str) -> str:
    how = {"end": "to the journal's end", "stop": "until stopped", "time": "for the time given"}
    out = [
        f"exported   {summary.exported:,} events to {destination}"
        + (f", following {how[summary.ended_by]}" if summary.followed else ""),
        f"read up to seq {summary.last_seq:,}",
    ]
    if summary.findings:
        out.append("damaged rows (not exported)")
        out.append(findings_table(summary.findings))
        out.append(f"FAILED: {summary.damaged:,} row(s) could not be exported")
    return "\n".join(out) + "\n"
