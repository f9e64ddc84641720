"""lab.gc_pauses at a small size: its figures come out whole, and neither an accepted nor a
refused join, nor a refused query, leaves cyclic garbage (what the collector's tuning counts
on: their objects die by reference counting)."""

from __future__ import annotations

import gc

import trio

from lab.gc_pauses import TASKS, load


def test_a_small_load_reports_every_figure_and_no_cyclic_garbage_per_join() -> None:
    result = trio.run(load, TASKS * 4)
    assert gc.isenabled()  # given back as it was found
    assert set(result) == {
        "kept_per_join",
        "kept_kinds",
        "joins_per_s",
        "collections",
        "longest_ms",
        "median_ms",
        "over_50_ms",
        "tracked",
        "frozen",
        "freeze_count_ms",
        "full_collection_ms",
        "cyclic_per_accepted",
        "cyclic_per_refused",
        "cyclic_per_refused_query",
    }
    assert result["tracked"] > 0  # the engine's heap as the load left it
    assert result["kept_per_join"] > 0  # (each join keeps its waiting-list entry at least)
    assert "WaitingListEntry" in dict(result["kept_kinds"])
    assert result["cyclic_per_accepted"] == 0
    assert result["cyclic_per_refused"] == 0
    assert result["cyclic_per_refused_query"] == 0
