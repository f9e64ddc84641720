"""The `turnstile` command (docs/reference/cli.md).

    turnstile serve [--host 127.0.0.1] [--port 3210] [--data-dir ./data]
                    [--admin-key K] [--jwt-secret S] [--demo] [--app MODULE ...]
    turnstile token --jwt-secret S --sub USER [--org ORG] [--cap CAP ...] [--ttl SECONDS]
    turnstile loadtest --url URL [--scenario onsale|booking|fanout|mixed] ...  (docs/loadtest.md)

`serve` recovers the engine, then prints exactly `listening on http://HOST:PORT` (the bound port,
also when `--port 0` picked it) and serves. SIGINT or SIGTERM stops it cleanly: the listener
closes, requests in flight are answered (bounded), the engine commits what it has decided and
closes; the exit status is then 0. A second signal cuts the drain short.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import trio

from domain.identity import ADMIN, CAPABILITIES
from domain.model import Module
from domain.scheduling import JOB
from engine import Engine, open_engine, tune_gc
from engine.server import Authenticator, RunningServer, mint_token, open_server
from engine.server.identity_providers import AuthConfigError, Provider, load_auth_config
from tools import codegen, loadtest, replay
from tools.apps import add_app_option, load_app_modules

DEMO_ORG = "org_demo"
DEV_USER = "dev-user"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnstile",
        description=__doc__.split("\n\n")[0],
        epilog="Reference: docs/reference.md (the command line: docs/reference/cli.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="recover, then serve HTTP and WebSocket on one port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3210, help="0 picks a free port")
    serve.add_argument("--data-dir", type=Path, default=Path("./data"))
    serve.add_argument("--admin-key", default=os.environ.get("TURNSTILE_ADMIN_KEY"))
    serve.add_argument("--jwt-secret", default=os.environ.get("TURNSTILE_JWT_SECRET"))
    serve.add_argument(
        "--auth-config",
        type=Path,
        default=os.environ.get("TURNSTILE_AUTH_CONFIG"),
        metavar="FILE",
        help="identity providers (Clerk, Auth0, OIDC, custom JWT), in auth.config.ts's fields",
    )
    serve.add_argument("--demo", action="store_true", help="load demo data on an empty journal")
    serve.add_argument("--log-level", default="INFO")
    add_app_option(serve)

    token = commands.add_parser("token", help="print a user token (HS256 JWT)")
    token.add_argument("--jwt-secret", default=os.environ.get("TURNSTILE_JWT_SECRET"))
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument("--org", help="the user's organization")
    token.add_argument(
        "--cap", action="append", default=[], choices=sorted(CAPABILITIES), help="repeatable"
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    loadtest.add_parser(commands)
    add_app_option(codegen.add_parser(commands))

    replay.add_arguments(
        commands.add_parser("replay", help="verify, recover, inspect or export a journal")
    )
    for name, command in commands.choices.items():
        command.epilog = f'Reference: docs/reference/cli.md, "turnstile {name}".'
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "token":
        return _token(parser, args)
    if args.command == "loadtest":
        return loadtest.main(parser, args)
    if args.command == "replay":
        return replay.run(args)
    if args.command == "codegen":
        return codegen.run(args, load_app_modules(parser, args.apps))
    return _serve(parser, args)


def _token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not args.jwt_secret:
        parser.error("token needs --jwt-secret (or TURNSTILE_JWT_SECRET)")
    try:
        print(mint_token(args.jwt_secret, args.sub, args.org, args.cap, args.ttl))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    modules = load_app_modules(parser, args.apps)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    providers: tuple[Provider, ...] = ()
    if args.auth_config is not None:
        try:
            providers = load_auth_config(Path(args.auth_config))
        except AuthConfigError as exc:
            parser.error(str(exc))
    admin_key = args.admin_key or secrets.token_urlsafe(24)
    # Development tokens: with the given secret; else, without identity providers, with one made
    # now (printed below); with providers and no secret, none at all.
    jwt_secret = args.jwt_secret or (None if providers else secrets.token_urlsafe(48))
    try:
        authenticator = Authenticator(admin_key, jwt_secret, providers)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.admin_key:
        print(f"dev admin key: {admin_key}")
    for provider in providers:
        print(f"identity provider: {provider.issuer} ({provider.kind}, {provider.algorithm})")
    if not args.jwt_secret and jwt_secret is not None:
        print(f"dev jwt secret: {jwt_secret}")
        token = mint_token(jwt_secret, DEV_USER, ttl_seconds=7 * 24 * 3600)
        print(f"dev user token (sub={DEV_USER}, 7 days): {token}")
    sys.stdout.flush()
    trio.run(_run, args, authenticator, modules)
    return 0


async def _run(
    args: argparse.Namespace, authenticator: Authenticator, modules: tuple[Module, ...]
) -> None:
    tune_gc()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_engine(args.data_dir, modules=modules) as engine:
            if args.demo:
                await _load_demo(engine)
            async with (
                open_server(
                    engine, authenticator=authenticator, host=args.host, port=args.port
                ) as server,
                trio.open_nursery() as nursery,
            ):
                print(f"listening on http://{args.host}:{server.port}", flush=True)
                nursery.start_soon(_stop_on_signals, signals, server)
                await server.wait_stopped()
                nursery.cancel_scope.cancel()


async def _stop_on_signals(signals: AsyncIterator[int], server: RunningServer) -> None:
    """The first signal stops the server gracefully; a second cuts its drain short."""
    async for signum in signals:
        if server.stopping:
            logging.warning("second %s: stopping now", signal.Signals(signum).name)
            server.stop(drain=False)
            return
        logging.info("%s: stopping", signal.Signals(signum).name)
        server.stop()


async def _load_demo(engine: Engine) -> None:
    """On an empty journal only, in organization `org_demo`: an event on sale, a location
    with opening hours and two services, and three customers (one with a booking)."""
    if engine.journal.holds_records(ignoring_kinds=(JOB.kind,)):
        print("demo: the journal is not empty; nothing loaded")
        return

    async def run(name: str, args: dict[str, object]) -> object:
        return (await engine.mutation(name, {**args, "orgId": DEMO_ORG}, ADMIN)).value

    now_ms = int(time.time() * 1000)
    month_ms = 30 * 24 * 3600 * 1000
    event_id = await run(
        "events:create",
        {
            "name": "Turnstile Launch Night",
            "description": "A demo event: join the waiting list and buy a ticket.",
            "location": "The Hall",
            "eventDate": now_ms + month_ms,
            "price": 2500,
            "totalTickets": 100,
        },
    )
    weekday = {"open": "09:00", "close": "18:00"}
    location_id = await run(
        "locations:create",
        {
            "name": "Demo Studio",
            "address": {
                "line1": "1 Demo Street",
                "city": "London",
                "postalCode": "E1 1AA",
                "country": "GB",
            },
            "timezone": "Europe/London",
            "operatingHours": {
                day: weekday for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
            }
            | {"saturday": {"open": "10:00", "close": "16:00"}},
            "settings": {},
        },
    )
    for name, minutes, price, resource in (
        ("Haircut", 45, 3500, "chair-1"),
        ("Massage", 60, 6000, "room-1"),
    ):
        await engine.mutation(
            "services:create",
            {
                "locationId": location_id,
                "name": name,
                "description": f"A demo {name.lower()}.",
                "duration": minutes,
                "price": price,
                "isActive": True,
                "resources": [resource],
            },
            ADMIN,
        )
    customers = []
    for first, last, phone in (
        ("Ada", "Lovelace", "020 7946 0101"),
        ("Alan", "Turing", "020 7946 0102"),
        ("Grace", "Hopper", "020 7946 0103"),
    ):
        customers.append(
            await run(
                "customers:create",
                {
                    "firstName": first,
                    "lastName": last,
                    "email": f"{first.lower()}@demo.example",
                    "phone": phone,
                    "lifecycle": "active",
                    "locationId": location_id,
                },
            )
        )
    print(
        f"demo: in {DEMO_ORG}: event {event_id}, location {location_id} with 2 services,"
        f" {len(customers)} customers",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
