"""Shared by the SIGKILL crash tests: run a worker module on one data dir again and again,
killing it at a random moment each time, and collect what each run acknowledged."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.journal import JOURNAL_FILE

REPO = Path(__file__).resolve().parents[2]

Ack = dict[str, Any]


def kill_runs(
    worker: str,
    data_dir: Path,
    log_dir: Path,
    rng: random.Random,
    *,
    runs: int,
    kill_after: tuple[float, float],
) -> list[list[Ack]]:
    """Start `python -m worker DATA_DIR SEED` `runs` times, each with its own seed, and SIGKILL
    it after `kill_after` seconds (uniform). Each run's stdout is one JSON line per acknowledged
    mutation; a torn last line is dropped. A worker that ends by itself, or writes anything to
    stderr, fails the test. Returns each run's acknowledged lines, in run order."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_dir.mkdir(parents=True)
    acknowledged: list[list[Ack]] = []
    for seed in rng.sample(range(1, 10**9), runs):
        out_path, err_path = log_dir / f"{seed}.out", log_dir / f"{seed}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", worker, str(data_dir), str(seed)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=err,
            )
            try:
                time.sleep(rng.uniform(*kill_after))
                os.kill(process.pid, signal.SIGKILL)
            finally:
                process.kill()  # a no-op once killed; never leave a worker behind
                process.wait()
        stderr = err_path.read_text()
        assert process.returncode == -signal.SIGKILL, (
            f"worker {seed} ended by itself ({process.returncode}):\n{stderr}"
        )
        assert not stderr, f"worker {seed} reported:\n{stderr}"
        lines = out_path.read_text().split("\n")[:-1]  # the last piece is "" or torn
        acknowledged.append([json.loads(line) for line in lines])
    return acknowledged


def integrity(data_dir: Path) -> str:
    """SQLite's integrity check of the journal ("ok" when sound)."""
    conn = sqlite3.connect(data_dir / JOURNAL_FILE)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
