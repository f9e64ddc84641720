"""Erasing a stream's personal data from the journal and the snapshots (GDPR erasure).

Plan:
- The domain marks an erasure with an `Erasure` event (domain/model.py) and names the personal
  fields of each event type (`Event.personal_fields`). The live state forgets the data when the
  erasure event is folded in; this module makes the files forget it too.
- `scrub_stream` has the journal rewrite (`Journal.rewrite_payloads`: one transaction, no copy
  of a replaced payload left in its files) the payload of every earlier event of the stream
  whose `redacted()` form differs. Row order, sequence numbers and versions are untouched;
  replay still gives the live state, which never depended on the erased values after the
  erasure.
- Then every snapshot is replaced by one built afresh from the (scrubbed) journal alone, and
  older snapshot files are deleted: a snapshot built on a copy of an older one could keep
  freed bytes of it (the engine does this step, engine/engine.py).
- Each erasure's completion is recorded in the journal (`Journal.mark_erasure_done`) after its
  fresh snapshot is in place. At start, every erasure the journal holds but has not recorded
  as done (`pending`) is done again (the steps are idempotent), so a crash mid-way leaves no
  personal data behind.

Everything here goes through the journal's interface; it runs in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from engine import codec
from engine.journal import Journal, Row

log = logging.getLogger("turnstile.erasure")


def _redacted(row: Row) -> tuple[int, bytes]:
    """The row's event with its personal fields blanked, in its type's current schema (a row
    of an older schema is upcast, so it is rewritten with the current one)."""
    event = codec.decode_row(row)
    redacted = event.redacted()
    if redacted is event and row.schema == event.schema:
        return row.schema, row.payload
    return event.schema, codec.encode_event(redacted)


def scrub_stream(journal: Journal, stream: str, before_seq: int) -> int:
    """Redact the personal fields of `stream`'s events below `before_seq`; the number of
    rows rewritten. Durable, with no old copy left in the journal's files, when it returns."""
    return journal.rewrite_payloads(stream, before_seq, _redacted)


def pending(journal: Journal, types: Sequence[str]) -> list[tuple[str, int]]:
    """(stream, seq) of every erasure event (of these types) not yet recorded as done,
    oldest first."""
    return journal.unfinished_erasures(types)


def mark_done(journal: Journal, stream: str, seq: int, at: int) -> None:
    """Record that the erasure at `(stream, seq)` is complete in every file."""
    journal.mark_erasure_done(stream, seq, at)
