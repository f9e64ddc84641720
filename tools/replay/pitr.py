"""`turnstile replay DATA_DIR --until-seq N | --until-time T --into NEW_DIR`: point-in-time
recovery into a new data dir that `turnstile serve` starts from.

The copy holds the journal rows with seq <= N, the idempotency records with seq <= N (a
record's seq is its command's last event, so every recorded command is whole) and the rate
limiters' takes with seq <= N (likewise: a take is at its command's position), written
through `engine.journal` (read with a `JournalReader`, written with `Journal.append`) into a
fresh journal, and the bytes of every stored file recorded at N (`domain.storage`; one deleted
since, its bytes gone, is noted in the report). No snapshot is copied: the
engine folds the read models from the journal on its first start.

Guarantees:
- the source is only read;
- NEW_DIR must be absent or empty, and not inside DATA_DIR; it is then complete or untouched:
  the copy is built in a sibling directory and renamed into place only once every row is
  written and fsynced;
- every copied row passes the row checks (checksum, seq and version contiguity, decodable);
  if one does not, nothing is left at NEW_DIR and the report names the row. (Invariants are
  not re-checked: run `--verify` on NEW_DIR for that.)
- `--until-time T` cuts before the first row decided after T, so it never splits a command
  (a command's events share one decision time). `--until-seq N` may split one; the report
  says when row N+1 was decided in the same millisecond as row N.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs

from domain.model import Module
from domain.storage import STORED_FILES, FileDeleted, FileStored, StoredFile
from engine import codec
from engine.files import FileStore
from engine.journal import Batch, JournalReader, Row, open_journal
from tools.replay.checks import RowChecks, span
from tools.replay.findings import Finding, Findings
from tools.replay.progress import ProgressFactory, quiet
from tools.replay.source import journal_path, load_registry, read_journal
from tools.replay.times import format_time

_ROWS_PER_BATCH = 4_000
T = TypeVar("T")


class RecoveryRefused(Exception):
    """The copy cannot be made as asked (NEW_DIR not empty, a position past the end...)."""


@attrs.frozen(kw_only=True)
class RecoveryCopy:
    source: Path
    into: Path
    until_seq: int
    until_ms: int | None
    rows: int
    requests: int
    takes: int
    streams: int
    last_at: int | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": str(self.source),
            "into": str(self.into) if self.ok else None,
            "untilSeq": self.until_seq,
            "untilTime": None if self.until_ms is None else format_time(self.until_ms),
            "rows": self.rows,
            "requests": self.requests,
            "takes": self.takes,
            "streams": self.streams,
            "lastAt": self.last_at,
            "findings": [finding.as_json() for finding in self.findings],
            "notes": list(self.notes),
        }


def copy_until(
    data_dir: Path,
    into: Path,
    *,
    until_seq: int | None = None,
    until_ms: int | None = None,
    progress: ProgressFactory = quiet,
    modules: Iterable[Module] | None = None,
) -> RecoveryCopy:
    """Copy the journal prefix up to `until_seq` (or up to the last row decided at or before
    `until_ms`; the whole journal if neither) into `into`. Raises `RecoveryRefused` when it
    cannot be done as asked; damaged rows give a report with findings and no copy."""
    if until_seq is not None and until_ms is not None:
        raise RecoveryRefused("give --until-seq or --until-time, not both")
    source = journal_path(data_dir)
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise RecoveryRefused(f"{into} is not an empty directory")
    if into.resolve().is_relative_to(data_dir.resolve()):
        raise RecoveryRefused(f"{into} is inside {data_dir}, which is only ever read")
    reader = read_journal(data_dir)
    try:
        with reader.consistent():  # one consistent cut of rows and records, even from a live server
            target = _target(reader, until_seq, until_ms)
            into.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(
                tempfile.mkdtemp(prefix=f".{into.name}.", suffix=".partial", dir=into.parent)
            )
            staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a data dir is not
            try:
                report = _copy(reader, source, staging, into, target, until_ms, progress, modules)
                if report.ok:
                    report = _copy_files(reader, data_dir, staging, target, report)
                if report.ok:
                    _fsync(staging)
                    os.replace(staging, into)
                    _fsync(into.parent)
                else:
                    shutil.rmtree(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return report
    finally:
        reader.close()


def _target(reader: JournalReader, until_seq: int | None, until_ms: int | None) -> int:
    end = reader.last_seq()
    if until_seq is not None:
        if until_seq < 0 or until_seq > end:
            raise RecoveryRefused(f"--until-seq {until_seq}: the journal holds seq 1..{end}")
        return until_seq
    if until_ms is not None:
        found = reader.first_seq_after(until_ms)
        return end if found is None else found - 1
    return end


def _copy(
    reader: JournalReader,
    source: Path,
    staging: Path,
    into: Path,
    target: int,
    until_ms: int | None,
    progress: ProgressFactory,
    modules: Iterable[Module] | None,
) -> RecoveryCopy:
    findings = Findings()
    checks = RowChecks(load_registry(modules), findings)
    notes: list[str] = []
    copied = requests = takes = 0
    last_at: int | None = None
    journal = open_journal(staging)
    try:
        batch: list[Row] = []
        with progress("copy", target) as bar:
            for row in reader.scan(until_seq=target, chunk=_ROWS_PER_BATCH):
                checks.check(row)
                if findings:
                    break
                batch.append(row)
                last_at = row.at
                if len(batch) >= _ROWS_PER_BATCH:
                    journal.append(Batch(rows=batch, requests=()))
                    copied += len(batch)
                    batch = []
                    bar.update(row.seq)
            if not findings and checks.last_seq < target:
                findings.add(
                    "seq-gap",
                    f"seq {span(checks.last_seq + 1, target)} missing",
                    seq=checks.last_seq + 1,
                )
            if not findings:
                journal.append(Batch(rows=batch, requests=()))
                copied += len(batch)
                for chunk in _chunks(reader.requests(until_seq=target)):
                    journal.append(Batch(rows=(), requests=chunk))
                    requests += len(chunk)
                # (from seq 0: a take of a command that wrote nothing on an empty journal)
                for taken in _chunks(reader.takes(after_seq=-1, until_seq=target)):
                    journal.append(Batch(rows=(), requests=(), takes=taken))
                    takes += len(taken)
                bar.update(target)
    finally:
        journal.close()
    if findings:
        notes.append(f"nothing was written to {into}; choose a position before the damage")
    elif until_ms is None:
        after, at = reader.row_at(target + 1), reader.row_at(target)
        if after is not None and at is not None and after.at == at.at:
            notes.append(
                f"row {target + 1} ({after.type} on {after.stream}) was decided in the same "
                f"millisecond as row {target}: if both belong to one command, the copy holds "
                "only part of it (--until-time never splits a command)"
            )
    return RecoveryCopy(
        source=source,
        into=into,
        until_seq=target,
        until_ms=until_ms,
        rows=copied if not findings else 0,
        requests=requests,
        takes=takes,
        streams=len(checks.versions),
        last_at=last_at,
        findings=tuple(findings.items),
        notes=tuple(notes),
    )


_FILE_TYPES = [FileStored.type_name, FileDeleted.type_name]


def _copy_files(
    reader: JournalReader, data_dir: Path, staging: Path, target: int, report: RecoveryCopy
) -> RecoveryCopy:
    """Copy the bytes of the stored files recorded at `target` into the staging data dir."""
    recorded: Any = STORED_FILES.initial
    for row in reader.scan(until_seq=target, types=_FILE_TYPES):
        recorded = STORED_FILES.apply(recorded, codec.decode_row(row))
    files: dict[str, StoredFile] = dict(recorded)
    if not files:
        return report
    gone = FileStore(data_dir).copy_into(FileStore(staging), files)
    notes = list(report.notes)
    notes.append(f"{len(files) - len(gone)} stored file(s) copied")
    if gone:
        notes.append(
            f"{len(gone)} stored file(s) recorded at seq {target} were deleted since (their"
            f" bytes are gone, so the copy lacks them): {', '.join(gone[:5])}"
        )
    return attrs.evolve(report, notes=tuple(notes))


def _chunks(records: Iterator[T], size: int = 5_000) -> Iterator[list[T]]:
    """The records (or takes) in lists of at most `size` (one append each)."""
    chunk: list[T] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
