"""The long forms: `python -m tools.hostile fuzz ...` and `python -m tools.hostile flood ...`.

`fuzz` plays Hypothesis-generated hostile cases against a live in-process server (as the
tests do, with a seed of the run's own) and prints how many were tried. `flood` starts the
server in a process of its own (so its resident memory is its own to measure), floods it from
this one and prints the figures of docs/reliability.md: connections held, memory per
connection, and the bystanders' round-trip p50/p99 before and during each flood. Nothing here
asserts on time: it measures and prints; a wrong answer, a failed bystander round or a server
that logged a failure ends the run with exit status 1.
"""

from __future__ import annotations

import itertools
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from engine.server import ServerConfig
from tools.hostile.bystanders import Bystanders, percentile
from tools.hostile.flood import (
    churn,
    fast_sender,
    hold_sessions,
    never_reading,
    rss_bytes,
    slow_handshake,
)
from tools.hostile.fuzz import TRANSPORTS, FuzzReport, fuzz
from tools.hostile.target import ADMIN_KEY, JWT_SECRET, open_target
from tools.hostile.wire import exchange, http_call, parse_answers

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


# -- fuzz ----------------------------------------------------------------------------------------


async def run_fuzz(cases: int, transports: Sequence[str], seed: int) -> list[FuzzReport]:
    reports: list[FuzzReport] = []
    with tempfile.TemporaryDirectory(prefix="turnstile-fuzz-") as data:
        # The shipped limits, but a short read timeout: cases that cut a body short end soon.
        config = ServerConfig(read_timeout=1.0)
        async with open_target(Path(data) / "data", config) as target:
            async with Bystanders(target, count=3) as crowd:
                for transport in transports:
                    report = await fuzz(
                        target, transport, cases=cases, bystanders=crowd, seed=seed
                    )
                    print(report.line(), flush=True)
                    reports.append(report)
            target.assert_no_errors(" during the run")
    return reports


# -- a server in a process of its own ----------------------------------------------------------


async def serve_standalone(data_dir: Path, settings: dict[str, Any]) -> None:
    """`python -m tools.hostile serve`: the server the flood runs against (prints its port)."""
    from engine import EngineConfig, open_engine
    from engine.server import Authenticator, serve

    config = ServerConfig(**settings)
    async with open_engine(data_dir, config=EngineConfig()) as engine, trio.open_nursery() as n:

        async def run(task_status: trio.TaskStatus[int]) -> None:
            await serve(
                engine,
                host="127.0.0.1",
                port=0,
                authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
                config=config,
                task_status=task_status,
            )

        port = await n.start(run)
        print(f"listening on http://127.0.0.1:{port}", flush=True)


@attrs.define
class RemoteServer:
    """A server process started by `open_remote`: what the bystanders and floods need."""

    process: trio.Process
    port: int

    @property
    def admin_key(self) -> str:
        return ADMIN_KEY

    def user_token(self, sub: str, org: str | None = None, caps: Sequence[str] = ()) -> str:
        from engine.server import mint_token

        return mint_token(JWT_SECRET, sub, org, caps)

    async def admin_mutation(self, name: str, args: Any) -> Any:
        return await http_call(self.port, "mutation", name, args, f"Convex {ADMIN_KEY}")

    async def read(self, name: str, args: Any) -> Any:
        return await http_call(self.port, "query", name, args)

    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    async def metric(self, name: str, labels: str = "") -> float:
        """One sample of the server's /metrics (0 when absent)."""
        raw = await exchange(
            self.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", eof=False
        )
        (answer,) = parse_answers(raw)
        pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+]+)"
        found = re.search(pattern.encode(), answer.body)
        return float(found.group(1)) if found else 0.0

    async def metric_reaches(self, name: str, value: float, within: float = 60) -> None:
        with trio.move_on_after(within):
            while True:
                if await self.metric(name) == value:
                    return
                await trio.sleep(0.1)
        raise AssertionError(f"{name} did not reach {value} within {within} s")


@asynccontextmanager
async def open_remote(data_dir: Path, settings: dict[str, str]) -> AsyncIterator[RemoteServer]:
    command = [sys.executable, "-m", "tools.hostile", "serve", "--data-dir", str(data_dir)]
    for name, value in settings.items():
        command += ["--set", f"{name}={value}"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(60):
            while b"\n" not in line:
                data = await process.stdout.receive_some(4096)
                if not data:
                    break
                line += data
        found = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", line)
        if found is None:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield RemoteServer(process, int(found.group(1)))
    finally:
        process.send_signal(signal.SIGINT)  # trio unwinds, the engine closes cleanly
        with trio.move_on_after(30) as waiting:
            await process.wait()
        if waiting.cancelled_caught:
            process.kill()


# -- flood ---------------------------------------------------------------------------------------


@attrs.define
class Phase:
    name: str
    detail: str
    seconds: float
    rounds: list[float]
    server_mib: float

    def row(self) -> str:
        p50 = percentile(self.rounds, 0.5) * 1000
        p99 = percentile(self.rounds, 0.99) * 1000
        return (
            f"| {self.name} | {self.detail} | {self.seconds:.1f} | {len(self.rounds)} |"
            f" {p50:.1f} | {p99:.1f} | {self.server_mib:.0f} |"
        )


async def _during(crowd: Bystanders, work: Any) -> tuple[float, list[float]]:
    """Run `work()` while the bystanders do rounds; its seconds and their round trips."""
    stop = trio.Event()
    rounds: list[float] = []

    async def keep_going() -> None:
        while not stop.is_set():
            rounds.append(await crowd.round())

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_going)
        await work()
        stop.set()
    return time.perf_counter() - started, rounds


async def run_flood(connections: int, slow: int, senders: int, readers: int) -> list[str]:
    """Every flood against one server process; returns the report's lines."""
    defaults = ServerConfig()
    lines = [
        f"Flood of {connections:,} connections against `python -m tools.hostile serve`"
        " (shipped ServerConfig defaults):",
        "",
        "| phase | what | seconds | bystander rounds | p50 ms | p99 ms | server RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="turnstile-flood-") as data:
        async with (
            open_remote(Path(data) / "data", {}) as server,
            Bystanders(server, count=3) as crowd,
            trio.open_nursery() as holding_tasks,
        ):
            phases: list[Phase] = []

            def record(name: str, detail: str, seconds: float, rounds: list[float]) -> None:
                phase = Phase(name, detail, seconds, rounds, server.rss() / MIB)
                phases.append(phase)
                lines.append(phase.row())
                print(lines[-1], flush=True)

            for line in lines:
                print(line, flush=True)
            idle: list[float] = []
            started = time.perf_counter()
            for _ in range(200):
                idle.append(await crowd.round())
            record("quiet", "bystanders alone", time.perf_counter() - started, idle)

            # Held: idle subscribed sessions; the server's memory per connection.
            before = server.rss()
            held_sessions = None

            async def hold() -> None:
                nonlocal held_sessions
                held_sessions = await hold_sessions(
                    holding_tasks, server.port, connections, crowd.event_id
                )

            seconds, rounds = await _during(crowd, hold)
            await server.metric_reaches("turnstile_websocket_sessions", connections + 4)
            holding = server.rss()
            per_connection = (holding - before) / connections
            record("open", f"{connections:,} sessions opened and subscribed", seconds, rounds)
            started = time.perf_counter()
            held_rounds = [await crowd.round() for _ in range(100)]
            record("held", f"{connections:,} sessions held; each join fans out to all",
                   time.perf_counter() - started, held_rounds)
            assert held_sessions is not None
            await held_sessions.aclose()
            await server.metric_reaches("turnstile_websocket_sessions", 4)
            after_close = server.rss()

            # Churn: opened and dropped, every kind in turn.
            seconds, rounds = await _during(
                crowd, lambda: churn(server.port, connections, concurrency=100,
                                     event_id=crowd.event_id)
            )
            # The bystanders' 4, and the connection asking for /metrics.
            await server.metric_reaches("turnstile_open_connections", 5)
            record("churn", f"{connections:,} connections opened and dropped", seconds, rounds)

            # Slow handshakes: silent, trickling, upgraded but never saying Connect.
            kinds = ("silent", "trickle", "no-connect")
            lasted: list[float] = []

            async def slow_ones() -> None:
                async def one(kind: str) -> None:
                    lasted.append(await slow_handshake(server.port, kind))

                async with trio.open_nursery() as nursery:
                    for i in range(slow):
                        nursery.start_soon(one, kinds[i % 3])

            seconds, rounds = await _during(crowd, slow_ones)
            record("slow", f"{slow:,} slow handshakes, all cut after at most"
                   f" {max(lasted):.1f} s (limit {defaults.handshake_timeout:.0f} s)",
                   seconds, rounds)

            # Clients that never read, subscribed to a large result that keeps changing.
            big = {"name": "Big", "description": "d" * 20_000, "location": "Hall",
                   "eventDate": 1_900_000_000_000, "price": 1, "totalTickets": 10,
                   "orgId": "org_big"}
            ids = [await server.admin_mutation("events:create", big) for _ in range(50)]

            dropped_before = await server.metric(
                "turnstile_limited_total", 'limit="send_timeout"'
            )

            async def never_read() -> None:
                async with AsyncExitStack() as stack:
                    for _ in range(readers):
                        await stack.enter_async_context(
                            never_reading(server.port, server.admin_key)
                        )
                    # Keep changing what they subscribed to until the server dropped them.
                    for round_ in itertools.count():
                        dropped = await server.metric(
                            "turnstile_limited_total", 'limit="send_timeout"'
                        )
                        if dropped >= dropped_before + readers:
                            return
                        await server.admin_mutation(
                            "events:update",
                            {"eventId": ids[round_ % len(ids)], "name": f"n{round_}"},
                        )
                        await trio.sleep(0.05)

            seconds, rounds = await _during(crowd, never_read)
            dropped = await server.metric("turnstile_limited_total", 'limit="send_timeout"')
            dropped -= dropped_before
            record("no-read", f"{readers} clients that never read, {dropped:.0f} dropped"
                   f" (send timeout {defaults.send_timeout:.0f} s)", seconds, rounds)

            # Clients that send as fast as they can.
            reports = []
            peak = server.rss()

            async def fast() -> None:
                nonlocal peak

                async def one() -> None:
                    reports.append(await fast_sender(server.port, messages=3_000))

                async with trio.open_nursery() as nursery:
                    for _ in range(senders):
                        nursery.start_soon(one)
                    while len(reports) < senders:
                        peak = max(peak, server.rss())
                        await trio.sleep(0.1)

            seconds, rounds = await _during(crowd, fast)
            burst = defaults.message_burst
            sustained = max(
                (r.answered - burst) / r.seconds
                for r in reports
                if r.seconds and r.answered > burst
            )
            record("fast", f"{senders} clients sending 3,000 messages each as fast as they can:"
                   f" read {burst:,} at once, then at most {sustained:.0f}/s each (allowance"
                   f" {defaults.max_messages_per_second:.0f}/s)", seconds, rounds)
            await crowd.round()
            final = server.rss()
            summary = [
                "",
                f"- connections held: {connections:,} sync sessions at once (each Connected"
                " and subscribed), with the bystanders' mutations and subscriptions correct",
                f"- server memory per held connection: {per_connection / 1024:.1f} KiB"
                f" (RSS {before / MIB:.0f} -> {holding / MIB:.0f} MiB; after closing them"
                f" {after_close / MIB:.0f} MiB; at the end {final / MIB:.0f} MiB; peak under"
                f" the fast senders {peak / MIB:.0f} MiB)",
            ]
            for line in summary:
                print(line, flush=True)
            lines += summary
    return lines


def default_seed() -> int:
    return random.SystemRandom().randrange(2**32)


__all__ = ["TRANSPORTS", "open_remote", "run_flood", "run_fuzz", "serve_standalone"]
