"""The long forms: `python -m lab.hostile fuzz ...` and `python -m lab.hostile flood ...`.

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
import os
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
import orjson
import trio

from engine.server import ServerConfig
from lab.figures import percentile
from lab.hostile.bystanders import Bystanders
from lab.hostile.flood import (
    SenderReport,
    churn,
    fast_sender,
    hold_sessions,
    never_reading,
    rss_bytes,
    slow_handshake,
)
from lab.hostile.fuzz import TRANSPORTS, FuzzReport, fuzz
from lab.hostile.target import ADMIN_KEY, JWT_SECRET, open_target
from lab.hostile.wire import exchange, http_call, parse_answers
from lab.rawws import open_many, read_until, subscribe_to_event

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
    """`python -m lab.hostile serve`: the server the flood runs against (prints its port),
    with the GC tuned as `turnstile serve` tunes it."""
    from engine import EngineConfig, tune_gc
    from engine.server import Authenticator, open_server

    tune_gc()
    async with open_server(
        data_dir,
        engine_config=EngineConfig(),
        authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
        config=ServerConfig(**settings),
    ) as server:
        print(f"listening on {server.url}", flush=True)
        await trio.sleep_forever()  # until the flood's SIGINT


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
    command = [sys.executable, "-m", "lab.hostile", "serve", "--data-dir", str(data_dir)]
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
    seen: list[float]
    server_mib: float

    def row(self) -> str:
        p50 = percentile(self.rounds, 50) * 1000
        p99 = percentile(self.rounds, 99) * 1000
        seen = percentile(self.seen, 99) * 1000
        return (
            f"| {self.name} | {self.detail} | {self.seconds:.1f} | {len(self.rounds)} |"
            f" {p50:.1f} | {p99:.1f} | {seen:.1f} | {self.server_mib:.0f} |"
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


async def run_load(kind: str, port: int, count: int, event_id: str, messages: int) -> None:
    """`python -m lab.hostile load`: one flood, from a process of its own, so that the
    bystanders' round trips measure the server and not a busy client process. Reports on
    stdout, one JSON object a line; `hold` and `noread` keep their connections until stdin
    closes."""

    def say(**report: Any) -> None:
        print(orjson.dumps(report).decode(), flush=True)

    async def until_stdin_closes() -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        async with stdin:
            while await stdin.receive_some(4096):
                pass

    if kind == "hold":
        async with trio.open_nursery() as nursery:
            held = await hold_sessions(nursery, port, count, event_id)
            say(held=len(held.sessions))
            await until_stdin_closes()
            await held.aclose()
    elif kind == "watch":
        # Subscribers that read every frame at once, at a few microseconds each (lab/rawws):
        # thousands of them in one process still keep up with what the server sends them.
        clients = await trio.to_thread.run_sync(
            open_many, port, count, lambda: subscribe_to_event(event_id)
        )
        say(held=len(clients))
        await trio.to_thread.run_sync(read_until, clients, 0)
        for client in clients:
            client.sock.close()
    elif kind == "churn":
        started = time.perf_counter()
        await churn(port, count, concurrency=100, event_id=event_id)
        say(churned=count, seconds=time.perf_counter() - started)
    elif kind == "slow":
        kinds = ("silent", "trickle", "no-connect")
        lasted: list[float] = []

        async def one(kind: str) -> None:
            lasted.append(await slow_handshake(port, kind))

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, kinds[i % len(kinds)])
        say(closed=len(lasted), longest=max(lasted))
    elif kind == "fast":
        reports: list[SenderReport] = []

        async def send() -> None:
            reports.append(await fast_sender(port, messages=messages))

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(send)
        say(reports=[attrs.asdict(report) for report in reports])
    elif kind == "noread":
        async with AsyncExitStack() as stack:
            for _ in range(count):
                await stack.enter_async_context(never_reading(port, ADMIN_KEY))
            say(reading="stopped")
            await until_stdin_closes()
    else:
        raise ValueError(f"no load {kind!r}")


@attrs.define
class Load:
    """A `load` process: its JSON reports, and `finish()` (close its stdin, wait for it)."""

    process: trio.Process
    buffer: bytes = b""

    async def report(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            data = await self.process.stdout.receive_some(65536)
            if not data:
                raise RuntimeError(f"the load process ended: {self.buffer!r}")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        report: dict[str, Any] = orjson.loads(line)
        return report

    async def finish(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with trio.move_on_after(120) as waiting:
            await self.process.wait()
        if waiting.cancelled_caught:
            self.process.kill()


@asynccontextmanager
async def open_load(kind: str, port: int, count: int, **options: Any) -> AsyncIterator[Load]:
    command = [sys.executable, "-m", "lab.hostile", "load", kind, "--port", str(port),
               "--count", str(count)]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO
    )
    load = Load(process)
    try:
        yield load
    finally:
        if process.returncode is None:
            await load.finish()


async def run_flood(connections: int, slow: int, senders: int, readers: int) -> list[str]:
    """Every flood against one server process, each from a `load` process of its own, while
    the bystanders (in this process) do rounds; returns the report's lines."""
    defaults = ServerConfig()
    lines = [
        f"Flood of {connections:,} connections against `python -m lab.hostile serve`"
        " (shipped ServerConfig defaults); each flood from a process of its own:",
        "",
        "| phase | what | seconds | bystander rounds | p50 ms | p99 ms | all seen p99 ms"
        " | server RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="turnstile-flood-") as data:
        async with (
            open_remote(Path(data) / "data", {}) as server,
            Bystanders(server, count=3) as crowd,
        ):

            def record(name: str, detail: str, seconds: float, rounds: list[float]) -> None:
                seen = crowd.seen[-len(rounds):] if rounds else []
                lines.append(Phase(name, detail, seconds, rounds, seen, server.rss() / MIB).row())
                print(lines[-1], flush=True)

            for line in lines:
                print(line, flush=True)
            started = time.perf_counter()
            idle = [await crowd.round() for _ in range(200)]
            record("quiet", "bystanders alone", time.perf_counter() - started, idle)

            # Held: idle sessions, each subscribed to a quiet event; memory per connection.
            quiet = await server.admin_mutation("events:create", {
                "name": "Quiet", "description": "", "location": "Hall", "price": 1,
                "eventDate": 1_900_000_000_000, "totalTickets": 10, "orgId": "org_quiet"})
            before = server.rss()
            async with open_load("hold", server.port, connections, event=quiet) as held:
                seconds, rounds = await _during(crowd, held.report)
                await server.metric_reaches("turnstile_websocket_sessions", connections + 4)
                holding = server.rss()
                record("open", f"{connections:,} sessions opened, each Connected and subscribed",
                       seconds, rounds)
                started = time.perf_counter()
                held_rounds = [await crowd.round() for _ in range(200)]
                record("held", f"{connections:,} sessions held",
                       time.perf_counter() - started, held_rounds)
            per_connection = (holding - before) / connections
            await server.metric_reaches("turnstile_websocket_sessions", 4)
            after_close = server.rss()

            # Watched: the same number of sessions subscribed to the bystanders' own event, so
            # every join of theirs is sent to all of them as well.
            async with open_load("watch", server.port, connections,
                                 event=crowd.event_id) as watching:
                seconds, rounds = await _during(crowd, watching.report)
                await server.metric_reaches("turnstile_websocket_sessions", connections + 4)
                record("watch", f"{connections:,} sessions opened on the bystanders' event",
                       seconds, rounds)
                full_gc = 'generation="2"'
                collections = await server.metric("python_gc_collections_total", full_gc)
                started = time.perf_counter()
                watched_rounds = [await crowd.round() for _ in range(200)]
                watched_full_gc = (
                    await server.metric("python_gc_collections_total", full_gc) - collections
                )
                record("watched", f"{connections:,} sessions held on the bystanders' event:"
                       " each of their joins is sent to every one", time.perf_counter() - started,
                       watched_rounds)
            await server.metric_reaches("turnstile_websocket_sessions", 4)

            async def churning() -> None:
                async with open_load("churn", server.port, connections,
                                     event=crowd.event_id) as load:
                    await load.report()

            seconds, rounds = await _during(crowd, churning)
            # The bystanders' 4, and the connection asking for /metrics.
            await server.metric_reaches("turnstile_open_connections", 5)
            record("churn", f"{connections:,} connections opened and dropped (every kind in"
                   " turn: TCP only, half a request head, a request, an upgrade, a session)",
                   seconds, rounds)

            longest: list[float] = []

            async def slow_ones() -> None:
                async with open_load("slow", server.port, slow) as load:
                    longest.append((await load.report())["longest"])

            seconds, rounds = await _during(crowd, slow_ones)
            record("slow", f"{slow:,} slow handshakes (silent, trickling, no Connect), all cut"
                   f" after at most {longest[0]:.1f} s (limit {defaults.handshake_timeout:.0f} s)",
                   seconds, rounds)

            # Clients that never read, subscribed to a large result that keeps changing.
            big = {"name": "Big", "description": "d" * 20_000, "location": "Hall",
                   "eventDate": 1_900_000_000_000, "price": 1, "totalTickets": 10,
                   "orgId": "org_big"}
            ids = [await server.admin_mutation("events:create", big) for _ in range(50)]
            dropped_before = await server.metric("turnstile_limited_total",
                                                 'limit="send_timeout"')

            async def never_read() -> None:
                async with open_load("noread", server.port, readers) as load:
                    await load.report()
                    # Keep changing what they subscribed to until the server dropped them.
                    for round_ in itertools.count():
                        dropped = await server.metric("turnstile_limited_total",
                                                      'limit="send_timeout"')
                        if dropped >= dropped_before + readers:
                            return
                        await server.admin_mutation(
                            "events:update",
                            {"eventId": ids[round_ % len(ids)], "name": f"n{round_}"},
                        )
                        await trio.sleep(0.05)

            seconds, rounds = await _during(crowd, never_read)
            record("no-read", f"{readers} clients that never read, subscribed to a 1 MiB"
                   f" result that keeps changing: all dropped after the send timeout"
                   f" ({defaults.send_timeout:.0f} s)", seconds, rounds)

            # Clients that send as fast as they can: one, then many.
            peak = server.rss()
            for flooders in sorted({1, senders}):
                sent: list[dict[str, Any]] = []

                async def fast(flooders: int = flooders, sent: list[dict[str, Any]] = sent) -> None:
                    async def sample() -> None:
                        nonlocal peak
                        while True:
                            peak = max(peak, server.rss())
                            await trio.sleep(0.1)

                    async with (
                        open_load("fast", server.port, flooders, messages=3_000) as load,
                        trio.open_nursery() as nursery,
                    ):
                        nursery.start_soon(sample)
                        sent.extend((await load.report())["reports"])
                        nursery.cancel_scope.cancel()

                seconds, rounds = await _during(crowd, fast)
                burst = defaults.message_burst
                sustained = max(
                    (r["answered"] - burst) / r["seconds"]
                    for r in sent
                    if r["seconds"] and r["answered"] > burst
                )
                record("fast", f"{flooders} client{'s' if flooders > 1 else ''} sending 3,000"
                       f" messages each as fast as {'they' if flooders > 1 else 'it'} can: read"
                       f" {burst:,} at once, then at most {sustained:.0f}/s each (allowance"
                       f" {defaults.max_messages_per_second:.0f}/s)", seconds, rounds)
            await crowd.round()
            final = server.rss()
            summary = [
                "",
                f"- connections held: {connections:,} sync sessions at once (each Connected and"
                " subscribed), the bystanders' mutations and subscriptions correct throughout",
                f"- full GC collections in the server during the watched phase:"
                f" {watched_full_gc:.0f} (python_gc_collections_total)",
                f"- server memory per held connection: {per_connection / 1024:.1f} KiB (RSS"
                f" {before / MIB:.0f} -> {holding / MIB:.0f} MiB); after closing them"
                f" {after_close / MIB:.0f} MiB (kept by the allocator, reused: the floods after"
                f" it end at {final / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB)",
            ]
            for line in summary:
                print(line, flush=True)
            lines += summary
    return lines


def default_seed() -> int:
    return random.SystemRandom().randrange(2**32)


__all__ = [
    "TRANSPORTS",
    "open_load",
    "open_remote",
    "run_flood",
    "run_fuzz",
    "run_load",
    "serve_standalone",
]
