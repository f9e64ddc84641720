"""Actions and HTTP routes (domain.actions, domain.routes, engine.actions) on a live server on
127.0.0.1, with tests/apps/payments.py and a stand-in payment provider (tests/apps/provider.py):
an action fetches from the provider then runs a mutation as its caller; routes get the raw
request; a crashing, stalling or failing action answers an error and disturbs nobody; what
cannot be served is refused when the apps are loaded. Real clock (the provider is a real
socket); nothing here asserts on time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio

from domain import ActionSpec, App, HttpRoute, RouteResponse
from domain.app import AppError
from engine import EngineConfig, open_engine
from engine.apps import check_apps, load_apps
from engine.server import Authenticator, RunningServer, ServerConfig, mint_token, open_server
from lab.hostile.wire import SyncPeer, open_ws
from tests.apps.provider import Provider, running_provider
from tests.server.client import HttpClient, Reply, call

ADMIN_KEY = "payments-admin-key"
SECRET = "payments-jwt-secret-long-enough-for-hs256-signatures"
HOOK_SECRET = "provider-shared-secret"


@attrs.define
class Live:
    server: RunningServer
    provider: Provider

    def user(self, sub: str) -> str:
        return f"Bearer {mint_token(SECRET, sub, None, ())}"

    async def action(self, name: str, args: dict[str, Any], auth: str | None) -> Reply:
        return await call(self.server.port, "action", name, args, auth)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        client = await HttpClient.connect(self.server.port)
        try:
            return await client.request(method, target, body, list((headers or {}).items()))
        finally:
            await client.aclose()


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    async with running_provider() as provider:
        monkeypatch.setenv("PAYMENTS_PROVIDER_URL", provider.url)
        monkeypatch.setenv("PAYMENTS_HOOK_SECRET", HOOK_SECRET)
        modules = load_apps(["tests.apps.payments"])
        config = EngineConfig(offload_io=True)
        async with (
            open_engine(tmp_path / "data", modules=modules, config=config) as engine,
            open_server(
                engine,
                authenticator=Authenticator(ADMIN_KEY, SECRET),
                config=ServerConfig(read_timeout=5.0, drain_seconds=5.0),
            ) as server,
        ):
            yield Live(server, provider)
            server.stop()
            with trio.fail_after(30):
                await server.wait_stopped()


def _value(reply: Reply) -> Any:
    body = orjson.loads(reply.body)
    assert reply.status == 200, body
    return body["value"]


def _error(reply: Reply) -> dict[str, Any]:
    body = orjson.loads(reply.body)
    assert reply.status == 560, body
    data: dict[str, Any] = body["errorData"]
    return data


async def test_an_action_fetches_then_runs_a_mutation_as_its_caller(live: Live) -> None:
    ann = live.user("ann")
    reply = await live.action("payments:charge", {"amount": 1250}, ann)
    made = _value(reply)
    assert made["providerId"] == "pi_1" and made["status"] == "pending"
    assert orjson.loads(reply.body)["logLines"] == ["[LOG] provider charge pi_1 pending"]
    assert live.provider.requests == [{"target": "/charges", "body": {"amount": 1250}}]
    # The mutation ran as ann: the charge is hers, and nobody else's.
    mine = _value(await call(live.server.port, "query", "charges:mine", {}, ann))
    assert [(c["_id"], c["amount"], c["userId"]) for c in mine] == [(made["chargeId"], 1250, "ann")]
    theirs = await call(live.server.port, "query", "charges:mine", {}, live.user("bo"))
    assert _value(theirs) == []
    # Without a user, the action's own rule refuses before anything is fetched.
    assert _error(await live.action("payments:charge", {"amount": 5}, None))["code"] == (
        "Unauthenticated"
    )
    assert len(live.provider.requests) == 1


async def test_failing_crashing_and_stalling_actions_answer_errors_and_disturb_nobody(
    live: Live,
) -> None:
    ann = live.user("ann")
    results: dict[str, Any] = {}

    async def run(key: str, name: str, args: dict[str, Any]) -> None:
        results[key] = await live.action(name, args, ann)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "stall", "payments:stall", {})
        nursery.start_soon(run, "crash", "payments:crash", {})
        nursery.start_soon(run, "declined", "payments:charge", {"amount": 402})
        nursery.start_soon(run, "bystander", "payments:charge", {"amount": 700})
    stalled = _error(results["stall"])
    assert stalled["code"] == "Internal" and stalled["timeoutSeconds"] == 2
    crashed = _error(results["crash"])
    assert crashed["code"] == "Internal" and "a bug" not in crashed["message"]
    assert _error(results["declined"])["code"] == "Conflict"
    assert _value(results["bystander"])["status"] == "pending"
    # Bad calls: an unknown action, args of the wrong type, a query named as an action.
    assert _error(await live.action("payments:nothing", {}, ann))["code"] == "NotFound"
    bad = _error(await live.action("payments:charge", {"amount": "ten"}, ann))
    assert (bad["code"], bad["path"]) == ("InvalidArgs", "amount")
    assert _error(await live.action("charges:mine", {}, ann))["code"] == "NotFound"
    mine = _value(await call(live.server.port, "query", "charges:mine", {}, ann))
    assert [c["amount"] for c in mine] == [700]  # only the bystander's charge was recorded


async def test_an_action_schedules_an_action_that_runs_once(live: Live) -> None:
    ann = live.user("ann")
    made = _value(await live.action("payments:charge", {"amount": 450}, ann))
    scheduled = _value(
        await live.action("payments:pollLater", {"providerId": made["providerId"]}, ann)
    )
    admin = f"Convex {ADMIN_KEY}"
    with trio.fail_after(20):
        while True:
            listed = _value(await call(live.server.port, "query", "scheduler:list", {}, admin))
            found = {row["_id"]: row for row in listed}[scheduled]
            if found["state"] not in ("pending", "running"):
                break
            await trio.sleep(0.05)
    assert (found["name"], found["state"], found["result"]) == (
        "payments:poll",
        "done",
        "succeeded",
    )
    mine = _value(await call(live.server.port, "query", "charges:mine", {}, ann))
    assert [c["status"] for c in mine] == ["succeeded"]
    lookups = [r for r in live.provider.requests if r["target"].startswith("/charges/")]
    assert lookups == [{"target": f"/charges/{made['providerId']}", "body": {}}]
    # An unknown function is refused when scheduled, nothing written.
    bad = await live.action("payments:pollLater", {"providerId": "x", "delayMs": -1}, ann)
    assert _error(bad)["code"] == "InvalidArgs"


async def test_an_action_outlives_the_session_that_asked_for_it(live: Live) -> None:
    # As in Convex: the client going away does not cut its action short; the answer goes
    # nowhere, what the action does is done.
    async with open_ws(live.server.port) as ws:
        peer = SyncPeer(ws)
        await peer.send({"type": "Connect", "sessionId": "gone", "connectionCount": 0})
        token = mint_token(SECRET, "ann", None, ())
        await peer.send(
            {"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0}
        )
        await peer.send(
            {"type": "Action", "requestId": 1, "udfPath": "payments:charge",
             "args": [{"amount": 202}]}
        )  # fmt: skip
        with trio.fail_after(10):
            await live.provider.requested.wait()  # the action has begun: its fetch arrived
    ann = live.user("ann")
    with trio.fail_after(20):
        while True:  # polled over HTTP, as a client reads what happened
            mine = _value(await call(live.server.port, "query", "charges:mine", {}, ann))
            if mine:
                break
            await trio.sleep(0.05)
    assert [c["amount"] for c in mine] == [202]


async def test_a_fetch_past_its_timeout_fails_the_action_not_the_server(live: Live) -> None:
    reply = await live.action("payments:charge", {"amount": 504}, live.user("ann"))
    assert _error(reply)["code"] == "Internal"
    assert _value(await call(live.server.port, "query", "charges:mine", {}, live.user("ann"))) == []


async def test_routes_get_the_raw_request_and_answer_what_they_return(live: Live) -> None:
    ann = live.user("ann")
    made = _value(await live.action("payments:charge", {"amount": 300}, ann))
    hook = orjson.dumps({"id": made["providerId"], "status": "succeeded"})
    # A wrong secret writes nothing; the right one settles, a repeat changes nothing.
    refused = await live.request("POST", "/payments/hook", hook, {"x-provider-secret": "nope"})
    assert refused.status == 401
    for _ in range(2):
        settled = await live.request(
            "POST", "/payments/hook", hook, {"x-provider-secret": HOOK_SECRET}
        )
        assert settled.status == 200 and orjson.loads(settled.body) == {
            "chargeId": made["chargeId"]
        }
    # A body that is not JSON is the handler's InvalidArgs: 400.
    junk = await live.request("POST", "/payments/hook", b"{", {"x-provider-secret": HOOK_SECRET})
    assert junk.status == 400 and orjson.loads(junk.body)["code"] == "InvalidArgs"
    # A prefix route reads its path; the caller is the Authorization header's.
    target = f"/payments/charges/{made['chargeId']}?verbose=1"
    shown = await live.request("GET", target, headers={"authorization": ann})
    assert shown.status == 200 and orjson.loads(shown.body)["status"] == "succeeded"
    assert (
        await live.request("GET", target, headers={"authorization": live.user("bo")})
    ).status == (404)
    assert (await live.request("GET", target)).status == 404  # nobody
    forged = await live.request("GET", target, headers={"authorization": "Bearer x.y.z"})
    assert forged.status == 401
    # A method the path has no route for is 405 naming the ones it has; no route at all, 404.
    wrong = await live.request("PUT", "/payments/hook", b"{}")
    assert wrong.status == 405 and wrong.headers[b"allow"] == b"POST, OPTIONS"
    assert (await live.request("GET", "/payments/elsewhere")).status == 404
    assert (await live.request("GET", "/health")).status == 200  # the server's own, untouched


def _route(path: str, *, prefix: bool = False, method: str = "POST") -> HttpRoute:
    async def handle(ctx: Any, request: Any) -> RouteResponse:
        return RouteResponse()

    return HttpRoute(method=method, path=path, prefix=prefix, handle=handle)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ((_route("/api/hook"),), "is under '/api/', which Turnstile serves"),
        ((_route("/health"),), "is under '/health'"),
        ((_route("/metrics/x"),), "is under '/metrics'"),
        ((_route("/", prefix=True),), "which Turnstile serves"),
        ((_route("/hooks"), _route("/hooks")), "declares route POST /hooks twice"),
        ((_route("hooks"),), "is not an absolute URL path"),
        ((_route("/hooks", prefix=True),), "must end with '/'"),
        ((_route("/hooks", method="BREW"),), "method 'BREW' is not one of"),
    ],
)
def test_routes_that_cannot_be_served_are_refused_at_load(
    routes: tuple[HttpRoute, ...], message: str
) -> None:
    with pytest.raises(AppError, match=message):
        check_apps([("tests.apps.routes_app", App(name="hooks", routes=routes))])


def test_two_apps_on_one_route_or_one_action_name_are_refused() -> None:
    one = App(name="first", routes=(_route("/hooks"),))
    two = App(name="second", routes=(_route("/hooks"),))
    with pytest.raises(
        AppError, match="app 'second' declares route POST /hooks, which app 'first'"
    ):
        check_apps([("a", one), ("b", two)])

    async def run(ctx: Any, args: Any) -> None:
        return None

    @attrs.frozen
    class NoArgs:
        pass

    clash = App(name="clash", actions=(ActionSpec(name="charges:mine", args_type=NoArgs, run=run),))
    payments = load_apps(["tests.apps.payments"])[-1]
    with pytest.raises(AppError, match="declares function 'charges:mine', which app 'payments'"):
        check_apps([("tests.apps.payments", payments), ("c", clash)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="timeout_seconds"):
        ActionSpec(name="x:y", args_type=NoArgs, run=run, timeout_seconds=0)
