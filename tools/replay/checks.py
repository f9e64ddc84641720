"""The checks every journal row must pass on its own, in seq order: seq contiguous from 1, the
payload's CRC-32, the stream's versions contiguous from 1, a registered aggregate kind, the
event type's schema, and a payload that decodes to its type.

`RowChecks.check(row)` records what is wrong in a `Findings` and returns the decoded event, or
None when the row cannot be trusted (a failed checksum, an undecodable payload, an unknown
stream kind). Memory: one version number per stream seen.
"""

from __future__ import annotations

from typing import Any

from domain.model import EVENT_TYPES, Aggregate, Event
from engine import codec
from engine.journal import Row, checksum
from engine.registry import Registry
from tools.replay.findings import Findings


def span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


class RowChecks:
    def __init__(self, registry: Registry, findings: Findings) -> None:
        self.registry = registry
        self.findings = findings
        #: The last seq seen, and each stream's last version.
        self.last_seq = 0
        self.versions: dict[str, int] = {}
        self.rows = 0

    def aggregate_of(self, stream: str) -> Aggregate[Any] | None:
        try:
            return self.registry.aggregate_of(stream)
        except KeyError:
            return None

    def check(self, row: Row) -> Event | None:
        add = self.findings.add
        self.rows += 1
        if row.seq != self.last_seq + 1:
            if row.seq > self.last_seq + 1:
                missing = span(self.last_seq + 1, row.seq - 1)
                add("seq-gap", f"seq {missing} missing", seq=self.last_seq + 1)
            else:  # cannot happen with seq as the primary key, but say so if it does
                add("seq-gap", f"seq {row.seq} follows {self.last_seq}", seq=row.seq)
        self.last_seq = max(self.last_seq, row.seq)

        previous = self.versions.get(row.stream, 0)
        if row.version != previous + 1:
            what = (
                f"versions {span(previous + 1, row.version - 1)} missing"
                if row.version > previous + 1
                else "out of order"
            )
            add(
                "version-gap",
                f"version {row.version} follows {previous} ({what})",
                seq=row.seq,
                stream=row.stream,
            )
        self.versions[row.stream] = max(previous, row.version)

        trusted = True
        if checksum(row.payload) != row.crc:
            add(
                "checksum",
                f"{row.type} payload fails its checksum (crc {checksum(row.payload)}, "
                f"recorded {row.crc})",
                seq=row.seq,
                stream=row.stream,
            )
            trusted = False
        if self.aggregate_of(row.stream) is None:
            add(
                "unknown-stream",
                f"no registered aggregate kind {row.stream.partition('/')[0]!r}",
                seq=row.seq,
                stream=row.stream,
            )
            trusted = False
        event_type = EVENT_TYPES.get(row.type)
        if event_type is not None and not _readable_schema(event_type, row.schema):
            add(
                "schema",
                f"{row.type} written with schema {row.schema}; this build reads schema "
                f"{event_type.schema}"
                + ("" if row.schema > event_type.schema else " and has no upcaster from it"),
                seq=row.seq,
                stream=row.stream,
            )
        if not trusted:
            return None
        try:
            return codec.decode_row(row)
        except Exception as exc:
            add(
                "decode",
                f"payload does not decode as {row.type}: {_reason(exc)}",
                seq=row.seq,
                stream=row.stream,
            )
            return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _readable_schema(event_type: type[Event], schema: int) -> bool:
    """Whether rows of `schema` decode in this build: its own schema, or an older one its
    upcasters step up from."""
    steps = event_type.upcasters
    return schema == event_type.schema or (
        schema < event_type.schema
        and all(step in steps for step in range(schema, event_type.schema))
    )
