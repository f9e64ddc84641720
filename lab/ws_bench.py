"""Mutations over WebSocket against the engine in-process: `python -m lab.ws_bench [--quick]`.

One run, one server (in this process, on 127.0.0.1, a free port), some events created first
(each phase joins events of its own), then three phases of `events:joinWaitingList` (admin
identity, a user never seen before each time, a random event of the phase's set), each a closed
loop counted over a fixed window after a warm-up:

- in-process: `tasks` (64) trio tasks calling `Engine.mutation` in the server's process;
- WebSocket: `clients` (100) `engine.client.open_client` clients, each one mutation at a time,
  held by `procs` (1) child processes so that the clients' CPU is not the server's;
- in-process with request ids: as the first, each task a session numbering its calls, as a sync
  client's mutations are (the engine looks each one up and keeps its record): what of the
  WebSocket's cost is the engine's part of the protocol rather than the front door's.

It prints the rates, the ratio WebSocket / in-process (the figure to compare across runs; also
against the third phase), p50/p99 latency and CPU per mutation of the server and the clients
(process CPU time over the window: worker threads and the journal's writer process included).
`measure()` returns the same figures as a dict, for a line of another benchmark. Correctness is
checked on the way: every mutation sent is acknowledged, and the joins the engine holds
afterwards equal the joins acknowledged (`ok` in the dict). Every phase is bounded in time;
nothing asserts on time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio

from lab.figures import REPO, machine, machine_line, percentile, server_cpu

HOST = "127.0.0.1"
JOIN = "events:joinWaitingList"
CREATE = "events:create"
AVAILABILITY = "events:getEventAvailability"
ADMIN_KEY = "ws-bench-admin-key"
JWT_SECRET = "ws-bench-jwt-secret-long-enough-for-hs256"
#: Seconds a child may take to open its clients, and to finish after its window.
CHILD_GRACE = 60.0


@attrs.frozen(kw_only=True)
class Sizes:
    events: int = 100
    tasks: int = 64
    clients: int = 100
    procs: int = 1
    warmup: float = 2.0
    seconds: float = 8.0


FULL = Sizes()
QUICK = Sizes(events=20, warmup=1.0, seconds=3.0)


def event_args(i: int) -> dict[str, Any]:
    return {
        "name": f"WebSocket benchmark #{i}",
        "description": "Joined by many clients at once.",
        "location": "Hall 1",
        "eventDate": 1_800_000_000_000 + i * 86_400_000,
        "price": 1_000,
        # Enough seats that every join is offered one: the joins held are the offers.
        "totalTickets": 10_000_000,
        "orgId": "org1",
    }


# -- the window ---------------------------------------------------------------------------------


class Window:
    """Counts of one closed-loop phase: every mutation started and finished, and those both
    started and acknowledged inside the measured window (with their latency)."""

    def __init__(self) -> None:
        self.bounds: tuple[float, float] | None = None  # perf_counter, set when measuring
        self.stop = False
        self.started = 0
        self.acked = 0
        self.failed: dict[str, int] = {}
        self.counted = 0
        self.latencies: list[float] = []
        #: CPU seconds this process used inside the window.
        self.cpu = 0.0

    def note(self, t0: float, t1: float) -> None:
        self.acked += 1
        bounds = self.bounds
        if bounds is not None and bounds[0] <= t0 and t1 <= bounds[1]:
            self.counted += 1
            self.latencies.append(t1 - t0)

    def fail(self, kind: str) -> None:
        self.failed[kind] = self.failed.get(kind, 0) + 1

    async def run(
        self, warmup: float, seconds: float, cpu_of: Callable[[], float] = time.process_time
    ) -> float:
        """Open the window after `warmup`, close it `seconds` later, then stop the loops;
        the window's length. `cpu_of`: the CPU seconds counted (the server's)."""
        await trio.sleep(warmup)
        cpu = cpu_of()
        start = time.perf_counter()
        self.bounds = (start, start + 3600.0)
        await trio.sleep(seconds)
        end = time.perf_counter()
        self.bounds = (start, end)
        self.cpu = cpu_of() - cpu
        self.stop = True
        return end - start

    def figures(self, elapsed: float) -> dict[str, Any]:
        return {
            "started": self.started,
            "acked": self.acked,
            "failed": dict(self.failed),
            "counted": self.counted,
            "seconds": elapsed,
            "rate": self.counted / elapsed if elapsed > 0 else 0.0,
            "cpu_busy": self.cpu / elapsed if elapsed > 0 else 0.0,
            "cpu_us": self.cpu / self.counted * 1e6 if self.counted else 0.0,
            "p50_ms": percentile(self.latencies, 50) * 1e3,
            "p99_ms": percentile(self.latencies, 99) * 1e3,
            "latencies": self.latencies,
        }


# -- child: WebSocket clients -----------------------------------------------------------------


async def _child(port: int, clients: int, tag: str, events: list[str], out: Path) -> None:
    """Open `clients` clients, say READY, wait for a line on stdin giving the warm-up and the
    window, run the closed loops, write the figures to `out`."""
    from engine.client import FunctionError, open_client

    window = Window()
    opened = 0
    all_open = trio.Event()
    go = trio.Event()

    async def loop(c: int) -> None:
        nonlocal opened
        rng = random.Random(f"{tag}-{c}")
        async with open_client(f"http://{HOST}:{port}", admin_key=ADMIN_KEY) as client:
            opened += 1
            if opened == clients:
                all_open.set()
            await go.wait()
            n = 0
            perf = time.perf_counter
            while not window.stop:
                args = {"eventId": events[rng.randrange(len(events))], "userId": f"{tag}{c}-{n}"}
                n += 1
                window.started += 1
                t0 = perf()
                try:
                    await client.mutation(JOIN, args)
                except FunctionError as error:
                    window.fail(error.code)
                    continue
                window.note(t0, perf())

    elapsed = 0.0
    with trio.fail_after(CHILD_GRACE * 3):
        async with trio.open_nursery() as nursery:
            for c in range(clients):
                nursery.start_soon(loop, c)
            with trio.fail_after(CHILD_GRACE):
                await all_open.wait()
            print("READY", flush=True)
            stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            line = b""
            while b"\n" not in line:
                chunk = await stdin.receive_some()
                if not chunk:
                    raise RuntimeError("the benchmark went away")
                line += chunk
            warmup, seconds = (float(x) for x in line.split())
            go.set()
            elapsed = await window.run(warmup, seconds)
    out.write_bytes(orjson.dumps(window.figures(elapsed)))


class Child:
    """One child process holding some of the WebSocket clients."""

    def __init__(self, port: int, clients: int, tag: str, events: list[str]) -> None:
        fd, name = tempfile.mkstemp(prefix="ws_bench_", suffix=".json")
        os.close(fd)
        self.out = Path(name)
        events_fd, events_name = tempfile.mkstemp(prefix="ws_bench_events_", suffix=".json")
        os.write(events_fd, orjson.dumps(events))
        os.close(events_fd)
        self.events = Path(events_name)
        self.cmd = [
            sys.executable,
            "-m",
            "lab.ws_bench",
            "--child",
            "--port",
            str(port),
            "--clients",
            str(clients),
            "--tag",
            tag,
            "--events-file",
            events_name,
            "--out",
            name,
        ]
        self.proc: trio.Process | None = None

    async def start(self) -> None:
        self.proc = proc = await trio.lowlevel.open_process(
            self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(REPO)
        )
        assert proc.stdout is not None  # opened with stdout=PIPE
        seen = b""
        with trio.fail_after(CHILD_GRACE + 30):
            while b"READY" not in seen:
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    raise RuntimeError(f"a client process exited early: {self.cmd}")
                seen += chunk

    async def go(self, warmup: float, seconds: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None  # started, stdin=PIPE
        await self.proc.stdin.send_all(f"{warmup} {seconds}\n".encode())

    async def finish(self) -> dict[str, Any]:
        assert self.proc is not None  # started
        with trio.fail_after(CHILD_GRACE * 2):
            await self.proc.wait()
        if self.proc.returncode != 0:
            raise RuntimeError(f"a client process failed ({self.proc.returncode}): {self.cmd}")
        data: dict[str, Any] = orjson.loads(self.out.read_bytes())
        return data

    def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        self.out.unlink(missing_ok=True)
        self.events.unlink(missing_ok=True)


# -- parent -----------------------------------------------------------------------------------


async def _in_process(
    engine: Any, events: list[str], sizes: Sizes, *, request_ids: bool = False
) -> dict[str, Any]:
    """The closed loops in-process; with `request_ids`, each task is a session of its own and
    numbers its requests, as a sync client does (the engine then keeps each one's record)."""
    from domain.errors import TurnstileError
    from domain.identity import ADMIN

    window = Window()
    tag = "ids" if request_ids else "in"

    async def loop(index: int) -> None:
        rng = random.Random(f"{tag}-{index}")
        mutation = engine.mutation
        perf = time.perf_counter
        session = f"{tag}-session-{index}" if request_ids else None
        n = 0
        while not window.stop:
            args = {"eventId": events[rng.randrange(len(events))], "userId": f"{tag}{index}-{n}"}
            request = n if request_ids else None
            n += 1
            window.started += 1
            t0 = perf()
            try:
                await mutation(JOIN, args, ADMIN, session_id=session, request_id=request)
            except TurnstileError as error:
                window.fail(type(error).__name__)
                continue
            window.note(t0, perf())

    with trio.fail_after(sizes.warmup + sizes.seconds + CHILD_GRACE):
        async with trio.open_nursery() as nursery:
            for i in range(sizes.tasks):
                nursery.start_soon(loop, i)
            elapsed = await window.run(
                sizes.warmup, sizes.seconds, functools.partial(server_cpu, engine)
            )
    return window.figures(elapsed)


async def _websocket(
    port: int, events: list[str], sizes: Sizes, cpu_of: Callable[[], float]
) -> dict[str, Any]:
    procs = max(1, min(sizes.procs, sizes.clients))
    shares = [
        sizes.clients // procs + (1 if p < sizes.clients % procs else 0) for p in range(procs)
    ]
    children = [Child(port, n, f"ws{p}_", events) for p, n in enumerate(shares)]
    try:
        for child in children:
            await child.start()
        for child in children:
            await child.go(sizes.warmup, sizes.seconds)
        # The server's CPU over (about) the children's window.
        await trio.sleep(sizes.warmup)
        cpu, start = cpu_of(), time.perf_counter()
        await trio.sleep(sizes.seconds)
        server_busy = (cpu_of() - cpu) / (time.perf_counter() - start)
        parts = [await child.finish() for child in children]
    finally:
        for child in children:
            child.close()
    latencies = [x for part in parts for x in part["latencies"]]
    rate = sum(p["rate"] for p in parts)
    failed: dict[str, int] = {}
    for part in parts:
        for kind, count in part["failed"].items():
            failed[kind] = failed.get(kind, 0) + count
    return {
        "started": sum(p["started"] for p in parts),
        "acked": sum(p["acked"] for p in parts),
        "failed": failed,
        "counted": sum(p["counted"] for p in parts),
        "seconds": max(p["seconds"] for p in parts),
        # Each child's window is the same length, opened at the same moment (give or take
        # the pipe): the rates add up.
        "rate": rate,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "latencies": latencies,
        "procs": procs,
        "cpu_busy": server_busy,
        "cpu_us": server_busy / rate * 1e6 if rate else 0.0,
        "client_cpu_busy": [p["cpu_busy"] for p in parts],
        "client_cpu_us": sum(p["cpu_busy"] for p in parts) / rate * 1e6 if rate else 0.0,
    }


async def _joins_held(engine: Any, events: list[str]) -> int:
    total = 0
    for event_id in events:
        outcome = await engine.query(AVAILABILITY, {"eventId": event_id})
        total += outcome.value["activeOffers"] + outcome.value["purchasedCount"]
    return total


async def measure_async(sizes: Sizes, data_dir: Path | None = None) -> dict[str, Any]:
    from domain.identity import ADMIN
    from engine import EngineConfig
    from engine.server import Authenticator, open_server

    with tempfile.TemporaryDirectory(prefix="ws_bench_") as tmp:
        async with open_server(
            data_dir or Path(tmp) / "data",
            # No cron jobs: offers must not expire while the joins are counted. No automatic
            # snapshot: one falls due every `snapshot_every` events and takes the event loop's
            # time in whichever phase it lands (the engine benchmark's case 1 runs so too).
            engine_config=EngineConfig(run_jobs=False, snapshot_every=0),
            authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
            host=HOST,
        ) as server:
            engine = server.engine
            # Each phase joins events of its own, so both start from streams of the same size.
            n = sizes.events
            events = [
                (await engine.mutation(CREATE, event_args(i), ADMIN)).value for i in range(3 * n)
            ]
            inproc = await _in_process(engine, events[:n], sizes)
            ws = await _websocket(
                server.port, events[n : 2 * n], sizes, functools.partial(server_cpu, engine)
            )
            with_ids = await _in_process(engine, events[2 * n :], sizes, request_ids=True)
            await engine.wait_idle()
            held = await _joins_held(engine, events)
    phases = (inproc, ws, with_ids)
    acked = sum(phase["acked"] for phase in phases)
    ok = held == acked and all(
        not phase["failed"] and phase["started"] == phase["acked"] for phase in phases
    )
    for phase in phases:
        del phase["latencies"]
    return {
        "sizes": attrs.asdict(sizes),
        "in_process": inproc,
        "websocket": ws,
        "in_process_with_ids": with_ids,
        "ratio": _ratio(ws, inproc),
        "ratio_with_ids": _ratio(ws, with_ids),
        "joins_held": held,
        "ok": ok,
    }


def _ratio(phase: dict[str, Any], baseline: dict[str, Any]) -> float:
    return float(phase["rate"] / baseline["rate"]) if baseline["rate"] else float("nan")


def measure(sizes: Sizes = FULL) -> dict[str, Any]:
    """Run the phases once (in a trio run of its own) and return their figures: `in_process`,
    `websocket` and `in_process_with_ids` (each with `rate` per second, `p50_ms`, `p99_ms`,
    `cpu_us` per mutation and the counts), `ratio` (WebSocket over in-process),
    `ratio_with_ids` and `ok` (every mutation acknowledged, the counts add up)."""
    from engine import tune_gc

    tune_gc()  # as `turnstile serve` runs
    result: dict[str, Any] = trio.run(measure_async, sizes)
    return result


def report(result: dict[str, Any]) -> str:
    s, ip, ws = result["sizes"], result["in_process"], result["websocket"]
    ids = result["in_process_with_ids"]
    rows = [
        ("in-process", f"{s['tasks']} tasks calling Engine.mutation", ip),
        (
            "WebSocket",
            f"{s['clients']} open_client clients in {ws['procs']} process(es)",
            ws,
        ),
        ("in-process, request ids", f"{s['tasks']} tasks, each a session numbering its calls", ids),
    ]
    lines = [
        "| phase | load | mutations/s | p50 | p99 | acknowledged |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, load, phase in rows:
        lines.append(
            f"| {name} | {load} | {phase['rate']:,.0f} | {phase['p50_ms']:.1f} ms | "
            f"{phase['p99_ms']:.1f} ms | {phase['acked']:,} of {phase['started']:,} |"
        )
    lines.append("")
    lines.append(
        f"WebSocket / in-process: {result['ratio']:.2f} (against in-process with request ids, "
        f"which a sync session's mutations carry: {result['ratio_with_ids']:.2f})"
    )
    clients_busy = ", ".join(f"{busy:.0%}" for busy in ws["client_cpu_busy"])
    lines.append(
        f"CPU busy (of one core): server {ip['cpu_busy']:.0%} in-process, "
        f"{ws['cpu_busy']:.0%} over WebSocket; client process(es) {clients_busy}"
    )
    lines.append(
        f"CPU per mutation: server {ip['cpu_us']:.0f} us in-process ({ids['cpu_us']:.0f} us with "
        f"request ids), {ws['cpu_us']:.0f} us over WebSocket; clients {ws['client_cpu_us']:.0f} us"
    )
    check = "ok" if result["ok"] else "MISMATCH"
    lines.append(
        f"Joins held by the engine afterwards: {result['joins_held']:,} "
        f"(acknowledged: {ip['acked'] + ws['acked'] + ids['acked']:,}; {check})"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lab.ws_bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="short phases (< 30 s in all)")
    parser.add_argument("--clients", type=int, help="WebSocket clients (default 100)")
    parser.add_argument("--procs", type=int, help="processes holding them (default 1)")
    parser.add_argument("--seconds", type=float, help="each phase's measured window")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    # The client processes' side (the benchmark starts them itself).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="ws", help=argparse.SUPPRESS)
    parser.add_argument("--events-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        events = orjson.loads(args.events_file.read_bytes())
        trio.run(_child, args.port, args.clients, args.tag, events, args.out)
        return
    sizes = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.clients:
        changes["clients"] = args.clients
    if args.procs:
        changes["procs"] = args.procs
    if args.seconds:
        changes["seconds"] = args.seconds
    sizes = attrs.evolve(sizes, **changes)
    info = machine()
    t0 = time.monotonic()
    result = measure(sizes)
    info["loadavg_end"] = os.getloadavg()
    print(
        f"Mutations over WebSocket, {'quick' if args.quick else 'full'} run, "
        f"{time.monotonic() - t0:.0f} s; {machine_line(info)}"
    )
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "result": result}, indent=1))
    if not result["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
