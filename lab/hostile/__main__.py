"""`python -m lab.hostile fuzz|flood|serve` (`./dev hostile ...`): the long forms of the
hostile-client and flood tests; docs/reliability.md holds the figures they printed.

    python -m lab.hostile fuzz --cases 20000 [--transport sync|http|both] [--seed N]
    python -m lab.hostile flood --connections 5000 [--slow 500] [--senders 20] [--readers 5]
    python -m lab.hostile serve --data-dir DIR [--set FIELD=VALUE ...]   (used by flood)
    python -m lab.hostile load hold|watch|churn|slow|fast|noread --port P --count N
        (used by flood)

Hypothesis (a dev dependency) drives `fuzz`; psutil (also dev) measures `flood`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from engine.server import ServerConfig
from lab.hostile.runner import (
    TRANSPORTS,
    default_seed,
    run_flood,
    run_fuzz,
    run_load,
    serve_standalone,
)


def _settings(pairs: Sequence[str]) -> dict[str, Any]:
    """`FIELD=VALUE` pairs as ServerConfig keyword arguments (typed as the fields are)."""
    fields = {field.name: field for field in attrs.fields(ServerConfig)}
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields:
            raise SystemExit(f"no ServerConfig field {name!r}")
        settings[name] = type(getattr(ServerConfig(), name))(value)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.hostile", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fuzz = commands.add_parser("fuzz", help="hostile sync sessions and HTTP requests")
    fuzz.add_argument("--cases", type=int, default=20_000, help="cases per transport")
    fuzz.add_argument("--transport", choices=[*TRANSPORTS, "both"], default="both")
    fuzz.add_argument("--seed", type=int, default=None, help="default: a fresh one (printed)")
    flood = commands.add_parser("flood", help="connection floods against a server process")
    flood.add_argument("--connections", type=int, default=5_000)
    flood.add_argument("--slow", type=int, default=500, help="slow handshakes")
    flood.add_argument("--senders", type=int, default=20, help="clients sending flat out")
    flood.add_argument("--readers", type=int, default=5, help="clients that never read")
    serve = commands.add_parser("serve", help="the server a flood runs against")
    serve.add_argument("--data-dir", type=Path, required=True)
    serve.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    load = commands.add_parser("load", help="one flood, from its own process (used by flood)")
    load.add_argument("kind", choices=["hold", "watch", "churn", "slow", "fast", "noread"])
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--count", type=int, required=True)
    load.add_argument("--event", default="")
    load.add_argument("--messages", type=int, default=3_000)
    args = parser.parse_args(argv)

    if args.command == "serve":
        try:
            trio.run(serve_standalone, args.data_dir, _settings(args.set))
        except* KeyboardInterrupt:  # how `flood` stops it
            pass
        return 0
    if args.command == "load":
        trio.run(run_load, args.kind, args.port, args.count, args.event, args.messages)
        return 0
    if args.command == "fuzz":
        seed = default_seed() if args.seed is None else args.seed
        transports = TRANSPORTS if args.transport == "both" else (args.transport,)
        print(f"python -m lab.hostile fuzz --cases {args.cases} --transport"
              f" {args.transport} --seed {seed}", flush=True)
        reports = trio.run(run_fuzz, args.cases, transports, seed)
        total = sum(report.cases for report in reports)
        print(f"total: {total:,} cases tried, every answer right, bystanders correct")
        return 0
    trio.run(run_flood, args.connections, args.slow, args.senders, args.readers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
