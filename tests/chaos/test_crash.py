"""Crash under load, short form: `python -m lab.chaos` as an operator runs it (5 SIGKILLs of a
real `turnstile serve` on 127.0.0.1 under the mixed load, each once `KILL_EVERY` more mutations
were acknowledged since the server came up, the load's work bounded by count), read through its
JSON report; and the ledger that holds a journal to what was acknowledged, shown to catch a lost
and a duplicated mutation. Nothing here depends on how fast the machine is: every kill comes
after acknowledged work, and the times involved are only bounds against a hang.

The long form is `python -m lab.chaos --duration 120 --kills 30` (docs/reliability.md).
Set TURNSTILE_CHAOS_SEED to repeat a run's kill moments and users' choices.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import cast

import attrs
import trio
import trio.testing

from domain.identity import Identity
from engine.client import HANDSHAKE_SECONDS
from engine.testing import open_harness
from lab.chaos.crash import RESEND_SECONDS, ChaosConfig, percentile
from lab.chaos.ledger import Tally, account
from tools.loadtest import Sent
from tools.loadtest.config import GRACE_SECONDS, LoadConfig
from tools.loadtest.recorder import Recorder
from tools.loadtest.scenarios.base import RunContext
from tools.loadtest.users import MeasuredClient

REPO = Path(__file__).resolve().parents[2]
KILLS = 5
#: Mutations acknowledged to the load's clients between two kills (and after the last one).
KILL_EVERY = 60
#: Bounds the load (`--duration`): it ends when its work is done, in about 10 s on a quiet
#: machine.
LOAD_BOUND = 300
#: Bounds the whole command against a hang.
RUN_TIMEOUT = 900


def test_nothing_acknowledged_is_lost_or_doubled_across_five_sigkills(tmp_path: Path) -> None:
    seed = int(os.environ.get("TURNSTILE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: TURNSTILE_CHAOS_SEED={seed}")  # pytest shows it on failure
    report_path = tmp_path / "chaos.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "lab.chaos",
            "--duration", str(LOAD_BOUND), "--kills", str(KILLS),
            "--kill-every", str(KILL_EVERY), "--seed", str(seed),
            "--data-dir", str(tmp_path / "data"), "--report", str(report_path),
            "--users", "30", "--tickets", "12", "--subscribers", "30", "--writers", "2",
            "--staff", "3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )  # fmt: skip
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("PASSED")
    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    assert report["kills"] == {"asked": KILLS, "survived": KILLS}
    recovery = report["recoverySeconds"]
    assert len(recovery["each"]) == KILLS
    assert 0 < recovery["p50"] <= recovery["p99"] == recovery["max"]
    mutations = report["mutations"]
    assert (mutations["lost"], mutations["duplicated"], mutations["notReadBack"]) == (0, 0, 0)
    assert mutations["unfinished"] == 0
    assert mutations["readBack"] == mutations["acknowledged"] >= (KILLS + 1) * KILL_EVERY
    # The mixed load's every kind of write was acknowledged, and so checked.
    assert {
        "events:joinWaitingList",
        "events:purchaseTicket",
        "customers:create",
        "orders:create",
    } <= set(mutations["acknowledgedByFunction"])
    # The clients rode out the kills by reconnecting (each of ~70 connections, each kill).
    assert report["loadReconnects"] >= KILLS * 30
    assert [c for c in report["loadChecks"] if not c["passed"]] == []
    assert report["verify"]["exitStatus"] == 0
    verified = report["verify"]["report"]
    assert verified["ok"] is True and verified["findings"] == []
    assert verified["journal"]["rows"] == verified["journal"]["lastSeq"] > mutations["acknowledged"]
    assert report["stopStatus"] == 0


def test_a_data_dir_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "journal.db").write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "lab.chaos", "--data-dir", str(tmp_path), "--kills", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "must be absent or empty" in done.stderr


async def test_a_mutation_in_flight_across_the_last_kill_is_not_cut_short_by_the_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The liveness failure `unfinished: 1` of `--duration 40 --kills 12`: a mutation sent just
    before a kill near the load's end resolves once the server is back and its client has
    reconnected and re-sent it, which the load test's 5 s grace did not wait for. The chaos
    run's load waits as long as a restart may take plus a reconnect and re-send."""
    chaos = ChaosConfig(duration=40, kills=12)
    config = chaos.load_config("http://127.0.0.1:1", "key", "s" * 48, seed=11)
    assert config.grace == chaos.recovery_timeout + RESEND_SECONDS
    # Back at the restart's bound, then the client's backoff and its opening's bound.
    resolves_after = chaos.recovery_timeout + 2.0 + HANDSHAKE_SECONDS

    async def outcome(load: LoadConfig) -> str:
        context = RunContext(
            load, Recorder(), cast(MeasuredClient, None), "run", random.Random(1), trio.Event()
        )
        context.begin_load()
        with context.load_scope():
            await trio.sleep_until(context.load_deadline + resolves_after)
            return "resolved"
        return "unfinished"

    assert await outcome(config) == "resolved"
    assert await outcome(attrs.evolve(config, grace=GRACE_SECONDS)) == "unfinished"


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0


def _acked(function: str, args: dict[str, object], request: int, value: object, ts: int) -> Sent:
    return Sent(
        function=function, args=args, session_id="s", request_id=request,
        outcome="acknowledged", value=value, ts=ts,
    )  # fmt: skip


async def test_the_ledger_finds_lost_and_duplicated_mutations(
    tmp_path: Path, autojump_clock: object
) -> None:
    """A journal written by the engine, held to acknowledgements: ones it honours, a join it
    holds twice, a purchase it never wrote, and a join whose idempotency record is missing."""
    ann, bob = Identity(subject="ann"), Identity(subject="bob")
    data_dir = tmp_path / "data"
    async with open_harness(data_dir) as turnstile:
        engine = turnstile.engine
        create = {
            "name": "Gig", "description": "", "location": "Hall", "eventDate": 1_800_000_000_000,
            "price": 100, "totalTickets": 5, "orgId": "org_a",
        }  # fmt: skip
        made = await engine.mutation(
            "events:create", create, turnstile.admin, session_id="s", request_id=1
        )
        event_id = made.value
        join = {"eventId": event_id, "userId": "ann"}
        joined = await engine.mutation(
            "events:joinWaitingList", join, ann, session_id="s", request_id=2
        )
        release = {"eventId": event_id, "waitingListId": joined.value["waitingListId"]}
        await engine.mutation("waitingList:releaseTicket", release, ann)
        # Ann joins again under a request no client of the run sent.
        await engine.mutation("events:joinWaitingList", join, ann)
        bob_join = {"eventId": event_id, "userId": "bob"}
        bob_joined = await engine.mutation("events:joinWaitingList", bob_join, bob)

    honest = [
        _acked("events:create", create, 1, event_id, made.ts),
        _acked("events:joinWaitingList", join, 2, joined.value, joined.ts),
    ]
    tally = Tally()
    account(data_dir, honest, tally)
    assert tally.lost == [] and tally.problems == []
    assert len(tally.duplicated) == 2, tally.duplicated
    assert any("x2" in d and "'ann'" in d for d in tally.duplicated)  # her second join
    assert any("'bob'" in d for d in tally.duplicated)  # a join no request of the run made

    purchase = {
        "eventId": event_id, "userId": "bob", "waitingListId": bob_joined.value["waitingListId"],
        "paymentInfo": {"paymentIntentId": "pi_never", "amount": 100},
    }  # fmt: skip
    tally = Tally()
    account(
        data_dir,
        [
            *honest,
            # Ann's second join as a client that sent it but never heard back: may be written.
            Sent(function="events:joinWaitingList", args=join, session_id="t", request_id=1,
                 outcome="unfinished"),
            # Bob's join, acknowledged under a request the journal has no record of.
            _acked("events:joinWaitingList", bob_join, 7, bob_joined.value, bob_joined.ts),
            _acked("events:purchaseTicket", purchase, 3, "tk_x_0", bob_joined.ts),
            Sent(function="events:getAnything", args={}, session_id="s", request_id=4,
                 outcome="acknowledged", value=None, ts=1),
        ],
        tally,
    )  # fmt: skip
    assert tally.duplicated == []
    assert len(tally.lost) == 2, tally.lost
    assert any("events:purchaseTicket" in x and "pi_never" in x for x in tally.lost)
    assert any("idempotency record is None" in x and "#7" in x for x in tally.lost)
    assert tally.problems == [
        "events:getAnything: no effect rule, so its mutations were not checked"
    ]
