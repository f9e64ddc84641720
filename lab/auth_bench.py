"""Token verification benchmark: `python -m lab.auth_bench [--quick] [--write-doc]`.

What a user token costs the server to check, for the three kinds it accepts, in one run so
that the ratios are of one machine in one state:

1. In-process: `Authenticator.authenticate` (what a session's Authenticate and an HTTP
   request's Bearer token go through) and `Authenticator.user` (the same check, never
   fetching a key), `--tokens` times per algorithm, round-robin over `--distinct` tokens of
   different users, each with an organization and two capabilities. RS256 (RSA 2048) and
   ES256 (P-256) are tokens of custom JWT providers whose keys came as `data:` URIs: the key
   cache is warm from the start and never fetches, which is what a provider's tokens cost once
   its keys are known. HS256 is the development secret, the baseline. Tokens verified per
   second on one core, and each algorithm's time per token over HS256's.
2. Over a live WebSocket (127.0.0.1, one connection, a server in this process): one public
   query subscribed, then `--ws-rounds` times an `Authenticate` with a fresh token and the wait
   for the Transition that re-evaluates the query for the new identity; p50/p99 of that round
   trip per algorithm, and the p50 over HS256's p50. What it adds over part 1 is the wire,
   the session and one query's re-evaluation, the same for every algorithm.

`--write-doc` writes the run's figures as the "## Token verification (identity providers)"
section of docs/benchmarks.md (`lab.figures.write_section`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import jwt
import orjson
import trio
import trio_websocket

from engine import open_engine, tune_gc
from engine.server import Authenticator, mint_token, open_server
from engine.server.dev_tokens import (
    DEFAULT_AUDIENCE,
    dev_auth_config,
    mint_dev_token,
    new_private_key,
)
from engine.server.identity_providers import Provider, parse_auth_config
from engine.wire.protocol import connect_message, subscribe_message
from lab.figures import percentile, run_and_report

SECTION = "## Token verification (identity providers)"
COMMAND = "python -m lab.auth_bench --write-doc"
ALGORITHMS = ("HS256", "RS256", "ES256")
DESCRIBED = {
    "HS256": "HS256 (development secret)",
    "RS256": "RS256 (RSA 2048, customJwt)",
    "ES256": "ES256 (P-256, customJwt)",
}
SECRET = "auth-bench-secret-of-at-least-32-bytes!"
ORG = "org_bench"
CAPS = ("events:manage", "tickets:checkin")
TOKEN_TTL = 3600


@attrs.frozen(kw_only=True)
class Sizes:
    tokens: int = 20_000
    distinct: int = 64
    ws_rounds: int = 500


FULL = Sizes()
QUICK = Sizes(tokens=2_000, distinct=16, ws_rounds=50)


def _issuer(algorithm: str) -> str:
    return f"https://bench-{algorithm.lower()}.turnstile.invalid"


class Tokens:
    """An authenticator with an RS256 and an ES256 provider and the HS256 secret, and a
    source of fresh tokens of each algorithm."""

    def __init__(self) -> None:
        self._keys = {algorithm: new_private_key(algorithm) for algorithm in ALGORITHMS[1:]}
        providers: list[Provider] = []
        for algorithm, key in self._keys.items():
            providers += parse_auth_config(dev_auth_config(key, issuer=_issuer(algorithm)))
        self.authenticator = Authenticator("auth-bench-admin", SECRET, providers)
        self._count = 0

    def mint(self, algorithm: str) -> str:
        self._count += 1
        user = f"u{self._count}"
        if algorithm == "HS256":
            return mint_token(SECRET, user, ORG, CAPS, TOKEN_TTL)
        return mint_dev_token(
            self._keys[algorithm],
            user,
            org=ORG,
            caps=CAPS,
            ttl_seconds=TOKEN_TTL,
            issuer=_issuer(algorithm),
        )

    def decode_alone(self, algorithm: str, token: str) -> dict[str, Any]:
        """PyJWT's own check of `token` with its key, nothing of Turnstile's around it."""
        if algorithm == "HS256":
            return jwt.decode(token, SECRET, algorithms=["HS256"])
        return jwt.decode(
            token,
            self._keys[algorithm].public_key(),
            algorithms=[algorithm],
            audience=DEFAULT_AUDIENCE,
            issuer=_issuer(algorithm),
        )


#: The timed loops run in this many slices, the algorithms taking turns, so that a drift of
#: the machine during the run (frequency, other load) falls on all of them alike.
SLICES = 5


async def _verify(tokens: Tokens, sizes: Sizes) -> dict[str, dict[str, float]]:
    """Seconds per token of `authenticate`, of `user` and of PyJWT's decode alone, by
    algorithm."""
    auth = tokens.authenticator
    batches = {a: [tokens.mint(a) for _ in range(sizes.distinct)] for a in ALGORITHMS}
    for algorithm, batch in batches.items():  # every token verifies; these calls are not timed
        for token in batch:
            signed = await auth.authenticate(token)
            assert signed.identity.org_id == ORG, signed
            assert auth.user(token) == signed.identity
            tokens.decode_alone(algorithm, token)
    spent = {a: {"authenticate": 0.0, "user": 0.0, "decode": 0.0} for a in ALGORITHMS}
    per_slice = max(1, sizes.tokens // SLICES)
    for _ in range(SLICES):
        for algorithm, batch in batches.items():
            distinct = len(batch)
            t0 = time.perf_counter()
            for i in range(per_slice):
                await auth.authenticate(batch[i % distinct])
            t1 = time.perf_counter()
            for i in range(per_slice):
                auth.user(batch[i % distinct])
            t2 = time.perf_counter()
            for i in range(per_slice):
                tokens.decode_alone(algorithm, batch[i % distinct])
            t3 = time.perf_counter()
            figures = spent[algorithm]
            figures["authenticate"] += t1 - t0
            figures["user"] += t2 - t1
            figures["decode"] += t3 - t2
    n = per_slice * SLICES
    return {a: {kind: total / n for kind, total in f.items()} for a, f in spent.items()}


async def _websocket(tokens: Tokens, sizes: Sizes) -> dict[str, list[float]]:
    """Seconds per Authenticate round trip (to the Transition of the new identity), by
    algorithm, over one live connection; the algorithms take turns, round by round."""
    rounds: dict[str, list[float]] = {algorithm: [] for algorithm in ALGORITHMS}
    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        async with (
            open_engine(Path(tmp) / "data") as engine,
            open_server(engine, authenticator=tokens.authenticator) as server,
            trio_websocket.open_websocket_url(f"ws://127.0.0.1:{server.port}/api/1.0/sync") as ws,
        ):
            await ws.send_message(orjson.dumps(connect_message(os.urandom(8).hex())).decode())
            await ws.send_message(orjson.dumps(subscribe_message(0, "events:list", {})).decode())
            await _transition(ws, identity=0)
            version = 0
            for i in range(sizes.ws_rounds + 1):  # the first round is not timed
                for algorithm in ALGORITHMS:
                    token = tokens.mint(algorithm)
                    message = {
                        "type": "Authenticate",
                        "tokenType": "User",
                        "value": token,
                        "baseVersion": version,
                    }
                    t0 = time.perf_counter()
                    await ws.send_message(orjson.dumps(message).decode())
                    await _transition(ws, identity=version + 1)
                    if i:
                        rounds[algorithm].append(time.perf_counter() - t0)
                    version += 1
    return rounds


async def _transition(ws: trio_websocket.WebSocketConnection, *, identity: int) -> None:
    """Read until the Transition that ends at identity version `identity`."""
    with trio.fail_after(30):
        while True:
            message = orjson.loads(await ws.get_message())
            kind = message.get("type")
            if kind in ("AuthError", "FatalError"):
                raise RuntimeError(f"the server answered {message}")
            if kind == "Transition" and message["endVersion"]["identity"] == identity:
                return


async def _run(sizes: Sizes, websocket: bool) -> dict[str, Any]:
    tune_gc()
    tokens = Tokens()
    result: dict[str, Any] = {"sizes": attrs.asdict(sizes)}
    result["verify"] = await _verify(tokens, sizes)
    if websocket:
        result["websocket"] = await _websocket(tokens, sizes)
    return result


def measure(sizes: Sizes = FULL, *, websocket: bool = True) -> dict[str, Any]:
    """Both parts' figures (part 2 only with `websocket`), from one run."""
    return trio.run(_run, sizes, websocket)


def report(result: dict[str, Any]) -> str:
    sizes, verify = result["sizes"], result["verify"]
    base = verify["HS256"]["authenticate"]
    lines = [
        f"In-process, one core, warm key cache: {sizes['tokens']:,} verifications per algorithm,"
        f" round-robin over {sizes['distinct']} tokens",
        "",
        "| token | authenticate /s | us per token | user /s | time per token vs HS256 |"
        " PyJWT's decode alone, us |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for algorithm in ALGORITHMS:
        figures = verify[algorithm]
        lines.append(
            f"| {DESCRIBED[algorithm]} | {1 / figures['authenticate']:,.0f} |"
            f" {figures['authenticate'] * 1e6:,.1f} | {1 / figures['user']:,.0f} |"
            f" {figures['authenticate'] / base:.2f}x | {figures['decode'] * 1e6:,.1f} |"
        )
    if "websocket" in result:
        ws = result["websocket"]
        base_p50 = percentile(ws["HS256"], 50)
        lines += [
            "",
            f"Over a live WebSocket (127.0.0.1): Authenticate, then the Transition of the new"
            f" identity (one public query re-evaluated), {sizes['ws_rounds']:,} rounds per"
            " algorithm",
            "",
            "| token | p50 ms | p99 ms | p50 vs HS256 |",
            "| --- | --- | --- | --- |",
        ]
        for algorithm in ALGORITHMS:
            p50, p99 = percentile(ws[algorithm], 50), percentile(ws[algorithm], 99)
            lines.append(
                f"| {DESCRIBED[algorithm]} | {p50 * 1000:.3f} | {p99 * 1000:.3f} |"
                f" {p50 / base_p50:.2f}x |"
            )
    return "\n".join(lines)


#: What the section says it measures, above the figures.
ABOUT = (
    "What a user token costs to check (`lab/auth_bench.py`): `Authenticator.authenticate`"
    " and `Authenticator.user` in-process, and one Authenticate over a live WebSocket."
    " RS256 and ES256 are custom JWT providers' tokens with their keys known (the"
    " verification a provider's token costs once its keys are cached; a key fetch is"
    " not measured); HS256, the development secret, is the baseline of the same run."
    " PyJWT's decode alone is one `jwt.decode` with the key: the rest of `authenticate`'s"
    " time is what Turnstile does around it (reading the unverified header and claims"
    " to pick the provider and its key, then the claims' checks)."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=FULL.tokens, help="per algorithm")
    parser.add_argument("--distinct", type=int, default=FULL.distinct)
    parser.add_argument("--ws-rounds", type=int, default=FULL.ws_rounds, help="0: no WebSocket")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument("--write-doc", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if min(args.tokens, args.distinct) < 1 or args.ws_rounds < 0:
        parser.error("--tokens and --distinct must be at least 1, --ws-rounds at least 0")
    sizes = (
        QUICK if args.quick else Sizes(tokens=args.tokens, distinct=args.distinct,
                                       ws_rounds=args.ws_rounds)
    )  # fmt: skip
    return run_and_report(
        SECTION,
        command=COMMAND,
        about=ABOUT,
        quick=args.quick,
        write_doc=args.write_doc,
        run=lambda: report(measure(sizes, websocket=sizes.ws_rounds > 0)),
    )


if __name__ == "__main__":
    sys.exit(main())
