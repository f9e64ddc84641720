"""`python -m lab.peer_bench [--quick] [--write-doc]` (`./dev peers`): see lab/peer_bench."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import attrs

from lab.figures import BENCHMARKS_DOC, machine, write_section
from lab.peer_bench import report
from lab.peer_bench.workload import FULL, FULL_SPREAD, QUICK, QUICK_SPREAD, WORKLOADS, Sizes

REPO = Path(__file__).resolve().parent.parent.parent
NAMES = {"turnstile": "Turnstile", "postgres": "PostgreSQL", "eventsourcing": "eventsourcing"}
PG_MODES = ("for-update", "plpgsql", "serializable")
#: PostgreSQL's connection counts per mode, one table row each (`--pg-clients` sets them all).
PG_CLIENTS = {"for-update": [8], "plpgsql": [8, 16, 64], "serializable": [64]}
PG_CLIENTS_QUICK = {"for-update": [16], "plpgsql": [8, 16], "serializable": [16]}
#: The contenders that run each workload (eventsourcing's one sequential client: `onsale` only).
RUNS_ON = {"turnstile": WORKLOADS, "postgres": WORKLOADS, "eventsourcing": ("onsale",)}
#: No round starts once the run has taken this long (seconds; each round is bounded by its
#: deadline too), so a slow machine shortens the run rather than stretching it.
BUDGET_S = 900.0


def log(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the child: one round of one contender ------------------------------------------------------


def _terminate(signum: int, frame: Any) -> None:
    # The parent's time limit: unwind, so every `finally` (the PostgreSQL server's stop) runs.
    raise SystemExit(f"stopped by signal {signum}")


def run_round(contender: str, scratch: Path, sizes: Sizes, pg_clients: int, pg_mode: str) -> Any:
    """One round in this process: the summary dict, or {"skipped": reason} if the contender is
    not installed here. `sizes` is the workload's (`sizes.workload`); PostgreSQL runs with
    `pg_clients` connections in `pg_mode`."""
    if contender == "turnstile":
        from engine import tune_gc
        from lab.peer_bench import turnstile_side

        tune_gc()  # as a server would run (engine.tune_gc)
        return turnstile_side.run(scratch, sizes)
    if contender == "postgres":
        from lab.peer_bench import postgres_side

        try:
            return postgres_side.run(attrs.evolve(sizes, clients=pg_clients), pg_mode)
        except postgres_side.Unavailable as exc:
            return {"skipped": str(exc)}
    if contender == "eventsourcing":
        from lab.peer_bench import eventsourcing_side

        if sizes.workload != "onsale":
            raise ValueError("eventsourcing runs the onsale workload only")
        try:
            return eventsourcing_side.run(scratch, sizes)
        except eventsourcing_side.Unavailable as exc:
            return {"skipped": str(exc)}
    raise ValueError(f"unknown contender {contender!r}")


def child_main(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sizes = Sizes(**json.loads(args.sizes))
    result = run_round(args.child, args.scratch, sizes, args.pg_clients_one, args.pg_mode)
    args.out.write_text(json.dumps(result))


# -- the parent ---------------------------------------------------------------------------------


@attrs.frozen
class Entry:
    """One table row: a contender on a workload (PostgreSQL: in a mode, with a connection
    count)."""

    workload: str
    contender: str
    pg_mode: str = ""
    pg_clients: int = 0

    @property
    def what(self) -> str:
        extra = f" {self.pg_mode}, {self.pg_clients} connections" if self.pg_clients else ""
        return f"{self.workload}: {self.contender}{extra}"


def run_child(entry: Entry, sizes: Sizes) -> dict[str, Any]:
    """Run one round in a subprocess with its own scratch directory (deleted afterwards, also if
    the child failed); the child is stopped (SIGTERM, then SIGKILL) past the round's deadline."""
    scratch = Path(tempfile.mkdtemp(prefix=f"turnstile-peers-{entry.contender}-", dir="/tmp"))
    out = scratch / "result.json"
    command = [
        sys.executable, "-m", "lab.peer_bench", "--child", entry.contender, "--out", str(out),
        "--scratch", str(scratch), "--pg-mode", entry.pg_mode or "for-update",
        "--pg-clients-one", str(entry.pg_clients), "--sizes", json.dumps(attrs.asdict(sizes)),
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(command, cwd=REPO)
        try:
            code = proc.wait(timeout=sizes.deadline_s + 180)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise RuntimeError(f"{entry.what}: the round overran its time limit") from None
        if code != 0:
            raise RuntimeError(f"{entry.what}: the round failed (exit status {code})")
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sizes_of(args: argparse.Namespace, workload: str) -> Sizes:
    """The sizes of one workload: the quick or full defaults, with the command line's overrides."""
    if workload == "onsale":
        base = QUICK if args.quick else FULL
        tickets, events = args.tickets, 1
    else:
        base = QUICK_SPREAD if args.quick else FULL_SPREAD
        tickets, events = args.event_tickets, args.events
    return attrs.evolve(
        base,
        tickets=tickets or base.tickets,
        events=events or base.events,
        users=args.users or base.users,
        clients=args.clients or base.clients,
        rounds=args.rounds or base.rounds,
        deadline_s=args.deadline or base.deadline_s,
    )


def make_plan(args: argparse.Namespace) -> list[Entry]:
    """The rows of one round, in the order they run."""
    defaults = PG_CLIENTS_QUICK if args.quick else PG_CLIENTS
    plan: list[Entry] = []
    for workload in args.workloads:
        for contender in ("turnstile", "postgres", "eventsourcing"):
            if contender not in args.only or workload not in RUNS_ON[contender]:
                continue
            if contender != "postgres":
                plan.append(Entry(workload, contender))
                continue
            for mode in args.pg_modes:
                for clients in args.pg_clients or defaults[mode]:
                    plan.append(Entry(workload, contender, mode, clients))
    return plan


def versions(results: list[dict[str, Any]]) -> dict[str, str]:
    import sqlite3

    import trio

    out = {
        "Python": sys.version.split()[0],
        "SQLite": sqlite3.sqlite_version,
        "trio": trio.__version__,
    }
    for r in results:
        if "server_version" in r:
            out["PostgreSQL"] = r["server_version"]
            out["psycopg"] = r["psycopg_version"]
    with contextlib.suppress(PackageNotFoundError):
        if any(r.get("contender", "").startswith("eventsourcing") for r in results):
            out["eventsourcing"] = version("eventsourcing")
    return out


def parent_main(args: argparse.Namespace) -> int:
    sizes = {w: sizes_of(args, w) for w in args.workloads}
    rounds = max(s.rounds for s in sizes.values())
    plan = make_plan(args)
    info = machine()
    started = time.perf_counter()
    by_entry: dict[Entry, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    done_rounds = 0
    for round_no in range(rounds):
        if round_no and time.perf_counter() - started > args.budget:
            log(f"the run's budget of {args.budget:,.0f} s is spent: no round {round_no + 1}")
            break
        done_rounds += 1
        for entry in plan:
            if NAMES[entry.contender] in skipped:
                continue
            log(f"round {round_no + 1}/{rounds}: {entry.what} ...")
            result = run_child(entry, sizes[entry.workload])
            if "skipped" in result:
                print(f"{result['skipped']}: skipped", flush=True)
                skipped[NAMES[entry.contender]] = result["skipped"]
                continue
            log(
                f"{entry.what}: {result['cmds_per_s']:,.0f} cmds/s, p50 "
                f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; "
                + ("checks passed" if not result["problems"] else f"{result['problems']}")
            )
            by_entry.setdefault(entry, []).append(result)
    total = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()
    tables: list[report.Table] = []
    all_lines: list[report.Line] = []
    for workload in args.workloads:
        lines = [
            report.Line(key=e.contender, rounds=rs)
            for e, rs in by_entry.items()
            if e.workload == workload
        ]
        all_lines += lines
        here = {
            name: reason
            for name, reason in skipped.items()
            if any(e.workload == workload and NAMES[e.contender] == name for e in plan)
        }
        table, notes = report.render(lines, here)
        tables.append(
            report.Table(workload=workload, sizes=sizes[workload], table=table, notes=notes)
        )
    all_results = [r for rs in by_entry.values() for r in rs]
    soft = versions(all_results)
    print()
    print(
        f"Turnstile peer benchmark, {info['date']}: {info['cpus']} CPUs, {info['cpu_model']}; "
        f"{'quick' if args.quick else 'full'} sizes, {done_rounds} of {rounds} round(s); "
        f"{total:,.0f} s"
    )
    print("software: " + ", ".join(f"{k} {v}" for k, v in soft.items()))
    print(f"code: commit {info['commit']}; uncommitted: {', '.join(info['dirty']) or 'none'}")
    for part in tables:
        print()
        print(f"workload {report.workload_line(part.workload, part.sizes)}")
        print()
        print(part.table)
        print()
        for note in part.notes:
            print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": all_results}, indent=1))
    if args.write_doc:
        command = ("python -m lab.peer_bench " + " ".join(sys.argv[1:])).strip()
        text = report.section(tables, info, soft, command, total, args.quick)
        write_section(report.HEADING, text)
        print(f"\nwrote the {report.HEADING!r} section of {BENCHMARKS_DOC.relative_to(REPO)}")
    return 1 if any(line.problems for line in all_lines) else 0


def _names(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        names = [n for n in text.split(",") if n]
        unknown = sorted(set(names) - set(choices))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)}")
        return names

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.peer_bench",
        description="Turnstile against PostgreSQL and eventsourcing on the onsale and spread "
        "workloads.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument(
        "--write-doc", action="store_true", help="also write the Peers section of the docs"
    )
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    parser.add_argument("--rounds", type=int, help="rounds per contender (median reported)")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help=f"seconds after which no further round starts (default {BUDGET_S:g})",
    )
    parser.add_argument(
        "--workloads",
        default=list(WORKLOADS),
        type=_names(WORKLOADS),
        help="workloads to run (comma-separated; default onsale,spread)",
    )
    parser.add_argument("--tickets", type=int, help="onsale: seats of the event (default 1,000)")
    parser.add_argument("--events", type=int, help="spread: how many events (default 1,000)")
    parser.add_argument("--event-tickets", type=int, help="spread: seats per event (default 10)")
    parser.add_argument("--users", type=int, help="users joining (default 10,000)")
    parser.add_argument("--clients", type=int, help="Turnstile's concurrent clients (default 64)")
    parser.add_argument("--deadline", type=float, help="seconds a round may take new users")
    parser.add_argument(
        "--only",
        default=list(NAMES),
        type=_names(tuple(NAMES)),
        help="contenders to run (comma-separated)",
    )
    parser.add_argument(
        "--pg-modes",
        default=["for-update", "plpgsql"],
        type=_names(PG_MODES),
        help="PostgreSQL designs to run (comma-separated; default for-update,plpgsql)",
    )
    parser.add_argument(
        "--pg-clients",
        type=lambda s: [int(x) for x in s.split(",")],
        help="PostgreSQL connection counts, one table row each, for every mode "
        "(default: for-update 8; plpgsql 8,16,64)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--pg-mode", choices=PG_MODES, default="for-update", help=argparse.SUPPRESS)
    parser.add_argument("--pg-clients-one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
