"""lab.bench: the bare trio floor counts what it ran, GC pauses are recorded per generation, and
the table takes the floor, GC and WebSocket results. Counts only: nothing here looks at a time."""

from __future__ import annotations

import gc
from typing import Any

import trio

from lab.bench import (
    QUICK,
    GcPauses,
    anomalies,
    build_table,
    gc_merge,
    gc_summary,
    render_table,
    trio_hops,
    trio_round_trips,
)


def test_round_trips_are_each_answered_once_with_their_own_reply() -> None:
    result = trio.run(trio_round_trips, 3, 7)
    assert result["clients"] == 3
    assert result["per_client"] == 7
    assert result["round_trips"] == 21
    assert result["served"] == 21
    assert result["wrong"] == 0


def test_hops_count_every_wake_up() -> None:
    result = trio.run(trio_hops, 2, 5)
    assert result["tasks"] == 4
    assert result["rounds"] == 5
    assert result["hops"] == 2 * 2 * 5


def test_gc_pauses_are_recorded_per_generation_while_recording_only() -> None:
    pauses = GcPauses()
    with pauses.recording():
        gc.collect(2)
        gc.collect(0)
    assert pauses not in gc.callbacks
    before = [len(p) for p in pauses.pauses]
    gc.collect(2)
    assert [len(p) for p in pauses.pauses] == before
    summary = pauses.summary()
    assert summary["collections"][2] >= 1
    assert summary["collections"][0] >= 1
    assert all(m >= 0 for m in summary["max_ms"])
    assert all(len(c) == len(p) for c, p in zip(pauses.cpu, pauses.pauses, strict=True))
    merged = gc_merge([summary, gc_summary([[0.001], [], [0.002, 0.003]], [[0.001], [], [0, 0]])])
    assert merged["collections"] == [
        summary["collections"][0] + 1,
        summary["collections"][1],
        summary["collections"][2] + 2,
    ]
    assert merged["max_ms"][2] == max(summary["max_ms"][2], 3.0)


# -- the table ------------------------------------------------------------------------------


def gc_figures(full_pause_ms: float) -> dict[str, list[float]]:
    return {
        "collections": [40, 2, 1],
        "max_ms": [1.5, 4.0, full_pause_ms],
        "max_cpu_ms": [1.0, 3.0, 9.0],
        "total_ms": [30, 6, 1],
    }


def results(floor: dict[str, Any] | None, websocket: bool) -> dict[str, Any]:
    base = {
        "rows": 300_000,
        "rows_per_s": 64_000.0,
        "first_tenth_rows_per_s": 150_000.0,
        "last_tenth_rows_per_s": 46_000.0,
        "row_bytes": 153.0,
        "payload_bytes": 71.0,
    }
    hot_gc = gc_figures(12.0)
    hot_round: dict[str, Any] = {
        "acked": 10_000,
        "rows_per_batch": 500.0,
        "loop_us_per_cmd": 60.0,
        "p50_ms": 30.0,
        "p99_ms": 45.0,
        "errors": {},
        "gc": hot_gc,
    }
    load = {
        "cmds_per_s": 600.0,
        "rows_per_batch": 3.0,
        "p50_ms": 0.4,
        "p99_ms": 8.0,
        "errors": {},
    }
    plain = {
        "recovery_s": 1.0,
        "events_per_s": 1e6,
        "events_folded": 100,
        "armed_timers": 10,
        "enter_s": 1.1,
        "hot_activate_ms": 12.0,
        "hot_entries": 9_899,
        "stream_activate_ms_median": 0.4,
    }
    res: dict[str, Any] = {
        "baseline": [base, base, base],
        "baseline_no_index": base,
        "many": {
            "events": 1_000,
            "clients": 2_000,
            "acked": 70_000,
            "cmds_per_s": 6_000.0,
            "rows_per_s": 18_000.0,
            "rows_per_batch": 6_000.0,
            "batches_per_s": 3.0,
            "loop_us_per_cmd": 80.0,
            "cpu_us_per_cmd": 110.0,
            "loop_busy": 0.9,
            "p50_ms": 300.0,
            "p99_ms": 600.0,
            "max_ms": 700.0,
            "errors": {},
            "gc": gc_figures(80.0),
        },
        "hot": {
            "users": 10_000,
            "tickets": 100,
            "clients": 2_000,
            "cmds_per_s": 9_000.0,
            "cmds_per_s_min": 8_000.0,
            "cmds_per_s_max": 11_000.0,
            "rounds": [hot_round, hot_round],
            "gc": gc_merge([hot_gc, hot_gc]),
        },
        "light": {"by_clients": {"1": load, "64": load}},
        "recovery": {
            "events": 1_000_003,
            "event_streams": 9_705,
            "limiter_streams": 100_000,
            "hot_events": 10_000,
            "ordinary_events": 56,
            "snapshot_build_s": 10.0,
            "snapshot_events_per_s": 100_000.0,
            "snapshot_streams": 109_705,
            "snapshot_mib": 90.0,
            "journal_mib": 150.0,
            "plain": plain,
            "with_snapshot": plain,
        },
        "memory": {
            "events": 100_000,
            "peak_rss_mib": 400.0,
            "rss_before_mib": 35.0,
            "rss_end_mib": 390.0,
            "kib_per_event": 3.7,
            "resident_actors": 20_000,
            "max_resident_actors": 20_000,
            "passivated": 180_000,
            "cmds_per_s": 9_000.0,
        },
    }
    if floor is not None:
        res["floor"] = floor
    if websocket:
        res["websocket"] = {
            "sizes": {"clients": 100, "tasks": 64},
            "in_process": {"rate": 8_000.0},
            "websocket": {"rate": 3_000.0, "p50_ms": 30.0, "p99_ms": 60.0},
            "ratio": 3_000.0 / 8_000.0,
            "ratio_with_ids": 0.5,
            "joins_held": 1,
            "ok": True,
        }
    return res


def tiny_floor() -> dict[str, Any]:
    return {
        "round_trip": trio.run(trio_round_trips, 4, 25),
        "hop": trio.run(trio_hops, 2, 25),
    }


def test_the_table_takes_the_floor_gc_and_websocket_lines() -> None:
    floor = tiny_floor()
    res = results(floor, websocket=True)
    table = render_table(build_table(res, QUICK))
    lines = table.splitlines()
    assert any(line.startswith("7. floor: bare trio round trip") for line in lines)
    assert any("round trips/s" in line for line in lines)
    assert any("hops/s" in line for line in lines)
    rate = floor["round_trip"]["per_s"]
    case1 = next(line for line in lines if line.startswith("1. durable joins"))
    assert f"0.094x baseline, {6_000 / rate:.3f}x trio round trip" in case1
    case2 = next(line for line in lines if line.startswith("2. one hot event"))
    assert f"{9_000 / rate:.3f}x trio round trip" in case2
    gc1 = next(line for line in lines if "GC in case 1" in line)
    assert "40/2/1" in gc1 and "MISSED (longest 80 ms)" in gc1
    assert "GC 0.5 us per command" in gc1  # 37 ms over 70,000 commands
    assert "most CPU one took per gen 1.0 / 3.0 / 9.0 ms" in gc1
    gc2 = next(line for line in lines if "GC in case 2" in line)
    assert "80/4/2" in gc2 and "met;" in gc2
    ws = next(line for line in lines if line.startswith("8. WebSocket, 100 clients"))
    assert "3,000 mutations/s" in ws
    assert "MISSED (75% of aim); = 0.38x in-process (8,000/s in the same run" in ws
    assert ws.endswith("0.50x in-process with request ids")
    assert anomalies(res) == []


def test_the_table_without_the_new_cases_still_renders() -> None:
    res = results(None, websocket=False)
    for case in ("many", "hot"):
        del res[case]["gc"]
    table = render_table(build_table(res, QUICK))
    assert "floor" not in table
    assert "WebSocket" not in table
    assert "GC in case" not in table
    assert "trio round trip" not in table


def test_miscounted_floor_and_websocket_are_anomalies() -> None:
    floor = tiny_floor()
    floor["round_trip"]["served"] -= 1
    res = results(floor, websocket=True)
    res["websocket"]["ok"] = False
    notes = anomalies(res)
    assert len(notes) == 2
    assert notes[0].startswith("trio round trip counts off: 100 answered, 99 served")
    assert notes[1].startswith("WebSocket case: counts do not add up")
