"""`python -m lab.chaos` (or `./dev chaos`): the two hostile runs of docs/reliability.md.

    python -m lab.chaos [--duration 120] [--kills 30] [--kill-every N] [--port P]
                          [--data-dir D] [--seed S] [--report FILE.json]
    python -m lab.chaos isolation [--orgs 3] [--rounds 20] [--seed S] [--http-sample 500]
                                    [--report FILE.json]

Exit status: 0 when every check passed, 1 when one failed, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
import trio.testing

from engine.testing import open_harness
from lab.chaos.crash import ChaosConfig, ChaosError, ChaosReport, run_chaos
from lab.chaos.isolation import IsolationConfig, IsolationReport, run_isolation


def _crash_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.chaos",
        description="Crash under load: run the mixed load test against a turnstile serve that "
        "is SIGKILLed at random moments and restarted on the same port and data dir; then "
        "nothing acknowledged may be lost or applied twice, and replay --verify must be clean. "
        "(`python -m lab.chaos isolation --help`: the isolation test.)",
    )
    defaults = ChaosConfig()
    add = parser.add_argument
    add("--duration", type=float, default=defaults.duration, help="seconds of load")
    add("--kills", type=int, default=defaults.kills, help="SIGKILLs spread over the load")
    add(
        "--kill-every",
        type=int,
        help="kill once this many more mutations were acknowledged since the server came up, "
        "with the load's work bounded by count and --duration only its bound (default: kill "
        "at random moments of --duration)",
    )
    add("--port", type=int, help="the server's fixed port on 127.0.0.1 (default: a free one)")
    add("--data-dir", type=Path, help="absent or empty (default: a temporary directory)")
    add("--seed", type=int, help="seed of the kill moments and the users' choices")
    add("--recovery-timeout", type=float, default=defaults.recovery_timeout)
    add("--users", type=int, default=defaults.users, help="onsale users")
    add("--tickets", type=int, default=defaults.tickets, help="onsale tickets")
    add("--subscribers", type=int, default=defaults.subscribers, help="fanout watchers")
    add("--writers", type=int, default=defaults.writers, help="fanout writers")
    add("--staff", type=int, default=defaults.staff, help="booking staff")
    add("--think-ms", type=float, default=defaults.think_ms)
    add("--report", type=Path, help="write the full report as JSON here")
    return parser


def _isolation_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.chaos isolation",
        description="Isolation: every function of the registry called by every party foreign "
        "to the ids it names, in-process and (a sample) over HTTP with real JWTs; no call may "
        "read or write another organization's or user's records.",
    )
    defaults = IsolationConfig()
    add = parser.add_argument
    add("--orgs", type=int, default=defaults.orgs, help="organizations (2 to 26)")
    add("--rounds", type=int, default=20, help="mixed calls per function, victim and caller")
    add("--seed", type=int, default=defaults.seed)
    add("--http-sample", type=int, default=500, help="calls repeated over HTTP")
    add("--report", type=Path, help="write the full report as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["isolation"]:
        return _isolation(_isolation_parser().parse_args(argv[1:]))
    return _crash(_crash_parser(), _crash_parser().parse_args(argv))


# -- crash under load -----------------------------------------------------------------------------


def _crash(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    config = ChaosConfig(
        duration=args.duration,
        kills=args.kills,
        kill_every=args.kill_every,
        port=args.port,
        data_dir=args.data_dir,
        seed=args.seed,
        recovery_timeout=args.recovery_timeout,
        users=args.users,
        tickets=args.tickets,
        subscribers=args.subscribers,
        writers=args.writers,
        staff=args.staff,
        think_ms=args.think_ms,
    )
    try:
        config.validate()
    except ChaosError as exc:
        parser.error(str(exc))
    if config.kill_every is None:
        plan = f"mixed load for {config.duration:g} s, {config.kills} SIGKILLs spread over it"
    else:
        plan = (
            f"mixed load, {config.kills} SIGKILLs, each after {config.kill_every} more "
            f"acknowledged mutations (at most {config.duration:g} s)"
        )
    print(f"turnstile chaos: {plan} ...", flush=True)
    report = trio.run(run_chaos, config)
    _write(args.report, report.to_json())
    print(crash_summary(report), flush=True)
    if report.passed and config.data_dir is None:
        shutil.rmtree(report.data_dir.parent, ignore_errors=True)
    elif not report.passed:
        print(f"data dir and server log kept in {report.data_dir.parent}", flush=True)
    if not report.started:
        return 2
    return 0 if report.passed else 1


def _n(value: int) -> str:
    return f"{value:,}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def crash_summary(report: ChaosReport) -> str:
    tally = report.tally
    lines = [
        f"turnstile chaos: mixed load against http://127.0.0.1:{report.port} (seed {report.seed})"
    ]
    if report.failure is not None:
        lines.append(f"  FAILED TO RUN: {report.failure}")
    lines += [
        f"  kills survived: {report.kills} of {report.config.kills}",
        "  recovery (SIGKILL -> /health 200): "
        f"p50 {_s(report.recovery_percentile(50))}, p99 {_s(report.recovery_percentile(99))}, "
        f"max {_s(max(report.recovery_seconds, default=None))}",
        f"  mutations acknowledged: {_n(tally.acknowledged)} ("
        + ", ".join(f"{name} {_n(n)}" for name, n in sorted(tally.by_function.items()))
        + ")",
        f"  lost: {len(tally.lost)}",
        f"  duplicated: {len(tally.duplicated)}",
        f"  refused by the domain's rules: {_n(tally.refused)}; unfinished: {tally.unfinished}",
        f"  read back from the server as acknowledged: {_n(tally.read_back)} of "
        f"{_n(tally.acknowledged)}",
    ]
    if report.load is not None:
        passed = sum(check.passed for check in report.load_checks)
        lines.append(
            f"  load test checks: {passed} of {len(report.load_checks)} passed; clients "
            f"reconnected {_n(report.load.recorder.reconnects)} times"
        )
        errors = report.load_errors()["byFunction"]
        if errors:
            lines.append(
                "  refusals and failures seen by the load's clients: "
                + "; ".join(
                    f"{function} " + ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
                    for function, codes in sorted(errors.items())
                )
            )
    if report.verify is not None:
        journal = report.verify.get("journal", {})
        verdict = "clean" if report.verify_clean else "PROBLEMS"
        lines.append(
            f"  replay --verify: {verdict} ({_n(journal.get('rows', 0))} rows, "
            f"{_n(journal.get('streams', 0))} streams, "
            f"{len(report.verify.get('snapshots', []))} snapshots)"
        )
    elif report.failure is None:
        lines.append(f"  replay --verify: no report (exit status {report.verify_status})")
    for title, items in (
        ("lost", tally.lost),
        ("duplicated", tally.duplicated),
        ("not read back", tally.not_read_back),
        ("problems", tally.problems),
        ("unfinished", tally.unfinished_sent),
        ("failed load checks", [f"{c.name}: {c.detail}" for c in report.load_checks
                                if not c.passed]),
        ("verify findings", [json.dumps(f) for f in (report.verify or {}).get("findings", [])]),
    ):  # fmt: skip
        if items:
            lines.append(f"  {title}:")
            lines.extend(f"    {item}" for item in items[:10])
    lines.append("PASSED" if report.passed else "FAILED")
    return "\n".join(lines)


# -- isolation ------------------------------------------------------------------------------------


def _isolation(args: argparse.Namespace) -> int:
    config = IsolationConfig(
        orgs=args.orgs, rounds=args.rounds, seed=args.seed, http_sample=args.http_sample
    )
    if not 2 <= config.orgs <= 26 or config.rounds < 0 or config.http_sample < 0:
        print("isolation: --orgs must be 2..26, --rounds and --http-sample >= 0", file=sys.stderr)
        return 2
    report = trio.run(_isolation_run, config, clock=trio.testing.MockClock())
    _write(args.report, report.to_json())
    print(isolation_summary(report), flush=True)
    return 0 if report.passed else 1


async def _isolation_run(config: IsolationConfig) -> IsolationReport:
    # The engine's clock stands still (a MockClock that never jumps): no scheduled job writes
    # while each call is judged by the journal rows it added.
    with tempfile.TemporaryDirectory(prefix="turnstile-isolation-") as tmp:
        async with open_harness(Path(tmp) / "data") as harness:
            return await run_isolation(harness.engine, config)


def isolation_summary(report: IsolationReport) -> str:
    config = report.config
    declared = ", ".join(f"{k} {_n(v)}" for k, v in sorted(report.declared.items())) or "none"
    lines = [
        f"turnstile chaos isolation: {config.orgs} organizations, {report.parties} parties, "
        f"{config.rounds} mixed rounds, seed {config.seed}",
        f"  calls tried: {_n(report.calls)} in-process by a party foreign to the ids named "
        f"({len(report.by_function)} functions), {_n(report.twins)} twins with ids that exist "
        f"nowhere, {report.controls} owner controls",
        f"  over HTTP with real JWTs: {_n(report.http_calls)} calls, "
        f"{report.auth_checks} token checks",
        "  outcomes: " + ", ".join(f"{k} {_n(v)}" for k, v in report.outcomes.most_common()),
        f"  refusals with a code a probe declares: {declared}",
    ]
    if report.accepted:
        lines.append(
            "  accepted foreign mutations (the victim's id only a reference the function "
            "stores unread; nothing of the victim written or answered):"
        )
        lines.extend(f"    {k}: {_n(v)}" for k, v in sorted(report.accepted.items()))
    if report.missing:
        lines.append(f"  functions without an args generator: {', '.join(report.missing)}")
    lines.append(f"  breaches: {len(report.breaches)}")
    lines.extend(f"    {breach}" for breach in report.breaches[:20])
    lines.append("PASSED" if report.passed else "FAILED")
    return "\n".join(lines)


def _write(path: Path | None, document: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


__all__ = ["crash_summary", "isolation_summary", "main"]
