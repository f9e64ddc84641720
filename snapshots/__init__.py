"""Snapshots: whole-engine state at a journal position, to bound recovery and activation time."""

from snapshots.builder import SnapshotInfo, StreamGap, build_snapshot, fold_stream, load_stream
from snapshots.store import DamagedSnapshot, Snapshot, list_files, newest_valid, snapshot_dir

__all__ = [
    "DamagedSnapshot",
    "Snapshot",
    "SnapshotInfo",
    "StreamGap",
    "build_snapshot",
    "fold_stream",
    "list_files",
    "load_stream",
    "newest_valid",
    "snapshot_dir",
]
