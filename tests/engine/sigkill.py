"""Shared by the SIGKILL crash tests: run a worker module on one data dir again and again, and
kill it each time at a point chosen by what the worker reported, never after a delay.

Plan:
- The parent (`kill_runs`) starts `python -m WORKER DATA_DIR SEED PARK` with stdin and stdout piped
  and reads its stdout line by line: each line is one acknowledged mutation (`acknowledge`), or
  `{"reached": POINT}` when the worker parked itself at POINT. Each run has a `KillPoint`: once
  `acks` acknowledgements (of those the test counts) have been read, either SIGKILL at once
  (`park` None: the worker is still running, commits in flight), or write POINT to the
  worker's stdin and SIGKILL once it reports being parked there. A run that ends or stops
  reporting before its kill point fails the test; so every run reaches the kill point it drew.
- The worker (`install_kill_points`, called before it opens the engine) hooks its own process
  only, through public seams: journal and snapshot files are opened with a `sqlite3.Connection`
  subclass (`sqlite3.connect(..., factory=...)`) that, once the parent has armed a point,
  parks the writing thread (forever, until the SIGKILL) at that point:

  - "written": a group commit's rows are in its open transaction, its COMMIT (the WAL write
    and the fsync) not begun: none of the batch may survive, none of it was acknowledged;
  - "committed": that COMMIT returned (the batch is durable) and nothing of it was
    acknowledged yet: all of it survives, unacknowledged;
  - "snapshot": a snapshot's rows are in its temporary file's transaction, before its COMMIT,
    fsync and rename: recovery must not take it for a snapshot.

  The event loop keeps running while a thread is parked (actors keep deciding and queueing),
  so the kill lands amid live work. Unarmed, the hooks cost one string comparison a statement,
  in the worker only; the engine has no test seam.

A SIGKILL leaves what the process had handed the kernel in the page cache, so to a killed
process "written to the WAL, not yet fsynced" is the same as "committed": the points above are
the ones a SIGKILL can tell apart (power loss is docs/reliability.md's storage-fault run).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from engine.journal import JOURNAL_FILE

REPO = Path(__file__).resolve().parents[2]
#: The park points a worker knows (see the module docstring).
PARK_POINTS = ("written", "committed", "snapshot")
#: Bounds one run if its worker hangs (it reaches any kill point in seconds, even on a busy
#: machine): a hang guard, never what a passing run depends on.
HANG_SECONDS = 240.0

Ack = dict[str, Any]


@attrs.frozen(kw_only=True)
class KillPoint:
    """Where one run is killed: after its `acks`-th counted acknowledgement, at once (`park`
    None) or at the next `park` point the worker reaches."""

    acks: int = attrs.field(validator=attrs.validators.ge(1))
    park: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(PARK_POINTS))
    )

    def __str__(self) -> str:
        where = "at once" if self.park is None else f"parked at {self.park!r}"
        return f"after acknowledgement {self.acks}, {where}"


def kill_points(
    rng: random.Random, plan: Mapping[str | None, int], acks: tuple[int, int]
) -> list[KillPoint]:
    """`plan[park]` runs for each park point (None: killed at once), each after a number of
    acknowledgements drawn uniformly from `acks`, in a shuffled order."""
    points = [
        KillPoint(acks=rng.randint(*acks), park=park)
        for park, count in plan.items()
        for _ in range(count)
    ]
    rng.shuffle(points)
    return points


def kill_runs(
    worker: str,
    data_dir: Path,
    log_dir: Path,
    rng: random.Random,
    points: Iterable[KillPoint],
    *,
    counted: Callable[[Ack], bool] = lambda _ack: True,
) -> list[list[Ack]]:
    """Run `worker` once per kill point, each run with its own seed, and SIGKILL it there
    (`counted` says which acknowledgements count towards `KillPoint.acks`). Returns each run's
    acknowledged lines (every line it wrote before it died; a torn last one dropped), in run
    order. Fails the test if a worker ends by itself, writes to stderr, or does not reach its
    kill point."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_dir.mkdir(parents=True)
    acknowledged: list[list[Ack]] = []
    for point in points:
        seed = rng.randrange(1, 10**9)
        out_path, err_path = log_dir / f"{seed}.out", log_dir / f"{seed}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", worker, str(data_dir), str(seed), str(point.park)],
                cwd=REPO,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
            hang = threading.Timer(HANG_SECONDS, process.kill)
            hang.start()
            try:
                lines, reached = _follow(process, point, counted, out)
            finally:
                hang.cancel()
                process.kill()  # a no-op once killed; never leave a worker behind
                process.wait()
                for pipe in (process.stdin, process.stdout):
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()  # type: ignore[union-attr]
        stderr = err_path.read_text()
        assert not stderr, f"worker {seed} reported:\n{stderr}"
        assert reached, (
            f"worker {seed} ended ({process.returncode}) before its kill point ({point}), "
            f"after {len(lines)} acknowledgements"
        )
        assert process.returncode == -signal.SIGKILL, f"worker {seed}: {process.returncode}"
        acknowledged.append(lines)
    return acknowledged


def _follow(
    process: subprocess.Popen[bytes], point: KillPoint, counted: Callable[[Ack], bool], out: Any
) -> tuple[list[Ack], bool]:
    """Read the worker's lines until it dies, killing it at `point`; its acknowledgements, and
    whether it was killed at its point."""
    assert process.stdin is not None and process.stdout is not None
    lines: list[Ack] = []
    counting, reached = 0, False
    for raw in process.stdout:
        out.write(raw)
        if not raw.endswith(b"\n"):
            break  # torn by the kill
        line = json.loads(raw)
        if "reached" in line:
            if not reached and line["reached"] == point.park and counting >= point.acks:
                reached = True
                os.kill(process.pid, signal.SIGKILL)
            continue
        lines.append(line)
        if reached or counting >= point.acks or not counted(line):
            continue
        counting += 1
        if counting < point.acks:
            continue
        if point.park is None:
            reached = True
            os.kill(process.pid, signal.SIGKILL)
        else:
            try:
                process.stdin.write(f"{point.park}\n".encode())
                process.stdin.flush()
            except BrokenPipeError:
                pass  # it died meanwhile: not at its point
    return lines, reached


def integrity(data_dir: Path) -> str:
    """SQLite's integrity check of the journal ("ok" when sound)."""
    conn = sqlite3.connect(data_dir / JOURNAL_FILE)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# -- the worker's side ------------------------------------------------------------------------

_output = threading.Lock()
#: The point the parent armed (None: none yet); read by the writing threads.
_armed: list[str | None] = [None]


def acknowledge(line: Ack) -> None:
    """Write one acknowledgement line to stdout, whole, before anything else happens."""
    _write(line)


def _write(line: Ack) -> None:
    with _output:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def _park(point: str) -> None:
    """If `point` is armed: report it and block this thread until the process is killed."""
    if _armed[0] != point:
        return
    _armed[0] = None
    _write({"reached": point})
    threading.Event().wait()


class _ParkingConnection(sqlite3.Connection):
    """A connection that parks its thread around the COMMIT of a transaction that inserted
    into `table` (`before` the COMMIT, `after` it returned)."""

    table = ""
    before: str | None = None
    after: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inserted = False

    def _statement(self, sql: str) -> None:
        if sql.startswith(self.table):
            self._inserted = True

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql != "COMMIT" or not self._inserted:
            self._statement(sql)
            return super().execute(sql, *args)
        self._inserted = False
        if self.before is not None:
            _park(self.before)
        cursor = super().execute(sql, *args)
        if self.after is not None:
            _park(self.after)
        return cursor

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._statement(sql)
        return super().executemany(sql, *args)


class _JournalConnection(_ParkingConnection):
    table, before, after = "INSERT INTO events", "written", "committed"


class _SnapshotConnection(_ParkingConnection):
    table, before = "INSERT OR REPLACE INTO states", "snapshot"


#: The park points inside the appending connection's transaction.
_APPEND_POINTS = ("written", "committed")


def appends_in_child(park: str) -> bool:
    """`EngineConfig.writer_process` for a run parked at `park` (the worker's third argument,
    "None" for a kill at once). The points "written" and "committed" are hooks on the
    appending connection, which only an in-process append has (the writer process is another
    process, where no hook runs): those runs append in a worker thread. Every other run
    appends through the writer process, as a server does, and is killed amid its appends."""
    return park not in _APPEND_POINTS


def install_kill_points() -> None:
    """In a worker, before it opens its engine: journal and snapshot files open through the
    parking connections, and a thread takes the points the parent arms from stdin."""
    connect = sqlite3.connect

    def connect_parking(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        name, _, query = str(database).partition("?")
        if "factory" not in kwargs and "mode=ro" not in query:  # read-only ones never commit
            if name.endswith(JOURNAL_FILE):
                kwargs["factory"] = _JournalConnection
            elif name.endswith(".db.tmp"):
                kwargs["factory"] = _SnapshotConnection
        conn: sqlite3.Connection = connect(database, *args, **kwargs)
        return conn

    sqlite3.connect = connect_parking  # type: ignore[assignment]

    def arm() -> None:
        for line in sys.stdin:
            _armed[0] = line.strip() or None

    threading.Thread(target=arm, name="kill-points", daemon=True).start()


__all__ = [
    "PARK_POINTS",
    "Ack",
    "KillPoint",
    "acknowledge",
    "appends_in_child",
    "install_kill_points",
    "integrity",
    "kill_points",
    "kill_runs",
]
