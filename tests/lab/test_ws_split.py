"""lab.ws_split: its probes time each part of every mutation of a client, and are gone
afterwards; the whole run at a tiny size reports them (no figure is checked: nothing here
asserts on time)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from domain.identity import ADMIN
from engine import EngineConfig
from engine.client import open_client
from engine.engine import Engine
from engine.server import Authenticator, open_server
from engine.server.outbox import Outbox
from engine.sync.session import SyncSession
from lab.ws_bench import ADMIN_KEY, CREATE, HOST, JWT_SECRET, Sizes, event_args
from lab.ws_split import Probes, measure, report

JOINS = 5


async def test_the_probes_time_every_mutation_and_are_removed_afterwards() -> None:
    originals = (Engine.begin_mutation, SyncSession._mutation, Outbox.write_texts)
    probes = Probes()
    with tempfile.TemporaryDirectory() as tmp, probes.installed():
        async with open_server(
            Path(tmp) / "data",
            engine_config=EngineConfig(run_jobs=False),
            authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
            host=HOST,
        ) as server:
            event = (await server.engine.mutation(CREATE, event_args(0), ADMIN)).value
            async with open_client(f"http://{HOST}:{server.port}", admin_key=ADMIN_KEY) as c:
                probes.recording = True
                for n in range(JOINS):
                    await c.mutation(
                        "events:joinWaitingList", {"eventId": event, "userId": f"u{n}"}
                    )
                probes.recording = False
    assert (Engine.begin_mutation, SyncSession._mutation, Outbox.write_texts) == originals
    # One at a time: each mutation is timed in the server and to durable; between two of
    # them, the time outside; each was written by an append of its own.
    assert len(probes.server) == len(probes.durable) == JOINS
    assert len(probes.outside) == JOINS - 1
    assert len(probes.append_wall) >= JOINS
    assert probes.append_cpu == []  # (appended by the writer process: no writer thread)
    assert all(d <= s for d, s in zip(probes.durable, probes.server, strict=True))


def test_a_tiny_run_reports_every_part() -> None:
    result = measure(Sizes(events=2, clients=4, procs=1, warmup=0.3, seconds=1.0))
    assert result["started"] == result["acked"] > 0
    text = report(result)
    parts = ("server: Mutation in", "begin_mutation -> durable outcome", "outside", "Batches:")
    for line in (*parts, "writer process:"):
        assert line in text, line
