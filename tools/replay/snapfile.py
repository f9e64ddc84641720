"""A snapshot file checked against the journal: first its validity (the engine's own rules,
`snapshots.store.Snapshot.open`), then, when the fold reaches its seq, every state row and
read model in it against the state folded from the journal up to that seq.

Each row is checked on its own (checksum, decodes, equals the fold), so one damaged row does
not hide the rest. A stream or read model the fold could not trust is not compared; the
finding that broke it is the report.
"""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path
from typing import Any

import attrs

from engine import codec
from engine.snapshotting import STATE_VERSIONS
from snapshots.store import DamagedSnapshot, Snapshot
from tools.replay.diff import first_difference
from tools.replay.findings import Findings
from tools.replay.fold import Fold, some

_TIMERS = "_timers"


def _connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection to a snapshot file (its own SQLite format, snapshots/store.py)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


@attrs.define(kw_only=True)
class SnapshotCheck:
    """What became of one snapshot file: `status` is `matches`, `differs`, `damaged`, `ahead`
    (taken past the journal's end) or `unchecked` (the journal could not be read that far)."""

    file: str
    seq: int
    status: str = "unchecked"
    detail: str = ""
    states: int = 0
    newest_valid: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "seq": self.seq,
            "status": self.status,
            "detail": self.detail,
            "states": self.states,
            "newestValid": self.newest_valid,
        }


class SnapshotFile:
    def __init__(self, seq: int, path: Path) -> None:
        self.seq = seq
        self.path = path
        self.check = SnapshotCheck(file=path.name, seq=seq)
        self._conn: sqlite3.Connection | None = None

    def validate(self, findings: Findings) -> bool:
        """True if the engine would trust the file; otherwise a `snapshot-damaged` finding.

        A valid file stays open until `compare` or `close`, so a server that prunes old
        snapshots meanwhile cannot take it away mid-check."""
        try:
            self._conn = _connect_ro(self.path)
            self._conn.execute("SELECT count(*) FROM meta").fetchall()
            snapshot = Snapshot.open(self.path)
        except (sqlite3.DatabaseError, DamagedSnapshot) as exc:
            self.close()
            message = str(exc) if isinstance(exc, DamagedSnapshot) else f"{self.path.name}: {exc}"
            self._damaged(findings, message)
            return False
        meta_seq = snapshot.seq
        snapshot.close()
        if meta_seq != self.seq:
            self.close()
            self._damaged(findings, f"{self.path.name}: its meta says seq {meta_seq}")
            return False
        return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _damaged(self, findings: Findings, message: str, stream: str | None = None) -> None:
        findings.add("snapshot-damaged", message, seq=self.seq, stream=stream)
        self.check.status = "damaged"
        self.check.detail = self.check.detail or message

    def compare(self, fold: Fold, findings: Findings, notes: list[str]) -> None:
        """Compare with `fold`, which must stand at exactly this snapshot's seq."""
        before = len(findings)
        conn = self._conn
        assert conn is not None, "compare() needs a validated file"
        try:
            self._compare_states(conn, fold, findings, notes)
            self._compare_read_models(conn, fold, findings, notes)
        except sqlite3.DatabaseError as exc:
            self._damaged(findings, f"{self.path.name}: unreadable: {exc}")
        finally:
            self.close()
        if self.check.status == "unchecked":
            problems = len(findings) - before
            self.check.status = "differs" if problems else "matches"
            if problems:
                self.check.detail = f"{problems} difference(s) from the journal"

    def _compare_states(
        self, conn: sqlite3.Connection, fold: Fold, findings: Findings, notes: list[str]
    ) -> None:
        name, seq = self.path.name, self.seq
        seen: set[str] = set()
        skipped: list[str] = []
        recorded = conn.execute(
            "SELECT payload FROM read_models WHERE name = ?", (STATE_VERSIONS,)
        ).fetchone()
        versions = codec.loads(recorded[0]) if recorded is not None else {}
        stale: set[str] = set()
        for stream, version, payload, crc in conn.execute(
            "SELECT stream, version, payload, crc FROM states ORDER BY stream"
        ):
            seen.add(stream)
            self.check.states += 1
            if zlib.crc32(payload) != crc:
                self._damaged(findings, f"{name}: state row fails its checksum", stream)
                continue
            mine = fold.streams.get(stream)
            if mine is not None and versions.get(mine.aggregate.kind, 1) != (
                mine.aggregate.state_version
            ):
                # Of another state version: the engine folds it from its events instead.
                stale.add(mine.aggregate.kind)
                continue
            if mine is None:
                findings.add(
                    "snapshot-differs",
                    f"{name} holds version {version}; the journal up to seq {seq} has no event "
                    "of this stream (or none of a registered kind)",
                    seq=seq,
                    stream=stream,
                )
                continue
            if mine.broken_at is not None:
                skipped.append(stream)
                continue
            if version != mine.version:
                findings.add(
                    "snapshot-differs",
                    f"{name} holds version {version}; the journal has version {mine.version} "
                    f"at seq {seq}",
                    seq=seq,
                    stream=stream,
                )
                continue
            state_type = mine.aggregate.state_type
            try:
                theirs = codec.decode_value(payload, state_type)
            except Exception as exc:
                self._damaged(findings, f"{name}: state row does not decode: {exc}", stream)
                continue
            difference = first_difference(theirs, mine.state, state_type)
            if difference is not None:
                findings.add(
                    "snapshot-differs",
                    f"{name} (snapshot != journal) at version {version}: {difference}",
                    seq=seq,
                    stream=stream,
                )
        for stream, mine in fold.streams.items():
            if stream not in seen:
                findings.add(
                    "snapshot-differs",
                    f"the journal has version {mine.version} by seq {seq}; {name} has no row "
                    "for this stream",
                    seq=seq,
                    stream=stream,
                )
        if skipped:
            notes.append(f"{name}: not compared, damaged in the journal: {some(skipped)}")
        if stale:
            notes.append(
                f"{name}: states of {', '.join(sorted(stale))} not compared, of another state"
                " version than this build's (folded from their events instead)"
            )

    def _compare_read_models(
        self, conn: sqlite3.Connection, fold: Fold, findings: Findings, notes: list[str]
    ) -> None:
        name, seq = self.path.name, self.seq
        if fold.models_broken_at is not None:
            notes.append(
                f"{name}: read models not compared (journal rows missing or skipped from seq "
                f"{fold.models_broken_at})"
            )
            return
        blobs: dict[str, bytes] = {}
        for model, payload, crc in conn.execute("SELECT name, payload, crc FROM read_models"):
            if zlib.crc32(payload) != crc:
                self._damaged(findings, f"{name}: read model {model} fails its checksum")
            else:
                blobs[model] = payload
        models = fold.models
        for model, projection in models.projections.items():
            payload = blobs.get(projection.snapshot_key)
            if payload is None:
                # Not in the file (a newer projection, or another version): the engine folds it
                # from the journal instead of reading it here, so there is nothing to compare.
                notes.append(f"{name}: read model {projection.snapshot_key} not in the file")
                continue
            try:
                theirs = codec.decode_value(payload, projection.stored_type)
            except Exception as exc:
                self._damaged(findings, f"{name}: read model {model} does not decode: {exc}")
                continue
            mine, stored_type = projection.stored(models.states[model])
            difference = first_difference(theirs, mine, stored_type)
            if difference is not None:
                findings.add(
                    "snapshot-differs",
                    f"{name} read model {model} (snapshot != journal): {difference}",
                    seq=seq,
                )
        try:
            raw = codec.loads(blobs.get(_TIMERS, b"[]"))
            timers = {f"{stream} {key}": int(due) for stream, key, due in raw}
        except Exception as exc:
            self._damaged(findings, f"{name}: armed timers do not decode: {exc}")
            return
        mine = {f"{stream} {key}": due for (stream, key), due in models.timers.items()}
        difference = first_difference(timers, mine, dict[str, int])
        if difference is not None:
            findings.add(
                "snapshot-differs",
                f"{name} armed timers (snapshot != journal): {difference}",
                seq=seq,
            )
