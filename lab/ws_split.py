"""Where a WebSocket mutation's round trip goes: `python -m lab.ws_split [--quick]`.

The WebSocket phase of lab.ws_bench (its clients, `engine.client.open_client`, in a child
process, each a closed loop of `events:joinWaitingList`), with the server timing each mutation
on the way through:

- *server*: from the session handing the Mutation to the engine to its MutationResponse written
  to the socket; of that, *to durable*: from `begin_mutation` to its outcome (deciding, waiting
  for a batch, the batch's append, the loop getting back to it);
- *outside*: from that response written to the same connection's next Mutation reaching its
  session (the network, the client process, the server's scheduling of the reader task). Server
  plus outside is the round trip a client sees (Little's law: clients / rate);
- the batches of the window: how many per second, rows per batch, the append's wall time (from
  the batch handed over to its outcome back on the loop) and the writer's CPU: the thread's in
  each append, or, with the journal's writer process (the default), that process's CPU over
  the window per batch (the difference is the fsync and the waits for the interpreter lock or
  for the loop);
- the CPU of each of the server's threads over the window: the event loop, the worker threads
  (the journal writer, the stream and request index catch-up).

The timestamps are wrappers around four methods, a few microseconds per mutation, so the rate
here sits a little below lab.ws_bench's: the split is the figure, not the rate. Linux only for
the per-thread CPU (`/proc/self/task`); elsewhere that line is empty. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from lab.figures import machine, machine_line, process_cpu
from lab.ws_bench import ADMIN_KEY, CREATE, HOST, JWT_SECRET, Child, Sizes, event_args

FULL = Sizes(events=100, clients=100, procs=1, warmup=2.0, seconds=8.0)
QUICK = Sizes(events=20, clients=100, procs=1, warmup=1.0, seconds=3.0)


class Probes:
    """The timestamps, kept only while `recording`."""

    def __init__(self) -> None:
        self.recording = False
        self.server: list[float] = []
        self.durable: list[float] = []
        self.outside: list[float] = []
        self.append_wall: list[float] = []
        self.append_cpu: list[float] = []
        self._received: dict[int, float] = {}  # connection -> its Mutation reached the session
        self._answered: dict[int, float] = {}  # connection -> its response was written

    @contextmanager
    def installed(self) -> Iterator[None]:
        from engine import group_commit
        from engine.engine import Engine
        from engine.server.outbox import Outbox
        from engine.sync.session import SyncSession

        probes = self
        begin, mutation = Engine.begin_mutation, SyncSession._mutation
        write_texts, append = Outbox.write_texts, group_commit._timed_append
        finish = group_commit.GroupCommit._finish

        def timed_begin(engine: Any, *args: Any, **kwargs: Any) -> Any:
            pending = begin(engine, *args, **kwargs)
            if probes.recording:
                t0 = time.perf_counter()
                pending.add_done_callback(lambda _: probes.durable.append(time.perf_counter() - t0))
            return pending

        def timed_mutation(session: Any, message: dict[str, Any]) -> bool:
            now, key = time.perf_counter(), id(session.outbox)
            answered = probes._answered.pop(key, None)
            if answered is not None and probes.recording:
                probes.outside.append(now - answered)
            probes._received[key] = now
            return bool(mutation(session, message))

        def timed_write(outbox: Any, payloads: list[bytes]) -> None:
            received = probes._received.pop(id(outbox), None)
            if received is not None:
                now = time.perf_counter()
                if probes.recording:
                    probes.server.append(now - received)
                probes._answered[id(outbox)] = now
            write_texts(outbox, payloads)

        def timed_append(journal: Any, prepared: Any) -> None:  # (a writer thread's)
            cpu = time.thread_time()
            try:
                append(journal, prepared)
            finally:
                if probes.recording:
                    probes.append_cpu.append(time.thread_time() - cpu)

        def timed_finish(commit: Any, prepared: Any, error: Any) -> None:
            if probes.recording:
                probes.append_wall.append(prepared.write_seconds)
            finish(commit, prepared, error)

        patches: list[tuple[Any, str, Callable[..., Any]]] = [
            (Engine, "begin_mutation", timed_begin),
            (SyncSession, "_mutation", timed_mutation),
            (Outbox, "write_texts", timed_write),
            (group_commit, "_timed_append", timed_append),
            (group_commit.GroupCommit, "_finish", timed_finish),
        ]
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        try:
            for owner, name, wrapper in patches:
                setattr(owner, name, wrapper)
            yield
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by `tid:name`."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:
            continue  # ended meanwhile
        out[f"{tid}:{name}"] = (int(stat[11]) + int(stat[12])) / tick
    return out


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50_ms": float("nan"), "mean_ms": float("nan"), "p90_ms": float("nan")}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": ordered[len(ordered) // 2] * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
        "p90_ms": ordered[int(len(ordered) * 0.9)] * 1e3,
    }


async def measure_async(sizes: Sizes) -> dict[str, Any]:
    from domain.identity import ADMIN
    from engine import EngineConfig
    from engine.server import Authenticator, open_server

    probes = Probes()
    with tempfile.TemporaryDirectory(prefix="ws_split_") as tmp, probes.installed():
        async with open_server(
            Path(tmp) / "data",
            engine_config=EngineConfig(run_jobs=False, snapshot_every=0),
            authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
            host=HOST,
        ) as server:
            engine = server.engine
            events = [
                (await engine.mutation(CREATE, event_args(i), ADMIN)).value
                for i in range(sizes.events)
            ]
            child = Child(server.port, sizes.clients, "split_", events)
            try:
                await child.start()
                await child.go(sizes.warmup, sizes.seconds)
                await trio.sleep(sizes.warmup)
                commit = engine._commit
                batches, rows, writing = commit.batches, commit.rows_written, commit.write_seconds
                writer = engine._appender.pid if engine._appender is not None else None
                threads, writer_cpu, wall = thread_cpu(), process_cpu(writer), time.perf_counter()
                probes.recording = True
                await trio.sleep(sizes.seconds)
                probes.recording = False
                elapsed = time.perf_counter() - wall
                threads_after = thread_cpu()
                writer_cpu = process_cpu(writer) - writer_cpu
                batches = commit.batches - batches
                rows = commit.rows_written - rows
                writing = commit.write_seconds - writing
                clients = await child.finish()
            finally:
                child.close()
    busy = {
        name: (seconds - threads.get(name, 0.0)) / elapsed
        for name, seconds in threads_after.items()
    }
    return {
        "sizes": attrs.asdict(sizes),
        "rate": clients["rate"],
        "client_p50_ms": clients["p50_ms"],
        "client_cpu_busy": clients["cpu_busy"],
        "acked": clients["acked"],
        "started": clients["started"],
        "server": _spread(probes.server),
        "durable": _spread(probes.durable),
        "outside": _spread(probes.outside),
        "append_wall": _spread(probes.append_wall),
        "append_cpu": _spread(probes.append_cpu),
        "batches_per_s": batches / elapsed,
        "rows_per_batch": rows / batches if batches else 0.0,
        "writer_busy": writing / elapsed,
        "writer_process_busy": writer_cpu / elapsed if writer is not None else None,
        "writer_process_ms_per_batch": (
            writer_cpu / batches * 1e3 if writer is not None and batches else None
        ),
        "threads": dict(sorted(busy.items(), key=lambda item: -item[1])),
    }


def measure(sizes: Sizes = FULL) -> dict[str, Any]:
    from engine import tune_gc

    tune_gc()  # as `turnstile serve` runs
    result: dict[str, Any] = trio.run(measure_async, sizes)
    return result


def report(result: dict[str, Any]) -> str:
    s = result["sizes"]
    lines = [
        f"{s['clients']} clients, one mutation at a time: {result['rate']:,.0f} mutations/s, "
        f"round trip p50 {result['client_p50_ms']:.1f} ms at the client",
        "",
        "| part of the round trip | p50 | mean | p90 | samples |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, name in (
        ("server", "server: Mutation in -> response written"),
        ("durable", "  of it, begin_mutation -> durable outcome"),
        ("outside", "outside: response written -> next Mutation in"),
        ("append_wall", "a batch's append, wall time"),
        ("append_cpu", "a batch's append, writer CPU"),
    ):
        part = result[key]
        if not part["n"]:
            continue  # (no writer thread's CPU: the writer process's is below)
        lines.append(
            f"| {name} | {part['p50_ms']:.2f} ms | {part['mean_ms']:.2f} ms | "
            f"{part['p90_ms']:.2f} ms | {part['n']:,} |"
        )
    lines.append("")
    lines.append(
        f"Batches: {result['batches_per_s']:.0f}/s, {result['rows_per_batch']:.0f} rows each, "
        f"writer busy {result['writer_busy']:.0%}; client process CPU busy "
        f"{result['client_cpu_busy']:.0%}"
    )
    threads = ", ".join(
        f"{name.partition(':')[2]} {busy:.0%}"
        for name, busy in result["threads"].items()
        if busy >= 0.005
    )
    lines.append(f"Server threads' CPU (of one core): {threads}")
    if result.get("writer_process_busy") is not None:
        lines.append(
            f"The journal's writer process: {result['writer_process_busy']:.0%} of a core, "
            f"{result['writer_process_ms_per_batch'] or 0:.2f} ms of CPU per batch"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lab.ws_split", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a shorter window (< 15 s in all)")
    parser.add_argument("--clients", type=int, help="WebSocket clients (default 100)")
    parser.add_argument("--seconds", type=float, help="the measured window")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.clients:
        sizes = attrs.evolve(sizes, clients=args.clients)
    if args.seconds:
        sizes = attrs.evolve(sizes, seconds=args.seconds)
    info = machine()
    result = measure(sizes)
    info["loadavg_end"] = os.getloadavg()
    print(f"Where a WebSocket mutation's round trip goes; {machine_line(info)}")
    print(report(result))


if __name__ == "__main__":
    main()
