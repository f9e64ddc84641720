"""What the replay tool found wrong, each finding pinned to a journal position and stream.

A `Finding` is one problem (its `kind` is a stable word for scripts: `seq-gap`, `checksum`,
...). `Findings` collects them in the order found; past `limit` it only counts (by kind), so a
journal with millions of damaged rows still gives a bounded report that says how much it left
out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

#: The kinds of finding, for scripts and the docs.
KINDS = {
    "unreadable": "the journal file cannot be read (past the position given)",
    "seq-gap": "sequence numbers missing (the range is given)",
    "checksum": "a row's payload fails its CRC-32",
    "decode": "a payload does not decode to its event type",
    "schema": "a row was written with another schema version of its event type",
    "unknown-stream": "a stream of no registered aggregate kind",
    "version-gap": "a stream's versions are not contiguous from 1",
    "evolve": "folding an event into its aggregate failed",
    "read-model": "applying an event to the read models failed",
    "invariant": "an aggregate breaks its invariants after a command's events",
    "tail-missing": "evidence of rows past the journal's end (a truncated tail)",
    "snapshot-damaged": "a snapshot file or one of its rows cannot be trusted",
    "snapshot-differs": "a snapshot disagrees with the journal folded to its position",
    "damaged-row": "a row a copy or an export needed is damaged",
    "stored-file": "a recorded stored file is missing, or its size or sha256 is not as recorded",
}


@attrs.frozen(kw_only=True)
class Finding:
    kind: str
    message: str
    seq: int | None = None
    stream: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "stream": self.stream, "message": self.message}


class Findings:
    """Findings in the order found, the first `limit` kept in full, all of them counted."""

    def __init__(self, limit: int = 1_000) -> None:
        self.limit = limit
        self.items: list[Finding] = []
        self.counts: Counter[str] = Counter()

    def add(
        self, kind: str, message: str, *, seq: int | None = None, stream: str | None = None
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown finding kind {kind!r}")
        self.counts[kind] += 1
        if len(self.items) < self.limit:
            self.items.append(Finding(kind=kind, message=message, seq=seq, stream=stream))

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    @property
    def left_out(self) -> int:
        return len(self) - len(self.items)
