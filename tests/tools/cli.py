"""Running `turnstile replay ...` in-process, as the command line does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tools.cli import main


class Ran(NamedTuple):
    status: int
    out: str
    err: str


def replay(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> Ran:
    """Exit status, stdout and stderr of `turnstile replay DATA_DIR ARGS`."""
    capsys.readouterr()
    status = main(["replay", str(data_dir), *args])
    captured = capsys.readouterr()
    return Ran(status, captured.out, captured.err)


def replay_json(
    capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    status, out, _ = replay(capsys, data_dir, *args, "--json")
    document = json.loads(out)  # exactly one JSON document
    assert isinstance(document, dict)
    return status, document


def kinds(document: dict[str, Any]) -> list[tuple[str, int | None, str | None]]:
    return [(f["kind"], f["seq"], f["stream"]) for f in document["findings"]]
