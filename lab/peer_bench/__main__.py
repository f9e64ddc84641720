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

from lab.figures import BENCHMARKS_DOC, machine, write_section
from lab.peer_bench import report
from lab.peer_bench.workload import FULL, QUICK, Sizes

REPO = Path(__file__).resolve().parent.parent.parent
NAMES = {"turnstile": "Turnstile", "postgres": "PostgreSQL", "eventsourcing": "eventsourcing"}


def log(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the child: one round of one contender ------------------------------------------------------


def _terminate(signum: int, frame: Any) -> None:
    # The parent's time limit: unwind, so every `finally` (the PostgreSQL server's stop) runs.
    raise SystemExit(f"stopped by signal {signum}")


def run_round(contender: str, scratch: Path, sizes: Sizes, pg_clients: int, pg_mode: str) -> Any:
    """One round in this process: the summary dict, or {"skipped": reason} if the contender is
    not installed here."""
    if contender == "turnstile":
        from engine import tune_gc
        from lab.peer_bench import turnstile_side

        tune_gc()  # as a server would run (engine.tune_gc)
        return turnstile_side.run(scratch, sizes)
    if contender == "postgres":
        from lab.peer_bench import postgres_side

        try:
            return postgres_side.run(_with_clients(sizes, pg_clients), pg_mode)
        except postgres_side.Unavailable as exc:
            return {"skipped": str(exc)}
    if contender == "eventsourcing":
        from lab.peer_bench import eventsourcing_side

        try:
            return eventsourcing_side.run(scratch, sizes)
        except eventsourcing_side.Unavailable as exc:
            return {"skipped": str(exc)}
    raise ValueError(f"unknown contender {contender!r}")


def _with_clients(sizes: Sizes, clients: int) -> Sizes:
    return Sizes(
        tickets=sizes.tickets,
        users=sizes.users,
        clients=clients,
        rounds=sizes.rounds,
        deadline_s=sizes.deadline_s,
    )


def child_main(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    result = run_round(args.child, args.scratch, sizes_of(args), args.pg_clients_one, args.pg_mode)
    args.out.write_text(json.dumps(result))


# -- the parent ---------------------------------------------------------------------------------


def run_child(contender: str, args: argparse.Namespace, pg_clients: int) -> dict[str, Any]:
    """Run one round in a subprocess with its own scratch directory (deleted afterwards, also if
    the child failed); the child is stopped (SIGTERM, then SIGKILL) past the round's deadline."""
    sizes = sizes_of(args)
    scratch = Path(tempfile.mkdtemp(prefix=f"turnstile-peers-{contender}-", dir="/tmp"))
    out = scratch / "result.json"
    command = [
        sys.executable, "-m", "lab.peer_bench", "--child", contender, "--out", str(out),
        "--scratch", str(scratch), "--pg-mode", args.pg_mode, "--pg-clients-one", str(pg_clients),
        "--tickets", str(sizes.tickets), "--users", str(sizes.users),
        "--clients", str(sizes.clients), "--deadline", str(sizes.deadline_s),
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
            raise RuntimeError(f"{contender}: the round overran its time limit") from None
        if code != 0:
            raise RuntimeError(f"{contender}: the round failed (exit status {code})")
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sizes_of(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    return Sizes(
        tickets=args.tickets or base.tickets,
        users=args.users or base.users,
        clients=args.clients or base.clients,
        rounds=args.rounds or base.rounds,
        deadline_s=args.deadline or base.deadline_s,
    )


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
    sizes = sizes_of(args)
    pg_clients = args.pg_clients or ([sizes.clients, 4] if not args.quick else [sizes.clients])
    plan: list[tuple[str, int]] = [("turnstile", 0)]
    plan += [("postgres", c) for c in pg_clients]
    plan.append(("eventsourcing", 0))
    plan = [(c, n) for c, n in plan if c in args.only]
    info = machine()
    started = time.perf_counter()
    by_line: dict[tuple[str, int], list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for round_no in range(sizes.rounds):
        for contender, clients in plan:
            if NAMES[contender] in skipped:
                continue
            what = contender + (f" ({clients} connections)" if clients else "")
            log(f"round {round_no + 1}/{sizes.rounds}: {what} ...")
            result = run_child(contender, args, clients)
            if "skipped" in result:
                print(f"{result['skipped']}: skipped", flush=True)
                skipped[NAMES[contender]] = result["skipped"]
                continue
            log(
                f"{what}: {result['cmds_per_s']:,.0f} cmds/s, p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms; "
                + ("checks passed" if not result["problems"] else f"{result['problems']}")
            )
            by_line.setdefault((contender, clients), []).append(result)
    total = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()
    lines = [report.Line(key=c, rounds=rounds) for (c, _), rounds in by_line.items()]
    table, notes = report.render(lines, skipped)
    all_results = [r for rounds in by_line.values() for r in rounds]
    soft = versions(all_results)
    print()
    print(
        f"Turnstile peer benchmark, {info['date']}: {info['cpus']} CPUs, {info['cpu_model']}; "
        f"{'quick' if args.quick else 'full'} sizes ({sizes.tickets:,} tickets, "
        f"{sizes.users:,} users, {sizes.clients} clients); {total:,.0f} s"
    )
    print("software: " + ", ".join(f"{k} {v}" for k, v in soft.items()))
    print(f"code: commit {info['commit']}; uncommitted: {', '.join(info['dirty']) or 'none'}")
    print()
    print(table)
    print()
    for note in notes:
        print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": all_results}, indent=1))
    if args.write_doc:
        command = ("python -m lab.peer_bench " + " ".join(sys.argv[1:])).strip()
        text = report.section(table, notes, info, soft, command, sizes, total, args.quick)
        write_section(report.HEADING, text)
        print(f"\nwrote the {report.HEADING!r} section of {BENCHMARKS_DOC.relative_to(REPO)}")
    return 1 if any(line.problems for line in lines) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.peer_bench",
        description="Turnstile against PostgreSQL and eventsourcing on the onsale workload.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument(
        "--write-doc", action="store_true", help="also write the Peers section of the docs"
    )
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    parser.add_argument("--rounds", type=int, help="rounds per contender (median reported)")
    parser.add_argument("--tickets", type=int, help="seats of the event (default 1,000)")
    parser.add_argument("--users", type=int, help="users joining (default 10,000)")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 64)")
    parser.add_argument("--deadline", type=float, help="seconds a round may take new users")
    parser.add_argument(
        "--only",
        default="turnstile,postgres,eventsourcing",
        type=lambda s: s.split(","),
        help="contenders to run (comma-separated)",
    )
    parser.add_argument("--pg-mode", choices=("for-update", "serializable"), default="for-update")
    parser.add_argument(
        "--pg-clients",
        type=lambda s: [int(x) for x in s.split(",")],
        help="PostgreSQL connection counts, one table row each (default: clients, and 4)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pg-clients-one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
