"""The `turnstile` command (docs/reference/cli.md).

    turnstile serve [--host 127.0.0.1] [--port 3210] [--data-dir ./data]
                    [--admin-key K] [--jwt-secret S] [--demo] [--app MODULE ...]
    turnstile serve --print-auth-config
    turnstile token --jwt-secret S --sub USER [--org ORG] [--cap CAP ...] [--ttl SECONDS]
    turnstile token --key FILE [--kid K] [--iss ISSUER] [--aud AUD] [--alg A] --sub USER ...
    turnstile token --new-key FILE [--alg RS256|ES256] [--kid K] [--iss ISSUER] [--aud AUD]
    turnstile loadtest --url URL [--scenario onsale|booking|fanout|mixed] ...  (docs/loadtest.md)

`serve` recovers the engine, then prints exactly `listening on http://HOST:PORT` (the bound port,
also when `--port 0` picked it) and serves. SIGINT or SIGTERM stops it cleanly: the listener
closes, requests in flight are answered (bounded), the engine commits what it has decided and
closes; the exit status is then 0. A second signal cuts the drain short.
"""

from __future__ import annotations

import argparse
import json
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
from engine.journal import JournalLocked
from engine.server import (
    Authenticator,
    RunningServer,
    ServerConfig,
    dev_tokens,
    mint_token,
    open_server,
)
from engine.server.identity_providers import (
    ALGORITHMS,
    AuthConfigError,
    Provider,
    load_auth_config,
)
from tools import codegen, loadtest, replay
from tools.apps import add_app_option, load_app_modules

DEMO_ORG = "org_demo"
DEV_USER = "dev-user"
#: Seconds a printed token is valid by default.
TOKEN_TTL = 3600


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
    serve.add_argument(
        "--print-auth-config",
        action="store_true",
        help="print an example auth config (Clerk, Auth0, OIDC, custom JWT) and exit",
    )
    serve.add_argument("--demo", action="store_true", help="load demo data on an empty journal")
    serve.add_argument(
        "--stripe-webhook-secret",
        default=os.environ.get("TURNSTILE_STRIPE_WEBHOOK_SECRET"),
        metavar="WHSEC",
        help="Stripe's signing secret: serves POST /stripe/webhook (404 without it)",
    )
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        default=ServerConfig().max_upload_bytes,
        help="largest file an upload URL takes (413 beyond)",
    )
    serve.add_argument(
        "--upload-stall-timeout",
        type=float,
        default=ServerConfig().upload_stall_timeout,
        help="seconds an upload may go without a byte arriving (then 408, nothing kept)",
    )
    serve.add_argument(
        "--public-url",
        help="the base of the URLs file storage answers (default http://HOST:PORT as bound)",
    )
    serve.add_argument("--log-level", default="INFO")
    add_app_option(serve)

    token = commands.add_parser(
        "token", help="print a user token (HS256, or RS256/ES256 with a development key)"
    )
    token.add_argument("--jwt-secret", help="the server's secret (default $TURNSTILE_JWT_SECRET)")
    token.add_argument("--sub", help="the user id (required but with --new-key)")
    token.add_argument("--org", help="the user's organization")
    token.add_argument(
        "--cap", action="append", default=[], choices=sorted(CAPABILITIES), help="repeatable"
    )
    token.add_argument("--ttl", type=int, help=f"seconds until it expires (default {TOKEN_TTL})")
    token.add_argument(
        "--key", type=Path, metavar="FILE", help="sign with this private key (PEM), not a secret"
    )
    token.add_argument(
        "--new-key",
        type=Path,
        metavar="FILE",
        help="write a new private key (mode 0600) and print the auth config that accepts it",
    )
    token.add_argument(
        "--alg", choices=ALGORITHMS, help="with --key: the key's (checked); --new-key: RS256"
    )
    token.add_argument("--kid", help=f"the key's id (default {dev_tokens.DEFAULT_KID})")
    token.add_argument("--iss", help=f"the issuer (default {dev_tokens.DEFAULT_ISSUER})")
    token.add_argument("--aud", help=f"the audience (default {dev_tokens.DEFAULT_AUDIENCE})")
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
    if args.key is not None or args.new_key is not None:
        return _key_token(parser, args)
    key_only = {"--alg": args.alg, "--kid": args.kid, "--iss": args.iss, "--aud": args.aud}
    key_flags = [flag for flag, value in key_only.items() if value is not None]
    if key_flags:
        need = "needs" if len(key_flags) == 1 else "need"
        parser.error(f"token: {', '.join(key_flags)} {need} --key or --new-key")
    secret = args.jwt_secret or os.environ.get("TURNSTILE_JWT_SECRET")
    if not secret:
        parser.error("token needs --jwt-secret (or TURNSTILE_JWT_SECRET), or --key")
    if not args.sub:
        parser.error("token needs --sub (the user id)")
    try:
        print(mint_token(secret, args.sub, args.org, args.cap, _ttl(args)))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


def _ttl(args: argparse.Namespace) -> int:
    return TOKEN_TTL if args.ttl is None else int(args.ttl)


def _key_token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """`--new-key FILE`: write a key, print its auth config; `--key FILE`: print a token."""
    if args.key is not None and args.new_key is not None:
        parser.error("token: give --key (sign with a key) or --new-key (make one), not both")
    if args.jwt_secret is not None:
        parser.error("token: --jwt-secret signs HS256; a key signs by itself (drop one)")
    kid = args.kid or dev_tokens.DEFAULT_KID
    issuer = args.iss or dev_tokens.DEFAULT_ISSUER
    audience = args.aud or dev_tokens.DEFAULT_AUDIENCE
    if args.new_key is not None:
        token_flags = (
            ("--sub", args.sub),
            ("--org", args.org),
            ("--cap", args.cap),
            ("--ttl", args.ttl),
        )
        given = [flag for flag, value in token_flags if value not in (None, [])]
        if given:
            parser.error(
                f"token --new-key prints an auth config, not a token: drop {', '.join(given)}"
                " (then mint with --key)"
            )
        try:
            key = dev_tokens.new_private_key(args.alg or "RS256")
            dev_tokens.write_private_key(args.new_key, key)
        except dev_tokens.DevKeyError as exc:
            parser.error(str(exc))
        config = dev_tokens.dev_auth_config(key, kid=kid, issuer=issuer, audience=audience)
        print(json.dumps(config, indent=2))
        print(
            f"wrote {args.new_key} ({dev_tokens.algorithm_of(key)}, kid {kid}); serve with the"
            f" config above as --auth-config, mint with: turnstile token --key {args.new_key}"
            " --sub USER",
            file=sys.stderr,
        )
        return 0
    if not args.sub:
        parser.error("token needs --sub (the user id)")
    try:
        key = dev_tokens.load_private_key(args.key)
        token = dev_tokens.mint_dev_token(
            key,
            args.sub,
            org=args.org,
            caps=args.cap,
            ttl_seconds=_ttl(args),
            kid=kid,
            issuer=issuer,
            audience=audience,
            algorithm=args.alg,
        )
    except dev_tokens.DevKeyError as exc:
        parser.error(str(exc))
    print(token)
    return 0


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.print_auth_config:
        print(json.dumps(dev_tokens.EXAMPLE_AUTH_CONFIG, indent=2))
        return 0
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
    locked: BaseException | None = None
    try:
        trio.run(_run, args, authenticator, modules)
    except* JournalLocked as group:  # (raised inside the engine's nursery)
        locked = group.exceptions[0]
    if locked is not None:
        print(f"turnstile serve: {locked}", file=sys.stderr)
        return 1
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
                    engine,
                    authenticator=authenticator,
                    host=args.host,
                    port=args.port,
                    config=ServerConfig(
                        max_upload_bytes=args.max_upload_bytes,
                        upload_stall_timeout=args.upload_stall_timeout,
                    ),
                    public_url=args.public_url,
                    stripe_webhook_secret=args.stripe_webhook_secret,
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
