"""lab.figures: the one percentile, machine description and docs/benchmarks.md section writer
every benchmark and harness of the lab uses."""

from __future__ import annotations

import math
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.figures import (
    machine,
    machine_line,
    percentile,
    replace_section,
    run_lines,
    write_section,
)

# -- percentile -----------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert percentile([float(n) for n in range(1, 101)], 99.5) == 100.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 50) == 3.0
    assert percentile([5.0, 7.0], 0) == 5.0
    assert percentile([5.0, 7.0], 100) == 7.0
    assert percentile(iter([2.0, 1.0]), 50) == 1.0


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # no clock in the verdict
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=60),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_is_the_least_value_with_p_percent_at_or_below_it(
    values: list[float], p: float
) -> None:
    result = percentile(values, p)
    assert result in values
    need = p / 100 * len(values)
    assert sum(v <= result for v in values) >= need
    assert sum(v < result for v in values) < max(need, 1)


# -- the machine ----------------------------------------------------------------------------------


def test_machine_describes_this_machine_and_its_line_says_it() -> None:
    info = machine()
    assert info["cpus"] == os.cpu_count()
    assert 1 <= info["cpus_usable"] <= info["cpus"]
    assert info["date"].endswith(" UTC")
    assert len(info["loadavg_start"]) == 3
    assert all(not p.startswith(("lab/", "docs/")) for p in info["dirty"])
    info["loadavg_end"] = (1.5, 0.0, 0.0)
    line = machine_line(info)
    assert line.startswith(f"{info['cpus']} CPUs ({info['cpus_usable']} usable)")
    assert f"commit {info['commit']}" in line
    assert "1.50 at the end" in line
    assert "\n" not in line


def test_machine_line_names_uncommitted_changes() -> None:
    info = {
        "commit": "abc1234",
        "dirty": ["engine/engine.py"],
        "cpus": 4,
        "cpus_usable": 2,
        "cpu_model": "Some CPU",
        "python": "CPython 3.11.7",
        "sqlite": "3.45.1",
        "trio": "0.35.0",
        "platform": "Linux",
        "date": "2026-12-01 00:00 UTC",
        "loadavg_start": (0.25, 0.0, 0.0),
    }
    assert machine_line(info) == (
        "4 CPUs (2 usable), Some CPU; CPython 3.11.7, SQLite 3.45.1, trio 0.35.0; Linux; "
        "load average 0.25 at the start; commit abc1234 plus uncommitted changes to "
        "engine/engine.py"
    )


def test_run_lines_open_a_section_with_the_run_and_the_machine() -> None:
    info = {
        "commit": "abc1234",
        "dirty": [],
        "cpus": 2,
        "cpus_usable": 2,
        "cpu_model": "Some CPU",
        "python": "CPython 3.11.7",
        "sqlite": "3.40.1",
        "trio": "0.35.0",
        "platform": "Linux",
        "date": "2026-12-01 00:00 UTC",
        "loadavg_start": (0.5, 0.0, 0.0),
        "loadavg_end": (1.25, 0.0, 0.0),
    }
    assert run_lines(info, command="python -m lab.bench", seconds=140.4, quick=False) == [
        "- command: `python -m lab.bench`",
        "- date: 2026-12-01 00:00 UTC; whole run 140 s",
        "- machine: 2 CPUs (2 usable), Some CPU; load average at start 0.50, at end 1.25",
        "- software: CPython 3.11.7, SQLite 3.40.1, trio 0.35.0; Linux",
        "- code: commit abc1234 (clean work tree)",
    ]
    quick = run_lines(
        {**info, "dirty": ["a.py", "b.py"]},
        command="python -m lab.peer_bench --quick",
        seconds=3,
        quick=True,
        software="Python 3.11.7, PostgreSQL 15",
    )
    assert quick[0] == (
        "- command: `python -m lab.peer_bench --quick` (quick sizes: a smoke test, not a "
        "measurement)"
    )
    assert quick[3] == "- software: Python 3.11.7, PostgreSQL 15; Linux"
    assert quick[4] == "- code: commit abc1234 plus uncommitted changes to a.py, b.py"


# -- sections of docs/benchmarks.md ---------------------------------------------------------------


def test_doc_section_is_replaced_and_other_sections_kept() -> None:
    doc = "# Engine benchmark\n\nbody\n\n## Fan-out\n\nfan\n"
    once = replace_section(doc, "## Peers", "## Peers\n\nfirst\n")
    assert once == doc + "\n## Peers\n\nfirst\n"
    twice = replace_section(once, "## Peers", "## Peers\n\nsecond\n")
    assert twice == doc + "\n## Peers\n\nsecond\n"
    middle = replace_section(
        "# A\n\n## Peers\n\nold\nlines\n\n## After\n\nkept\n", "## Peers", "## Peers\n\nnew\n"
    )
    assert middle == "# A\n\n## Peers\n\nnew\n\n## After\n\nkept\n"


def test_the_title_section_runs_through_the_headings_it_owns() -> None:
    doc = "# Engine\n\nold table\n\n## What each line measures\n\nold notes\n\n## Fan-out\n\nfan\n"
    new = "# Engine\n\nnew table\n\n## What each line measures\n\nnew notes\n"
    done = replace_section(doc, "# Engine", new, through=["## What each line measures"])
    assert done == new + "\n## Fan-out\n\nfan\n"
    # Without `through`, the section ends at the next heading and the old notes stay.
    alone = replace_section(doc, "# Engine", "# Engine\n\nnew table\n")
    assert alone == "# Engine\n\nnew table\n\n## What each line measures\n\nold notes\n\n" + (
        "## Fan-out\n\nfan\n"
    )


def test_a_missing_title_goes_first_and_a_missing_section_last() -> None:
    doc = "## Fan-out\n\nfan\n"
    assert replace_section(doc, "# Engine", "# Engine\n\nt\n") == "# Engine\n\nt\n\n" + doc
    assert replace_section(doc, "## Peers", "## Peers\n\np") == doc + "\n## Peers\n\np\n"
    assert replace_section("", "## Peers", "## Peers\n\np\n") == "## Peers\n\np\n"


def test_write_section_creates_the_page_and_keeps_other_sections(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "benchmarks.md"
    write_section("## Peers", "## Peers\n\nfirst\n", path=page)
    assert page.read_text() == "## Peers\n\nfirst\n"
    write_section("# Engine benchmark", "# Engine benchmark\n\ntable\n", path=page)
    write_section("## Customers", "## Customers\n\nc\n", path=page)
    write_section("## Peers", "## Peers\n\nsecond\n", path=page)
    assert page.read_text() == (
        "# Engine benchmark\n\ntable\n\n## Peers\n\nsecond\n\n## Customers\n\nc\n"
    )
