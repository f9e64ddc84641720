"""`turnstile replay DATA_DIR --verify`: rebuild every aggregate and read model from the journal
alone and check everything the engine relies on.

One pass over the journal in seq order, a chunk of rows at a time (memory: the folded states
and one version per stream, never the rows). It checks:

- each row on its own (`checks.RowChecks`): seq contiguous from 1, CRC-32, versions
  contiguous from 1 per stream, a registered aggregate kind, the schema, a decodable payload;
- each aggregate's invariants after each command's events (`fold.Fold`);
- every snapshot file: valid by the engine's rules, and each valid one, when the fold reaches
  its seq, equal to the fold in every state and read model (`snapfile.SnapshotFile`);
- evidence of a truncated tail: a snapshot taken past the journal's end, idempotency records
  that name seqs past it. (Rows deleted cleanly from the end leave no other trace: a journal
  cut short with no snapshot or request record beyond it looks like a shorter journal.)
- every stored file the journal records (`domain.storage`): its bytes on disk, of the recorded
  size and sha256 (`engine.files.FileStore.check`); files on disk that no record names are
  noted (the engine removes them at its next start).

A read error stops the pass and is reported with the last seq read; nothing is hidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from domain.model import Module
from domain.storage import STORED_FILES
from engine.files import FileStore
from engine.journal import DamagedRow, JournalReader, JournalReadError
from snapshots import list_files, snapshot_dir
from tools.replay.checks import RowChecks, span
from tools.replay.findings import Finding, Findings
from tools.replay.fold import Fold, some
from tools.replay.progress import ProgressFactory, quiet
from tools.replay.snapfile import SnapshotCheck, SnapshotFile
from tools.replay.source import journal_path, load_registry, read_journal


@attrs.frozen(kw_only=True)
class VerifyReport:
    data_dir: Path
    rows: int
    last_seq: int
    streams: int
    snapshots: tuple[SnapshotCheck, ...]
    findings: tuple[Finding, ...]
    counts: dict[str, int]
    left_out: int
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.counts

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dataDir": str(self.data_dir),
            "journal": {"rows": self.rows, "lastSeq": self.last_seq, "streams": self.streams},
            "snapshots": [check.as_json() for check in self.snapshots],
            "findings": [finding.as_json() for finding in self.findings],
            "findingCounts": self.counts,
            "findingsLeftOut": self.left_out,
            "notes": list(self.notes),
        }


def verify(
    data_dir: Path,
    *,
    progress: ProgressFactory = quiet,
    limit: int = 1_000,
    modules: Iterable[Module] | None = None,
) -> VerifyReport:
    """Check the data dir (read-only) against the apps `modules` (the built-in one by default:
    an app's streams are then findings, of a kind no loaded app declares). Raises
    `source.NoJournal` if it has no journal; every other problem is a finding in the report."""
    journal_path(data_dir)
    registry = load_registry(modules)
    findings = Findings(limit)
    notes: list[str] = []
    # Snapshots first, then the journal in one read transaction: on a live data dir every
    # snapshot found is then within the journal read (a snapshot is never ahead of the journal
    # it was built from), and the rows and idempotency records read are one consistent cut.
    files = [SnapshotFile(seq, file) for seq, file in list_files(snapshot_dir(data_dir))]
    pending = sorted((f for f in files if f.validate(findings)), key=lambda f: f.seq)
    compared: list[SnapshotFile] = []
    checks = RowChecks(registry, findings)
    fold = Fold(registry, findings)
    readable = True
    try:
        journal = read_journal(data_dir)
        try:
            with journal.consistent():
                end = journal.last_seq()
                with progress("verify", end) as bar:
                    for row in journal.scan(until_seq=end, chunk=5_000):
                        while pending and pending[0].seq < row.seq:
                            compared.append(_compare(pending.pop(0), fold, findings, notes))
                        fold.apply(row, checks.check(row))
                        bar.update(row.seq)
                _tail_evidence(journal, checks.last_seq, findings)
        finally:
            journal.close()
    except JournalReadError as exc:
        readable = False
        findings.add(
            "unreadable",
            f"the journal cannot be read after seq {checks.last_seq}: {exc}",
            seq=checks.last_seq + 1,
        )
    fold.finish()
    if fold.models_broken_at is None:
        _check_files(data_dir, fold, findings, notes)
    last = checks.last_seq
    for snapshot in pending:
        if readable and snapshot.seq <= last:
            compared.append(_compare(snapshot, fold, findings, notes))
        elif readable:
            snapshot.check.status = "ahead"
            snapshot.check.detail = f"taken at seq {snapshot.seq}, past the journal's end"
            findings.add(
                "tail-missing",
                f"the journal ends at seq {last} but {snapshot.path.name} was taken at seq "
                f"{snapshot.seq}: rows {span(last + 1, snapshot.seq)} (at least) are missing",
                seq=last + 1,
            )
        else:
            snapshot.check.detail = "the journal could not be read up to its seq"
        snapshot.close()
    if compared:  # the one the engine would start from
        max(compared, key=lambda f: f.seq).check.newest_valid = True
    broken = fold.broken_streams()
    if broken:
        where = [f"{stream} (from seq {seq})" for stream, seq in broken.items()]
        notes.append(f"not rebuilt past a damaged or missing row: {some(where)}")
    return VerifyReport(
        data_dir=data_dir,
        rows=checks.rows,
        last_seq=last,
        streams=len(checks.versions),
        snapshots=tuple(f.check for f in files),
        findings=tuple(findings.items),
        counts=dict(findings.counts),
        left_out=findings.left_out,
        notes=tuple(notes),
    )


def _compare(
    snapshot: SnapshotFile, fold: Fold, findings: Findings, notes: list[str]
) -> SnapshotFile:
    snapshot.compare(fold, findings, notes)
    return snapshot


def _check_files(data_dir: Path, fold: Fold, findings: Findings, notes: list[str]) -> None:
    """Each recorded stored file against its bytes; the files no record names."""
    recorded = fold.models.states.get(STORED_FILES.name, {})
    store = FileStore(data_dir)
    for problem in store.check(recorded):
        findings.add("stored-file", problem.describe(), stream=f"file/{problem.storage_id}")
    unrecorded = [name for name in store.names() if name not in recorded]
    if unrecorded:
        notes.append(
            f"{len(unrecorded)} file(s) in storage/ that no record names (an upload cut short"
            f" by a crash, or bytes of a deleted file; removed at the next start): "
            f"{some(unrecorded)}"
        )


def _tail_evidence(journal: JournalReader, last: int, findings: Findings) -> None:
    """Idempotency records and rate-limit takes are written in the same transaction as their
    events: one that names a seq past the journal's end means rows were lost from the end."""
    try:
        taken = [take.seq for take in journal.takes(after_seq=last)]
    except DamagedRow as exc:
        findings.add("unreadable", f"a rate-limit take past the journal's end: {exc}", seq=exc.seq)
        taken = []
    for what, seqs in (
        ("idempotency record", [record.seq for record in journal.requests(after_seq=last)]),
        ("rate-limit take", taken),
    ):
        if seqs:
            highest = max(seqs)
            findings.add(
                "tail-missing",
                f"{len(seqs)} {what}(s) name seqs up to {highest}, past the journal's end "
                f"at seq {last}: rows {span(last + 1, highest)} are missing",
                seq=last + 1,
            )
