"""Every aggregate's state and every read model, folded from journal rows in seq order exactly
as the engine folds them (`Aggregate.evolve`, `engine.readmodels.ReadModels`), with each
aggregate's invariants checked after each command's events.

Invariants hold between commands, not inside one: a join emits `WaitingListJoined` and then
`OfferMade`, and the state between the two has someone waiting beside a free seat. The journal
does not mark command boundaries, but one command's events on one stream are consecutive rows
with one decision time (`at`), so the check runs at the end of each run of consecutive rows of
one stream and one `at`. That is after every command whose boundary the journal shows, and
never inside one.

A stream whose rows cannot be trusted (damaged, undecodable, a version gap, a failing
`evolve`) is marked broken at that seq and no longer folded; a skipped row marks the read
models broken too. What is broken is not compared with a snapshot (the finding that broke it
is the report).
"""

from __future__ import annotations

from typing import Any

import attrs

from domain.model import Aggregate, Event
from engine.journal import Row
from engine.readmodels import ReadModels
from engine.registry import Registry
from tools.replay.findings import Findings


@attrs.define
class StreamFold:
    aggregate: Aggregate[Any]
    state: Any
    version: int = 0
    broken_at: int | None = None
    invariant_broken_at: int | None = None


class Fold:
    def __init__(self, registry: Registry, findings: Findings) -> None:
        self.registry = registry
        self.findings = findings
        self.streams: dict[str, StreamFold] = {}
        self.models = ReadModels(registry.projections.values())
        self.models_broken_at: int | None = None
        #: The command run in progress: (stream, at, seq of its last row).
        self._run: tuple[str, int, int] | None = None
        self._last_seq = 0

    def apply(self, row: Row, event: Event | None) -> None:
        """Fold one row (`event` is its decoded event, None if the row is not trusted)."""
        run = self._run
        if run is not None and (run[0] != row.stream or run[1] != row.at):
            self._check_run()
        self._run = (row.stream, row.at, row.seq)
        if self.models_broken_at is None:
            if row.seq != self._last_seq + 1:
                self.models_broken_at = self._last_seq + 1  # rows missing
            elif event is None:
                self.models_broken_at = row.seq
        self._last_seq = row.seq
        fold = self.streams.get(row.stream)
        if fold is None:
            try:
                aggregate = self.registry.aggregate_of(row.stream)
            except KeyError:
                return  # reported by the row checks
            fold = self.streams[row.stream] = StreamFold(aggregate, aggregate.initial)
        if fold.broken_at is None and (event is None or row.version != fold.version + 1):
            fold.broken_at = row.seq
        fold.version = max(fold.version, row.version)
        if event is None:
            return
        if fold.broken_at is None:
            try:
                fold.state = fold.aggregate.evolve(fold.state, event)
            except Exception as exc:
                fold.broken_at = row.seq
                self.findings.add(
                    "evolve",
                    f"{row.type} cannot be folded: {type(exc).__name__}: {exc}",
                    seq=row.seq,
                    stream=row.stream,
                )
        if self.models_broken_at is None:
            try:
                self.models.apply(event)
            except Exception as exc:
                self.models_broken_at = row.seq
                self.findings.add(
                    "read-model",
                    f"{row.type} cannot be applied to the read models: {type(exc).__name__}: {exc}",
                    seq=row.seq,
                    stream=row.stream,
                )

    def finish(self) -> None:
        """Check the last command run (call once, after the last row)."""
        if self._run is not None:
            self._check_run()
            self._run = None

    def _check_run(self) -> None:
        assert self._run is not None
        stream, _, seq = self._run
        fold = self.streams.get(stream)
        if fold is None or fold.broken_at is not None or fold.invariant_broken_at is not None:
            return
        check = fold.aggregate.check_invariants
        if check is None:
            return
        try:
            check(fold.state)
        except Exception as exc:
            # Reported once per stream: what follows is most likely its consequence.
            fold.invariant_broken_at = seq
            reason = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
            self.findings.add(
                "invariant", f"after version {fold.version}: {reason}", seq=seq, stream=stream
            )

    def broken_streams(self) -> dict[str, int]:
        return {s: f.broken_at for s, f in self.streams.items() if f.broken_at is not None}


def some(names: list[str], shown: int = 5) -> str:
    """`a, b, c` or `a, b, c, d, e and 7 more`."""
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"
