"""Snapshot files: the state of every aggregate and read model at one journal position, to
bound recovery and activation time. The files only (format, validity, atomic write, reading):
this package imports nothing from the engine; engine/snapshotting.py folds the journal into
them."""

from snapshots.store import (
    DamagedSnapshot,
    Snapshot,
    SnapshotWriter,
    StateRow,
    list_files,
    newest_valid,
    prune,
    snapshot_dir,
)

__all__ = [
    "DamagedSnapshot",
    "Snapshot",
    "SnapshotWriter",
    "StateRow",
    "list_files",
    "newest_valid",
    "prune",
    "snapshot_dir",
]
