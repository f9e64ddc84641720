"""`turnstile loadtest`: its arguments and what the command does with the run's result.

Exit status: 0 when every correctness check passed, 1 when one failed, 2 when the run could
not start (bad arguments, a URL that is not loopback, an unreachable server, a refused key, an
app that does not load, a scenario neither built in nor declared by an `--app`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import trio

from tools.apps import add_app_option, load_app_modules
from tools.loadtest.config import SCENARIO_NAMES, ConfigError, LoadConfig
from tools.loadtest.html import render_html
from tools.loadtest.report import build_report, summary_text, write_report
from tools.loadtest.runner import SetupFailed, run_loadtest
from tools.loadtest.scenarios import resolve_scenarios

DESCRIPTION = """Simulated users over real WebSockets (the project's Python client) against a
Turnstile server on this machine. Scenarios: onsale (users rush an event, then buy, release or
let offers lapse), booking (staff book services at a location), fanout (many subscribers, few
writers), mixed (all at once), and those an app declares (--app MODULE: its module's
`loadtest_scenarios`). Reports throughput, HDR latency percentiles, errors by code and
correctness checks; exits 1 if a check fails."""
#: `--app` here names an app the server serves, whose module may declare load scenarios.
APP_HELP = (
    "an app the server serves (as `turnstile serve --app` takes it), whose module's"
    " `loadtest_scenarios` --scenario may also name; repeatable"
)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `loadtest` sub-command to `commands` (an argparse sub-parsers object)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "loadtest",
        help="load-test a server on this machine with simulated users",
        description=DESCRIPTION,
    )
    defaults = LoadConfig(url="", admin_key="", jwt_secret="")
    add = parser.add_argument
    add("--url", required=True, help="the server, e.g. http://127.0.0.1:3210 (loopback only)")
    add("--admin-key", default=os.environ.get("TURNSTILE_ADMIN_KEY"))
    add("--jwt-secret", default=os.environ.get("TURNSTILE_JWT_SECRET"))
    # Not `choices=`: an app's scenarios are known only once --app is loaded (see `main`).
    add("--scenario", default=defaults.scenario, metavar="{" + ",".join(SCENARIO_NAMES) + "}",
        help="a built-in scenario, or one an --app declares")  # fmt: skip
    add_app_option(parser, help=APP_HELP)
    add("--duration", type=float, default=defaults.duration, help="seconds of load at most")
    add("--settle", type=float, default=defaults.settle,
        help="seconds for subscribers to converge after the load, at most")  # fmt: skip
    add("--connect-timeout", type=float, default=defaults.connect_timeout)
    add("--users", type=int, default=defaults.users, help="onsale: users rushing the sale")
    add("--tickets", type=int, default=defaults.tickets, help="onsale: the event's tickets")
    add("--buy-fraction", type=float, default=defaults.buy_fraction,
        help="onsale: share of offered users who buy")  # fmt: skip
    add("--release-fraction", type=float, default=defaults.release_fraction,
        help="onsale: share of the others who release (the rest let the offer lapse)")  # fmt: skip
    add("--subscribers", type=int, default=defaults.subscribers, help="fanout: live watchers")
    add("--writers", type=int, default=defaults.writers, help="fanout: writing connections")
    add("--writes", type=int, default=defaults.writes,
        help="fanout: writers' mutations at most (0: only the duration bounds them)")  # fmt: skip
    add("--staff", type=int, default=defaults.staff, help="booking: staff users booking")
    add("--bookings", type=int, default=defaults.bookings,
        help="booking: booking attempts at most (0: only the duration bounds them)")  # fmt: skip
    add("--think-ms", type=float, default=defaults.think_ms,
        help="mean pause between a user's steps")  # fmt: skip
    add("--org", default=defaults.org_id, help="organization the run's records belong to")
    add("--seed", type=int, help="seed of the users' random choices")
    add("--report", type=Path, help="write the full report as JSON here")
    add("--html", type=Path, help="write a self-contained HTML report with charts here")
    # `main` refuses an unknown scenario as this parser's own `choices=` once did.
    parser.set_defaults(loadtest_parser=parser)
    return parser


def main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    apps = tuple(args.apps)
    if apps:
        load_app_modules(parser, apps)  # a wrong app: exit 2, as `turnstile serve --app`
    elif args.scenario not in SCENARIO_NAMES:
        # The refusal argparse gave when the built-in names were the only choices.
        choices = ", ".join(map(repr, SCENARIO_NAMES))
        args.loadtest_parser.error(
            f"argument --scenario: invalid choice: {args.scenario!r} (choose from {choices})"
        )
    config = LoadConfig(
        url=args.url,
        admin_key=args.admin_key or "",
        jwt_secret=args.jwt_secret or "",
        scenario=args.scenario,
        duration=args.duration,
        settle=args.settle,
        connect_timeout=args.connect_timeout,
        users=args.users,
        tickets=args.tickets,
        buy_fraction=args.buy_fraction,
        release_fraction=args.release_fraction,
        subscribers=args.subscribers,
        writers=args.writers,
        writes=args.writes,
        staff=args.staff,
        bookings=args.bookings,
        think_ms=args.think_ms,
        org_id=args.org,
        apps=apps,
        seed=args.seed,
        report=args.report,
        html=args.html,
        progress=sys.stderr.isatty(),
    )
    try:
        config.validate()
        resolve_scenarios(config)
    except ConfigError as exc:
        parser.error(f"loadtest: {exc}")
    try:
        result = trio.run(run_loadtest, config, sys.stderr if config.progress else None)
    except SetupFailed as exc:
        print(f"turnstile loadtest: {exc}", file=sys.stderr)
        return 2
    report = build_report(result)
    if config.report is not None:
        write_report(report, config.report)
    if config.html is not None:
        config.html.write_text(render_html(report), encoding="utf-8")
    print(summary_text(report), flush=True)
    return 0 if report["passed"] else 1


__all__ = ["add_parser", "main"]
