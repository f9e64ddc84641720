"""lab.ws_split at a tiny size: the server's probes see every part of the round trip, and are
gone afterwards (no figure is checked: nothing here asserts on time)."""

from __future__ import annotations

from engine.engine import Engine
from engine.server.outbox import Outbox
from engine.sync.session import SyncSession
from lab.ws_bench import Sizes
from lab.ws_split import measure, report


def test_each_part_of_the_round_trip_is_sampled_and_the_probes_removed() -> None:
    originals = (Engine.begin_mutation, SyncSession._mutation, Outbox.write_texts)
    result = measure(Sizes(events=2, clients=4, procs=1, warmup=0.3, seconds=1.0))
    assert result["started"] == result["acked"] > 0
    for part in ("server", "durable", "outside", "append_wall", "append_cpu"):
        assert result[part]["n"] > 0, part
    # Each mutation answered in the window was timed from its arrival to its answer.
    assert result["server"]["n"] <= result["acked"]
    assert result["batches_per_s"] > 0 and result["rows_per_batch"] > 0
    assert (Engine.begin_mutation, SyncSession._mutation, Outbox.write_texts) == originals
    text = report(result)
    assert "begin_mutation -> durable outcome" in text and "Batches:" in text
