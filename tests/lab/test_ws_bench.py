"""lab.ws_bench at a tiny size: every mutation is acknowledged and the counts add up (no
figure is checked: nothing here asserts on time)."""

from __future__ import annotations

from lab.ws_bench import Sizes, measure, report


def test_every_mutation_is_acknowledged_and_counted() -> None:
    sizes = Sizes(events=2, tasks=3, clients=4, procs=2, warmup=0.2, seconds=0.5)
    result = measure(sizes)
    assert result["ok"], report(result)
    inproc, ws, ids = result["in_process"], result["websocket"], result["in_process_with_ids"]
    for phase in (inproc, ws, ids):
        assert phase["failed"] == {}
        assert phase["started"] == phase["acked"] > 0
        assert 0 <= phase["counted"] <= phase["acked"]
    assert ws["procs"] == 2
    assert result["joins_held"] == inproc["acked"] + ws["acked"] + ids["acked"]
    assert "WebSocket / in-process" in report(result)
