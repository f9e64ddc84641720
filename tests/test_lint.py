"""The tree is held to its linters: `ruff check .` and mypy strict over everything the suite runs
(pyproject's `[tool.mypy] files`: engine, domain, snapshots, tools, lab and tests). Each runs as
`./dev lint` runs it, from this interpreter's environment, and a finding fails the test with the
linter's own report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: A guard against a hung linter (a run that never ends fails), not a timing assertion.
HANG_GUARD = 900

LINTERS = {
    "ruff": ["ruff", "check", "."],
    "mypy": ["mypy"],
}


@pytest.mark.parametrize("name", sorted(LINTERS))
def test_the_linter_finds_nothing(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *LINTERS[name]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    if done.returncode != 0:
        report = (done.stdout + done.stderr).strip()
        pytest.fail(f"`{' '.join(LINTERS[name])}` found problems:\n{report}", pytrace=False)
