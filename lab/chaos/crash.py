"""Crash under load: the `mixed` load test against a server that is SIGKILLed at random
moments and restarted, again and again; then nothing acknowledged may be lost or applied twice.

    report = trio.run(run_chaos, ChaosConfig(duration=120, kills=30))
    report.passed, report.kills, report.tally.lost, report.recovery_seconds

The run, start to finish (every phase bounded):

1. `turnstile serve` starts as a subprocess on 127.0.0.1 and a fixed port, over an empty data
   dir (`ServerProcess`).
2. The load test's `mixed` workload (tools.loadtest, in this process) runs for `duration`
   seconds; its clients are the project's sync client, which reconnects by itself and re-sends
   a mutation still in flight under its original `(session, request)`. Its recorder keeps every
   mutation sent and how it ended.
3. Meanwhile the killer waits for the load to start, then `kills` times SIGKILLs the server and
   restarts it on the same port and data dir; recovery time is from the kill to `/health`
   answering 200. Where the kills land:

   - by default, at a random moment of each kill's share of the `duration`: a kill waits for
     the previous recovery and `MIN_UPTIME`; a kill that would land after the load's end is
     not made (a machine too slow to recover in time makes fewer kills, and the run fails);
   - with `kill_every` N, by what happened: each kill once the load's clients were told of N
     more acknowledged mutations since the server last came up. The load's work is then
     bounded by count (enough for every kill and N more acknowledgements after the last one)
     and ends when it is done; `duration` only bounds it. So every kill is made and every
     server served load, however slow the machine.

   A mutation in flight at the load's end may take `grace` seconds to resolve (a restart's
   `recovery_timeout`, then the client's reconnect and re-send): only a mutation that no
   server answered within that bound counts as unfinished.
4. The load test closes with its own checks (never oversold, every acknowledged purchase and
   booking present, every subscriber converged), on the last server.
5. Every acknowledged mutation is read back from that server (`ledger.read_back`); the server
   is stopped cleanly; `turnstile replay DATA_DIR --verify --json` must be clean (journal
   sound, invariants at every command boundary, snapshots equal to the journal), and the
   journal is held to what was acknowledged (`ledger.account`: lost, duplicated).
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
import trio

from engine.client import HANDSHAKE_SECONDS, open_client
from lab import figures
from lab.chaos.ledger import Tally, account, count_outcomes, read_back
from lab.chaos.server import REPO, ServerFailed, ServerProcess, free_port
from tools.loadtest import LoadConfig, Recorder, RunResult, SetupFailed, run_loadtest
from tools.loadtest.checks import Check

#: Seconds a restarted server serves load at least before the next kill.
MIN_UPTIME = 0.3
#: A kill lands in the middle part of its share of the load (fractions of the share).
KILL_WINDOW = (0.15, 0.85)
#: Bounds the clean stop at the end and the read-back of acknowledged mutations.
STOP_SECONDS = 30.0
READ_BACK_SECONDS = 120.0
VERIFY_SECONDS = 300.0
#: Bookings at most per second of load: enough that staff book until the deadline.
BOOKINGS_PER_SECOND = 100
#: Seconds a client may take, once the server is back, to reconnect (backoff up to 2 s, an
#: opening bounded by HANDSHAKE_SECONDS) and hear the outcome of a mutation it re-sent.
RESEND_SECONDS = 2.0 + HANDSHAKE_SECONDS + 10.0


class ChaosError(Exception):
    """The run cannot start as asked (the message says why, for the command line)."""


@attrs.frozen(kw_only=True)
class ChaosConfig:
    #: Seconds of load; the kills are spread over it.
    duration: float = 120.0
    kills: int = 30
    #: Kill after this many mutations acknowledged since the server last came up (None: at
    #: random moments spread over `duration`; see the module docstring).
    kill_every: int | None = None
    #: A fixed port on 127.0.0.1 (None: a free one, kept for the whole run).
    port: int | None = None
    #: Absent or empty (None: a temporary directory, removed after a passing run).
    data_dir: Path | None = None
    seed: int | None = None
    #: Seconds a restart may take to answer /health 200 before the run fails.
    recovery_timeout: float = 60.0
    #: The mixed load's shape (see docs/loadtest.md).
    users: int = 100
    tickets: int = 40
    subscribers: int = 100
    writers: int = 4
    staff: int = 6
    think_ms: float = 20.0

    def validate(self) -> None:
        if not self.duration > 0:
            raise ChaosError("--duration must be > 0")
        if self.kills < 0:
            raise ChaosError("--kills must be >= 0")
        if self.kill_every is not None and self.kill_every < 1:
            raise ChaosError("--kill-every must be >= 1")
        if self.port is not None and not 0 < self.port < 65536:
            raise ChaosError("--port must be between 1 and 65535")
        data_dir = self.data_dir
        if data_dir is not None and data_dir.exists():  # noqa: SIM102 - one rule per test
            if not data_dir.is_dir() or any(data_dir.iterdir()):
                raise ChaosError(
                    f"--data-dir {data_dir} must be absent or empty: the run holds the "
                    "whole journal to what its own clients were told"
                )

    def load_config(self, url: str, admin_key: str, jwt_secret: str, seed: int) -> LoadConfig:
        # By count, each of the two writing scenarios alone has work for every kill and for
        # the last server (refusals take a little of it); by time, staff book until the end.
        if self.kill_every is not None:
            writes = bookings = 2 * (self.kills + 1) * self.kill_every
        else:
            writes, bookings = 0, max(200, int(self.duration * BOOKINGS_PER_SECOND))
        return LoadConfig(
            url=url,
            admin_key=admin_key,
            jwt_secret=jwt_secret,
            scenario="mixed",
            duration=self.duration,
            users=self.users,
            tickets=self.tickets,
            subscribers=self.subscribers,
            writers=self.writers,
            writes=writes,
            staff=self.staff,
            bookings=bookings,
            think_ms=self.think_ms,
            grace=self.recovery_timeout + RESEND_SECONDS,
            seed=seed,
            org_id="org_chaos",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "duration": self.duration,
            "kills": self.kills,
            "killEvery": self.kill_every,
            "users": self.users,
            "tickets": self.tickets,
            "subscribers": self.subscribers,
            "writers": self.writers,
            "staff": self.staff,
            "thinkMs": self.think_ms,
        }


@attrs.define(kw_only=True)
class ChaosReport:
    config: ChaosConfig
    seed: int
    port: int
    data_dir: Path
    #: Seconds from each kill to /health 200, in kill order.
    recovery_seconds: list[float]
    tally: Tally
    load: RunResult | None
    verify: dict[str, Any] | None
    verify_status: int | None
    stop_status: int | None
    failure: str | None = None
    #: False if the run never got going (the server did not start, the load could not begin).
    started: bool = True

    @property
    def kills(self) -> int:
        return len(self.recovery_seconds)

    @property
    def load_checks(self) -> list[Check]:
        return [] if self.load is None else self.load.checks

    @property
    def verify_clean(self) -> bool:
        return self.verify_status == 0 and self.verify is not None and self.verify.get("ok") is True

    @property
    def passed(self) -> bool:
        return (
            self.failure is None
            and self.kills == self.config.kills
            and not self.tally.lost
            and not self.tally.duplicated
            and not self.tally.not_read_back
            and not self.tally.problems
            and self.tally.unfinished == 0
            and all(check.passed for check in self.load_checks)
            and self.verify_clean
        )

    def load_errors(self) -> dict[str, Any]:
        """What the load's clients were refused, by function and code, with an example each."""
        if self.load is None:
            return {}
        recorder = self.load.recorder
        return {
            "byFunction": {
                function: dict(codes) for function, codes in recorder.errors_by_function.items()
            },
            "examples": dict(recorder.error_examples),
        }

    def recovery_percentile(self, p: float) -> float | None:
        return percentile(self.recovery_seconds, p)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failure": self.failure,
            "config": self.config.to_json(),
            "seed": self.seed,
            "port": self.port,
            "dataDir": str(self.data_dir),
            "kills": {"asked": self.config.kills, "survived": self.kills},
            "recoverySeconds": {
                "p50": self.recovery_percentile(50),
                "p99": self.recovery_percentile(99),
                "max": max(self.recovery_seconds, default=None),
                "each": [round(s, 4) for s in self.recovery_seconds],
            },
            "mutations": self.tally.to_json(),
            "loadChecks": [check.to_json() for check in self.load_checks],
            "loadReconnects": None if self.load is None else self.load.recorder.reconnects,
            "loadErrors": self.load_errors(),
            "verify": {"exitStatus": self.verify_status, "report": self.verify},
            "stopStatus": self.stop_status,
        }


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile `p` (0 < p <= 100) of `values` (`lab.figures.percentile`),
    or None if empty."""
    return figures.percentile(values, p) if values else None


class WatchedRecorder(Recorder):
    """The load test's recorder, telling the killer when the load begins and ends and how many
    of its mutations were acknowledged."""

    def __init__(self) -> None:
        super().__init__(keep_sent=True)
        self.load_begun = trio.Event()
        #: Mutations acknowledged to the load's clients since the load began.
        self.acknowledged = 0
        self._news = trio.Event()

    def start_load(self) -> None:
        super().start_load()
        self.load_begun.set()

    def end_load(self) -> None:
        super().end_load()
        self._news.set()

    def mutation_succeeded(self, function: str, sent: float, resolved: float) -> None:
        super().mutation_succeeded(function, sent, resolved)
        if self.load_started is not None:
            self.acknowledged += 1
            self._news.set()

    async def wait_acknowledged(self, count: int) -> None:
        """Return once `count` mutations were acknowledged since the load began, or the load
        ended."""
        while self.acknowledged < count and self.load_ended is None:
            self._news = trio.Event()
            await self._news.wait()


class Killer:
    """Kills the server `kills` times during the load and restarts it each time."""

    def __init__(
        self,
        server: ServerProcess,
        recorder: WatchedRecorder,
        config: ChaosConfig,
        rng: random.Random,
    ) -> None:
        self.server = server
        self.recorder = recorder
        self.config = config
        self.rng = rng
        self.recovery_seconds: list[float] = []

    async def run(self) -> None:
        await self.recorder.load_begun.wait()
        if self.config.kill_every is not None:
            await self._kill_by_acknowledgements(self.config.kill_every)
            return
        load_start = trio.current_time()
        deadline = load_start + self.config.duration
        share = self.config.duration / max(1, self.config.kills)
        ready_at = load_start
        for index in range(self.config.kills):
            planned = load_start + share * (index + self.rng.uniform(*KILL_WINDOW))
            kill_at = max(planned, ready_at + MIN_UPTIME)
            if kill_at >= deadline or self._load_over():
                return
            await trio.sleep_until(kill_at)
            if self._load_over():
                return
            ready_at = await self._kill_and_restart()

    async def _kill_by_acknowledgements(self, every: int) -> None:
        """Each kill once `every` more mutations were acknowledged since the server came up."""
        for _ in range(self.config.kills):
            await self.recorder.wait_acknowledged(self.recorder.acknowledged + every)
            if self._load_over():
                return
            await self._kill_and_restart()

    async def _kill_and_restart(self) -> float:
        """SIGKILL the server, restart it, wait until it is healthy; when that was."""
        killed = trio.current_time()
        await self.server.kill()
        self.server.start()
        await self.server.wait_healthy()
        ready_at = trio.current_time()
        self.recovery_seconds.append(ready_at - killed)
        return ready_at

    def _load_over(self) -> bool:
        """The load ended (its checks may be under way): no kill may land any more."""
        return self.recorder.load_ended is not None


async def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Run `config` (see the module docstring). Raises `ChaosError` if it cannot start as
    asked; a server that does not come up (at first: `started` is False) or does not come back
    after a kill is reported as the run's `failure`."""
    config.validate()
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="turnstile-chaos-")) / "data"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    port = config.port or free_port()
    admin_key, jwt_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    server = ServerProcess(
        data_dir=data_dir,
        port=port,
        admin_key=admin_key,
        jwt_secret=jwt_secret,
        log_path=data_dir.parent / f"{data_dir.name}-server.log",
        health_limit=config.recovery_timeout,
        stop_limit=STOP_SECONDS,
    )
    recorder = WatchedRecorder()
    killer = Killer(server, recorder, config, rng)
    tally = Tally()
    load: RunResult | None = None
    failure: str | None = None
    stop_status: int | None = None
    started = False
    try:
        server.start()
        await server.wait_healthy()
        started = True
        load_config = config.load_config(server.url, admin_key, jwt_secret, seed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer.run)
            load = await run_loadtest(load_config, recorder=recorder)
        assert recorder.sent is not None
        count_outcomes(tally, recorder.sent)
        with trio.fail_after(READ_BACK_SECONDS):
            async with open_client(server.url, admin_key=admin_key) as client:
                await read_back(client, recorder.sent, tally)
        stop_status = await server.stop()
    except* ServerFailed as group:
        failure = str(group.exceptions[0])
    except* SetupFailed as group:
        failure = f"the load test could not start: {group.exceptions[0]}"
        started = False
    except* trio.TooSlowError:
        failure = f"reading back the acknowledged mutations took over {READ_BACK_SECONDS:g} s"
    finally:
        server.close()
    verify: dict[str, Any] | None = None
    verify_status: int | None = None
    if failure is None and recorder.sent is not None:
        verify_status, verify = await trio.to_thread.run_sync(verify_journal, data_dir)
        account(data_dir, recorder.sent, tally)
    return ChaosReport(
        config=config,
        seed=seed,
        port=port,
        data_dir=data_dir,
        recovery_seconds=killer.recovery_seconds,
        tally=tally,
        load=load,
        verify=verify,
        verify_status=verify_status,
        stop_status=stop_status,
        failure=failure,
        started=started,
    )


def verify_journal(data_dir: Path) -> tuple[int, dict[str, Any] | None]:
    """`turnstile replay DATA_DIR --verify --json`, as an operator runs it: its exit status
    and its JSON report (None if it printed none)."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "replay", str(data_dir), "--verify", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=VERIFY_SECONDS,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    return done.returncode, report


__all__ = ["ChaosConfig", "ChaosError", "ChaosReport", "Killer", "percentile", "run_chaos"]
