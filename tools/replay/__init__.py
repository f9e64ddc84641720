"""`turnstile replay`: the operator's journal tool (docs/replay.md).

- `verify(data_dir)`: rebuild every aggregate and read model from the journal alone, check
  rows, streams, invariants and snapshots; a `VerifyReport` of findings.
- `copy_until(data_dir, into, until_seq=|until_ms=)`: point-in-time recovery into a new data
  dir.
- `journal_stats(data_dir)`: counts, bytes, rate over time, biggest streams.
- `export_events(data_dir, out, ExportFilter(...), follow=...)`: JSON lines, optionally
  tailing a live journal.

Each reads the data dir only (read-only SQLite), except `copy_until`'s new dir.
`add_arguments`/`run` wire it into the `turnstile` command.
"""

from tools.replay.command import add_arguments, run
from tools.replay.export import ExportFilter, ExportSummary, export_events
from tools.replay.findings import KINDS, Finding
from tools.replay.pitr import RecoveryCopy, RecoveryRefused, copy_until
from tools.replay.snapfile import SnapshotCheck
from tools.replay.source import NoJournal
from tools.replay.stats import JournalStats, journal_stats
from tools.replay.verify import VerifyReport, verify

__all__ = [
    "KINDS",
    "ExportFilter",
    "ExportSummary",
    "Finding",
    "JournalStats",
    "NoJournal",
    "RecoveryCopy",
    "RecoveryRefused",
    "SnapshotCheck",
    "VerifyReport",
    "add_arguments",
    "copy_until",
    "export_events",
    "journal_stats",
    "run",
    "verify",
]
