"""Folding the journal into snapshots and states, from disk alone, off the event loop.

`build_snapshot(data_dir, registry)` takes the newest valid snapshot (position M), folds the
journal rows after M up to the journal's current end N into the states of the streams they touch
and into the read models, and writes `snapshot-N.db` (copy of the base + changed rows) through
`snapshots.SnapshotWriter`. It reads only files (the journal through its own reader, never the
live engine's memory), so it runs in a worker thread while the engine keeps handling commands,
and a snapshot always equals what a replay of the journal up to N gives.

If the base snapshot turns out damaged, the build starts over from the journal's beginning.

`load_stream` is the other direction: one stream's committed state from its snapshot row and
its journal rows after it (an actor's activation).

A snapshot records the state version of every aggregate kind it holds (`Aggregate.state_version`,
in its read-model entry `_states`; none recorded means version 1). Where it differs from this
build's, that kind's state rows are stale (`stale_kinds`): activation folds such a stream from
its first event, and the next build folds the kind's streams again from the journal's start
instead of from the base snapshot's rows.

Each build also checks the stored files recorded at N (`domain.storage`, `engine.files`): each
one's bytes of the recorded size and sha256; a problem is logged as an error naming the file and
returned in `SnapshotInfo.file_problems`.

The snapshot files themselves (format, validity, atomic write) are the `snapshots` package's,
which knows nothing of the engine; this module is where the two meet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

import attrs

from domain.model import Aggregate, Event
from domain.storage import STORED_FILES
from engine import codec
from engine.files import FileProblem, FileStore
from engine.journal import JournalReader, Row, open_reader, verify
from engine.readmodels import ReadModels, refold
from engine.registry import Registry
from snapshots import (
    DamagedSnapshot,
    Snapshot,
    SnapshotWriter,
    StateRow,
    newest_valid,
    prune,
    snapshot_dir,
)

log = logging.getLogger("turnstile.snapshots")


class StreamGap(Exception):
    """A stream's versions in the journal are not contiguous."""


@attrs.frozen
class SnapshotInfo:
    seq: int
    path: Path
    streams_written: int
    events_folded: int
    seconds: float
    #: Stored files not as recorded at `seq` (`engine.files.FileStore.check`).
    file_problems: tuple[FileProblem, ...] = ()


#: The read-model entry of a snapshot recording its aggregates' state versions.
STATE_VERSIONS = "_states"


def state_versions(registry: Registry) -> bytes:
    return codec.dumps({kind: a.state_version for kind, a in sorted(registry.aggregates.items())})


def stale_kinds(snapshot: Snapshot | None, registry: Registry) -> frozenset[str]:
    """The aggregate kinds whose state rows in `snapshot` are of another state version than
    this build's (see the module's docstring)."""
    if snapshot is None:
        return frozenset()
    raw = snapshot.read_model(STATE_VERSIONS)
    recorded = codec.loads(raw) if raw is not None else {}
    return frozenset(
        kind
        for kind, aggregate in registry.aggregates.items()
        if recorded.get(kind, 1) != aggregate.state_version
    )


def fold_stream(
    aggregate: Aggregate[Any], state: Any, version: int, rows: list[Row]
) -> tuple[Any, int]:
    """Apply a stream's rows (in version order, checksums verified) to `state` at `version`."""
    evolve = aggregate.evolve
    for row in rows:
        verify(row)
        if row.version != version + 1:
            raise StreamGap(
                f"{row.stream}: version {row.version} follows {version} (seq {row.seq})"
            )
        state = evolve(state, codec.decode_row(row))
        version = row.version
    return state, version


def build_snapshot(
    data_dir: Path, registry: Registry, *, keep: int = 2, fresh: bool = False
) -> SnapshotInfo | None:
    """Write a snapshot at the journal's current end; None if the newest one is already there.

    `fresh` builds from the journal alone (no copy of an older snapshot, so no byte of one can
    survive in it) and deletes every other snapshot file: what an erasure needs."""
    journal = open_reader(data_dir)
    try:
        if fresh:
            return _build(journal, data_dir, registry, keep=1, use_base=False)
        try:
            return _build(journal, data_dir, registry, keep=keep, use_base=True)
        except DamagedSnapshot as exc:
            log.warning("base snapshot damaged (%s); building from the journal alone", exc)
            return _build(journal, data_dir, registry, keep=keep, use_base=False)
    finally:
        journal.close()


def _build(
    journal: JournalReader, data_dir: Path, registry: Registry, *, keep: int, use_base: bool
) -> SnapshotInfo | None:
    # No `journal.consistent()` here: a build can take seconds, and a read held that long
    # would keep an erasure from emptying the journal's WAL. Rows up to `until` do not change.
    started = time.perf_counter()
    directory = snapshot_dir(data_dir)
    until = journal.last_seq()
    base = newest_valid(directory, at_most_seq=until) if use_base else None
    base_seq = base.seq if base else 0
    if base is not None and base.seq >= until:
        base.close()
        return None
    models = ReadModels(registry.projections.values())
    missing: set[str] = set()
    stale: frozenset[str] = frozenset()
    if base is not None:
        missing = models.load(base.read_models())
        stale = stale_kinds(base, registry)
        base.close()
    writer = SnapshotWriter.create(directory, until, base=base.path if base else None)
    try:
        if missing:  # new or changed projections: fold them over the base's prefix
            refold(
                models,
                missing,
                journal.scan(until_seq=base_seq, types=models.refold_types(missing)),
            )
        cache: dict[str, tuple[Any, int]] = {}
        folded = 0
        if stale:  # their base rows are of another state version: fold them from the start
            for row in journal.scan(until_seq=base_seq):
                if row.stream.partition("/")[0] in stale:
                    verify(row)
                    _fold_into(cache, registry.aggregate_of(row.stream), row, None)
        for row in journal.scan(after_seq=base_seq, until_seq=until):
            verify(row)
            aggregate = registry.aggregate_of(row.stream)
            models.apply(
                _fold_into(cache, aggregate, row, None if aggregate.kind in stale else writer)
            )
            folded += 1
        states = [
            StateRow(
                stream,
                version,
                codec.encode_value(state, registry.aggregate_of(stream).state_type),
            )
            for stream, (state, version) in cache.items()
        ]
        final = writer.finish(states, {**models.encode(), STATE_VERSIONS: state_versions(registry)})
    except BaseException:
        writer.close()
        raise
    prune(directory, keep=keep)
    problems = _check_files(data_dir, models)
    return SnapshotInfo(
        until, final, len(cache), folded, time.perf_counter() - started, tuple(problems)
    )


def _check_files(data_dir: Path, models: ReadModels) -> list[FileProblem]:
    """Each stored file recorded at the snapshot's position against its bytes (size and
    sha256); every problem is logged as an error naming the file. A file deleted after that
    position, while the snapshot was built, may show as missing."""
    recorded = models.states.get(STORED_FILES.name)
    if not recorded:
        return []
    problems = FileStore(data_dir).check(recorded)
    for problem in problems:
        log.error("snapshot check: %s", problem.describe())
    return problems


def _fold_into(
    cache: dict[str, tuple[Any, int]],
    aggregate: Aggregate[Any],
    row: Row,
    base: SnapshotWriter | None,
) -> Event:
    """Fold `row` into its stream's entry of `cache` (first taken from `base`'s row, or the
    initial state without a base); the row's event."""
    entry = cache.get(row.stream)
    if entry is None:
        entry = (aggregate.initial, 0) if base is None else _base_state(base, aggregate, row.stream)
    state, version = entry
    if row.version != version + 1:
        raise StreamGap(f"{row.stream}: version {row.version} follows {version} (seq {row.seq})")
    event = codec.decode_row(row)
    cache[row.stream] = (aggregate.evolve(state, event), row.version)
    return event


def _base_state(writer: SnapshotWriter, aggregate: Aggregate[Any], stream: str) -> tuple[Any, int]:
    row = writer.state(stream)
    if row is None:
        return aggregate.initial, 0
    return codec.decode_value(row.payload, aggregate.state_type), row.version


def load_stream(
    snapshot: Snapshot | None,
    aggregate: Aggregate[Any],
    stream: str,
    rows_after: Callable[[int], list[Row]],
    stale: Container[str] = (),
) -> tuple[Any, int]:
    """The committed state of `stream`: its snapshot row (if trustworthy and not of a `stale`
    kind, `stale_kinds`) + journal rows after it.

    `rows_after(version)` returns the stream's journal rows after that version."""
    state, version = aggregate.initial, 0
    if snapshot is not None and aggregate.kind not in stale:
        try:
            row = snapshot.state(stream)
        except DamagedSnapshot as exc:
            log.warning("%s; rebuilding %s from the journal", exc, stream)
            row = None
        if row is not None:
            state, version = codec.decode_value(row.payload, aggregate.state_type), row.version
    return fold_stream(aggregate, state, version, rows_after(version))
