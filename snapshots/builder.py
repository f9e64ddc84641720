"""Building a snapshot from disk alone, off the event loop.

`build_snapshot(data_dir, registry)` takes the newest valid snapshot (position M), folds the
journal rows after M up to the journal's current end N into the states of the streams they touch
and into the read models, and writes `snapshot-N.db` (copy of the base + changed rows). It reads
only files, never the live engine's memory, so it runs in a worker thread while the engine keeps
handling commands, and a snapshot always equals what a replay of the journal up to N gives.

If the base snapshot turns out damaged, the build starts over from the journal's beginning.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any

import attrs

from domain.model import Aggregate
from engine import codec
from engine.journal import JOURNAL_FILE, Row, scan, verify
from engine.readmodels import ReadModels, refold
from engine.registry import Registry
from snapshots.store import (
    FORMAT_VERSION,
    DamagedSnapshot,
    Snapshot,
    create_file,
    file_name,
    fsync_path,
    list_files,
    newest_valid,
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
        state = evolve(
            state, codec.decode_event(row.type, row.stream, row.version, row.at, row.payload)
        )
        version = row.version
    return state, version


def journal_end(journal_path: Path) -> int:
    conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)
    finally:
        conn.close()


def build_snapshot(
    data_dir: Path, registry: Registry, *, keep: int = 2, fresh: bool = False
) -> SnapshotInfo | None:
    """Write a snapshot at the journal's current end; None if the newest one is already there.

    `fresh` builds from the journal alone (no copy of an older snapshot, so no byte of one can
    survive in it) and deletes every other snapshot file: what an erasure needs."""
    if fresh:
        return _build(data_dir, registry, keep=1, use_base=False)
    try:
        return _build(data_dir, registry, keep=keep, use_base=True)
    except DamagedSnapshot as exc:
        log.warning("base snapshot damaged (%s); building from the journal alone", exc)
        return _build(data_dir, registry, keep=keep, use_base=False)


def _build(data_dir: Path, registry: Registry, *, keep: int, use_base: bool) -> SnapshotInfo | None:
    started = time.perf_counter()
    journal_path = data_dir / JOURNAL_FILE
    directory = snapshot_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    until = journal_end(journal_path)
    base = newest_valid(directory, at_most_seq=until) if use_base else None
    base_seq = base.seq if base else 0
    if base is not None and base.seq >= until:
        base.close()
        return None
    final = directory / file_name(until)
    tmp = final.with_suffix(".db.tmp")
    # Leftovers of builds killed mid-way (one engine builds at a time): never finished, never read.
    for stale in directory.glob("*.db.tmp"):
        stale.unlink(missing_ok=True)
    models = ReadModels(registry.projections.values())
    if base is not None:
        missing = models.load(base.read_models())
        base.close()
        shutil.copyfile(base.path, tmp)
        if missing:  # new or changed projections: fold them over the base's prefix
            refold(
                models,
                missing,
                scan(journal_path, until_seq=base_seq, types=models.refold_types(missing)),
            )
    conn = create_file(tmp)
    try:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '0')")
        cache: dict[str, tuple[Any, int]] = {}
        folded = 0
        for row in scan(journal_path, after_seq=base_seq, until_seq=until):
            verify(row)
            aggregate = registry.aggregate_of(row.stream)
            entry = cache.get(row.stream)
            if entry is None:
                entry = _base_state(conn, aggregate, row.stream)
            state, version = entry
            if row.version != version + 1:
                raise StreamGap(
                    f"{row.stream}: version {row.version} follows {version} (seq {row.seq})"
                )
            event = codec.decode_event(row.type, row.stream, row.version, row.at, row.payload)
            cache[row.stream] = (aggregate.evolve(state, event), row.version)
            models.apply(event)
            folded += 1
        conn.execute("BEGIN")
        for stream, (state, version) in cache.items():
            payload = codec.encode_value(state, registry.aggregate_of(stream).state_type)
            conn.execute(
                "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)",
                (stream, version, payload, zlib.crc32(payload)),
            )
        for name, payload in models.encode().items():
            conn.execute(
                "INSERT OR REPLACE INTO read_models VALUES (?, ?, ?)",
                (name, payload, zlib.crc32(payload)),
            )
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("format", str(FORMAT_VERSION)), ("seq", str(until)), ("complete", "1")],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(directory)
    for _, old in list_files(directory)[keep:]:
        old.unlink(missing_ok=True)
    return SnapshotInfo(until, final, len(cache), folded, time.perf_counter() - started)


def _base_state(
    conn: sqlite3.Connection, aggregate: Aggregate[Any], stream: str
) -> tuple[Any, int]:
    found = conn.execute(
        "SELECT version, payload, crc FROM states WHERE stream = ?", (stream,)
    ).fetchone()
    if found is None:
        return aggregate.initial, 0
    version, payload, crc = found
    if zlib.crc32(payload) != crc:
        raise DamagedSnapshot(f"state of {stream} fails its checksum")
    return codec.decode_value(payload, aggregate.state_type), int(version)


def load_stream(
    snapshot: Snapshot | None, aggregate: Aggregate[Any], stream: str, rows_after: Any
) -> tuple[Any, int]:
    """The committed state of `stream`: its snapshot row (if trustworthy) + journal rows after it.

    `rows_after(version)` returns the stream's journal rows after that version."""
    state, version = aggregate.initial, 0
    if snapshot is not None:
        try:
            row = snapshot.state(stream)
        except DamagedSnapshot as exc:
            log.warning("%s; rebuilding %s from the journal", exc, stream)
            row = None
        if row is not None:
            state, version = codec.decode_value(row.payload, aggregate.state_type), row.version
    return fold_stream(aggregate, state, version, rows_after(version))
