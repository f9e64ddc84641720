"""Webhooks end to end: `python -m lab.webhook_bench [--quick] [--write-doc]`.

Stripe's events through `POST /stripe/webhook` (the signature checked, the event recorded once
and its notification durable before the 200, and a live subscriber told), beside the bare
function API doing the same durable write, `POST /api/mutation` of `webhooks:emitWebhookEvent`
with the admin key, in the same run, taking turns on fresh data dirs.

Each round: a server on 127.0.0.1 (in this process, real clock), `clients` keep-alive HTTP
connections each sending its share of `events` requests back to back (closed loop), spread over
`users` users, each user's `webhooks:getUserWebhookEvents` subscribed in-process. A round runs
from its first request to the moment the subscribers have seen every notification; requests/s
is events over that time. The client (which also signs each event, as Stripe would) runs in the
same process as the server, for both paths alike. Nothing here asserts on time: it measures and
prints; `--write-doc` writes its section of docs/benchmarks.md (`lab.figures.write_section`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import h11
import orjson
import trio

from engine import EngineConfig, open_engine
from engine.server import Authenticator, ServerConfig, open_server
from engine.server.stripe_webhook import sign
from engine.testing import user
from lab.figures import percentile, run_and_report

SECTION = "## Webhooks (Stripe)"
COMMAND = "python -m lab.webhook_bench --write-doc"
ADMIN_KEY = "webhook-bench-admin-key"
JWT_SECRET = "webhook-bench-jwt-secret-long-enough-for-hs256"
WHSEC = "whsec_webhook_bench"
PATHS = ("webhook", "mutation")


@attrs.frozen
class Sizes:
    events: int
    clients: int
    users: int
    rounds: int


FULL = Sizes(events=3_000, clients=32, users=20, rounds=3)
QUICK = Sizes(events=200, clients=8, users=4, rounds=1)


class Connection:
    """One keep-alive HTTP/1.1 connection, a request at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def post(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> int:
        out = self.h11.send(
            h11.Request(
                method="POST",
                target=path,
                headers=[
                    ("host", "127.0.0.1"),
                    ("content-length", str(len(body))),
                    ("content-type", "application/json"),
                    *headers,
                ],
            )
        )
        out += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        await self.stream.send_all(out)
        status = 0
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                self.h11.start_next_cycle()
                return status


def _request(path: str, n: int, users: int) -> tuple[str, bytes, list[tuple[str, str]]]:
    """Request `n` of `path`'s kind: the same notification either way."""
    user_id = f"bench_user_{n % users}"
    if path == "webhook":
        obj = {
            "id": f"pi_{n}",
            "amount": 1000 + n,
            "currency": "eur",
            "metadata": {"userId": user_id},
        }
        body = orjson.dumps(
            {"id": f"evt_bench_{n}", "type": "payment_intent.succeeded", "data": {"object": obj}}
        )
        return "/stripe/webhook", body, [("stripe-signature", sign(body, WHSEC, int(time.time())))]
    call = {
        "path": "webhooks:emitWebhookEvent",
        "args": {
            "type": "stripe.payment_intent.succeeded",
            "userId": user_id,
            "data": {"message": f"Your payment of {(1000 + n) / 100:.2f} EUR succeeded."},
        },
    }
    return "/api/mutation", orjson.dumps(call), [("authorization", f"Convex {ADMIN_KEY}")]


@attrs.frozen
class Round:
    path: str
    seconds: float
    latencies_ms: list[float]


async def _round(path: str, sizes: Sizes, data_dir: Path) -> Round:
    async with (
        open_engine(data_dir, config=EngineConfig(offload_io=True, run_jobs=False)) as engine,
        open_server(
            engine,
            authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
            config=ServerConfig(max_messages_per_second=1e9, message_burst=10**9),
            stripe_webhook_secret=WHSEC,
        ) as server,
        trio.open_nursery() as nursery,
    ):
        seen = [0] * sizes.users
        all_seen = trio.Event()

        async def watch(index: int, ready: trio.Event) -> None:
            uid = f"bench_user_{index}"
            args = {"userId": uid, "since": 0}
            async with engine.subscribe(
                "webhooks:getUserWebhookEvents", args, identity=user(uid)
            ) as updates:
                ready.set()
                async for _, value in updates:
                    seen[index] = len(value)
                    if sum(seen) >= sizes.events:
                        all_seen.set()

        for index in range(sizes.users):
            ready = trio.Event()
            nursery.start_soon(watch, index, ready)
            await ready.wait()
        connections = [await Connection.open(server.port) for _ in range(sizes.clients)]
        latencies: list[float] = []
        started = time.perf_counter()

        async def client(k: int) -> None:
            connection = connections[k]
            for n in range(k, sizes.events, sizes.clients):
                target, body, headers = _request(path, n, sizes.users)
                sent = time.perf_counter()
                status = await connection.post(target, body, headers)
                latencies.append((time.perf_counter() - sent) * 1000)
                if status != 200:
                    raise RuntimeError(f"{path} request {n} answered {status}")

        async with trio.open_nursery() as clients:
            for k in range(sizes.clients):
                clients.start_soon(client, k)
        with trio.fail_after(120):
            await all_seen.wait()
        seconds = time.perf_counter() - started
        for connection in connections:
            await connection.stream.aclose()
        nursery.cancel_scope.cancel()
        server.stop()
    return Round(path, seconds, latencies)


def measure(sizes: Sizes) -> dict[str, list[Round]]:
    rounds: dict[str, list[Round]] = {path: [] for path in PATHS}
    for _ in range(sizes.rounds):
        for path in PATHS:
            with tempfile.TemporaryDirectory() as tmp:
                rounds[path].append(trio.run(_round, path, sizes, Path(tmp) / "data"))
    return rounds


def report(rounds: dict[str, list[Round]], sizes: Sizes) -> str:
    rates = {p: [sizes.events / r.seconds for r in rounds[p]] for p in PATHS}
    base = statistics.median(rates["mutation"])
    lines = [
        f"{sizes.events:,} requests per round, {sizes.clients} keep-alive clients, {sizes.users}"
        f" users each subscribed; median of {sizes.rounds} round(s), the two paths taking turns",
        "",
        "| path | requests/s (told to subscribers) | rounds | vs POST /api/mutation"
        " | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "webhook": "`POST /stripe/webhook` (signature checked, recorded once, notified)",
        "mutation": "`POST /api/mutation` `webhooks:emitWebhookEvent` (admin key)",
    }
    for path in PATHS:
        rate = statistics.median(rates[path])
        every = [lat for r in rounds[path] for lat in r.latencies_ms]
        lines.append(
            f"| {names[path]} | {rate:,.0f} | {', '.join(f'{x:,.0f}' for x in rates[path])}"
            f" | {rate / base:.2f}x | {percentile(every, 50):.1f} | {percentile(every, 99):.1f} |"
        )
    return "\n".join(lines)


#: What the section says it measures, above the figures.
ABOUT = (
    "Stripe's events through `POST /stripe/webhook` (`lab/webhook_bench.py`): each"
    " request's signature checked, the event recorded once and its notification durable"
    " before the 200, and a live subscriber of `webhooks:getUserWebhookEvents` told;"
    " beside the function API writing the same notification, `POST /api/mutation` of"
    " `webhooks:emitWebhookEvent`, in the same run. A round is timed from its first"
    " request to the moment the subscribers have seen every notification. The webhook"
    " writes two rows per event (the event's own record and the notification), the"
    " mutation one."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument("--write-doc", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    return run_and_report(
        SECTION,
        command=COMMAND,
        about=ABOUT,
        quick=args.quick,
        write_doc=args.write_doc,
        run=lambda: report(measure(sizes), sizes),
    )


if __name__ == "__main__":
    sys.exit(main())
