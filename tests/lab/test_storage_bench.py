"""lab.storage_bench at a tiny size: every path of every size is measured and reported, and the
command prints the machine and the table (no figure is checked: nothing here asserts on time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.storage_bench import PATHS, Sizes, main, measure, report

TINY = Sizes(files=((4096, 2), (70_000, 1)), rounds=2)


def test_every_path_of_every_size_is_measured_and_reported(tmp_path: Path) -> None:
    result = measure(TINY, tmp_path)
    assert [(entry["size"], entry["count"]) for entry in result["sizes"]] == list(TINY.files)
    for entry in result["sizes"]:
        assert len(entry["rounds"]) == TINY.rounds
        for round_ in entry["rounds"]:
            assert set(round_["seconds"]) == set(PATHS)
            assert all(seconds > 0 for seconds in round_["seconds"].values())
    text = report(result)
    assert text.count("| 4 KiB | 2 x 2 |") == 1
    assert text.count("| 68 KiB | 1 x 2 |") == 1
    assert list(tmp_path.iterdir()) == []  # its data dir and copies are gone


def test_the_command_prints_the_machine_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lab.storage_bench.QUICK", TINY)
    assert main(["--quick", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CPUs" in out
    assert "| file size | files x rounds | upload MiB/s | download MiB/s |" in out
