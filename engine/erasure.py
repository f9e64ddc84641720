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
- An erasure scoped to one person in a stream shared with others (a location's orders, each
  of some customer) defines `redact(event) -> Event` on its event class: the stream's earlier
  rows are then rewritten as that returns them (`OrderNotesErased` blanks only the erased
  customer's orders' notes), instead of every personal field of the stream being blanked.
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
from collections.abc import Callable, Sequence

from domain.model import Event
from engine import codec
from engine.journal import Journal, Row

log = logging.getLogger("turnstile.erasure")


def _rewriter(redact: Callable[[Event], Event]) -> Callable[[Row], tuple[int, bytes]]:
    def rewrite(row: Row) -> tuple[int, bytes]:
        """The row's event as `redact` leaves it, in its type's current schema (a row of an
        older schema is upcast, so it is rewritten with the current one)."""
        event = codec.decode_row(row)
        redacted = redact(event)
        if redacted is event and row.schema == event.schema:
            return row.schema, row.payload
        return event.schema, codec.encode_event(redacted)

    return rewrite


def _redaction_of(journal: Journal, stream: str, seq: int) -> Callable[[Event], Event]:
    """How the erasure at `seq` rewrites its stream: its own `redact` if its class has one,
    else every personal field blanked (`Event.redacted`)."""
    reader = journal.reader()
    try:
        row = reader.row_at(seq)
    finally:
        reader.close()
    if row is not None and row.stream == stream:
        scoped = getattr(codec.decode_row(row), "redact", None)
        if callable(scoped):
            return scoped  # type: ignore[no-any-return]
    return _blank_personal_fields


def _blank_personal_fields(event: Event) -> Event:
    return event.redacted()  # the event's own class's: a table's events redact their document


def scrub_stream(journal: Journal, stream: str, before_seq: int) -> int:
    """Redact `stream`'s events below `before_seq` as the erasure at `before_seq - 1` says
    (see the module docstring); the number of rows rewritten. Durable, with no old copy left
    in the journal's files, when it returns."""
    redact = _redaction_of(journal, stream, before_seq - 1)
    return journal.rewrite_payloads(stream, before_seq, _rewriter(redact))


def pending(journal: Journal, types: Sequence[str]) -> list[tuple[str, int]]:
    """(stream, seq) of every erasure event (of these types) not yet recorded as done,
    oldest first."""
    return journal.unfinished_erasures(types)


def mark_done(journal: Journal, stream: str, seq: int, at: int) -> None:
    """Record that the erasure at `(stream, seq)` is complete in every file."""
    journal.mark_erasure_done(stream, seq, at)
