"""The HTTP front door against a live engine: Convex's function API, health, metrics, limits."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
import pytest
import trio

from domain.errors import Conflict
from tests.server.client import HttpClient, call, read_until_closed
from tests.server.conftest import JWT_SECRET, LiveServer

EVENT = {
    "name": "Gig",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 2500,
    "totalTickets": 2,
    "orgId": "org_a",
}


async def create_event(live: LiveServer) -> str:
    reply = await call(live.port, "mutation", "events:create", EVENT, live.admin)
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["value"]
    return event_id


def error_of(reply: Any) -> dict[str, Any]:
    body = reply.json()
    assert body["status"] == "error"
    assert body["logLines"] == []
    assert body["errorMessage"] == body["errorData"]["message"]
    data: dict[str, Any] = body["errorData"]
    return data


async def get(live: LiveServer, path: str) -> Any:
    client = await HttpClient.connect(live.port)
    try:
        return await client.request("GET", path)
    finally:
        await client.aclose()


async def test_health_reports_the_journal_position(live: LiveServer) -> None:
    reply = await get(live, "/health")
    start = live.engine.committed_seq  # the cron jobs' schedules, written at first start
    assert (reply.status, reply.json()) == (200, {"status": "ok", "journalSeq": start})
    await create_event(live)
    assert (await get(live, "/health")).json() == {"status": "ok", "journalSeq": start + 1}
    assert reply.headers[b"access-control-allow-origin"] == b"*"


async def test_metrics_count_calls_and_read_engine_gauges(live: LiveServer) -> None:
    await create_event(live)
    await call(live.port, "query", "events:list", {})
    await call(live.port, "query", "nope:nothing", {})
    reply = await get(live, "/metrics")
    assert reply.status == 200
    assert reply.headers[b"content-type"].startswith(b"text/plain")
    text = reply.body.decode()
    assert (
        'turnstile_function_calls_total{function="events:create",kind="mutation",'
        'outcome="success",transport="http"} 1.0'
    ) in text
    assert 'function="<unknown>",kind="query",outcome="NotFound"' in text
    assert "turnstile_function_seconds_bucket" in text
    assert f"turnstile_journal_seq {float(live.engine.committed_seq)}" in text
    assert f"turnstile_resident_actors {float(live.engine.resident_actors())}" in text
    assert f"turnstile_resident_limiters {float(len(live.engine.limiters))}" in text
    assert "turnstile_websocket_sessions 0.0" in text
    assert "turnstile_sync_sessions_due 0.0" in text
    assert 'python_gc_collections_total{generation="2"}' in text


async def test_mutation_and_query_succeed_as_convex_http_client_expects(live: LiveServer) -> None:
    event_id = await create_event(live)
    reply = await call(live.port, "query", "events:get", {"eventId": event_id})
    body = reply.json()
    assert reply.status == 200
    assert body["status"] == "success" and body["logLines"] == []
    assert body["value"]["name"] == "Gig" and body["value"]["_id"] == event_id
    joined = await call(
        live.port, "mutation", "events:joinWaitingList", {"eventId": event_id, "userId": "ann"},
        live.user("ann"),
    )
    assert joined.json()["value"]["status"] == "offered"
    availability = await call(
        live.port, "query", "events:getEventAvailability", {"eventId": event_id}
    )
    assert availability.json()["value"]["activeOffers"] == 1


async def test_convex_encoded_integer_args_are_decoded(live: LiveServer) -> None:
    price = {"$integer": base64.b64encode((2500).to_bytes(8, "little", signed=True)).decode()}
    args = {**EVENT, "price": price}
    reply = await call(live.port, "mutation", "events:create", args, live.admin)
    assert reply.status == 200, reply.body
    event = await call(live.port, "query", "events:get", {"eventId": reply.json()["value"]})
    assert event.json()["value"]["price"] == 2500


async def test_invalid_args_name_the_bad_field(live: LiveServer) -> None:
    bad = {**EVENT, "price": "free"}
    reply = await call(live.port, "mutation", "events:create", bad, live.admin)
    assert reply.status == 560
    data = error_of(reply)
    assert (data["code"], data["path"]) == ("InvalidArgs", "price")
    missing = {k: v for k, v in EVENT.items() if k != "description"}
    data = error_of(await call(live.port, "mutation", "events:create", missing, live.admin))
    assert (data["code"], data["path"]) == ("InvalidArgs", "description")


async def test_reserved_dollar_keys_in_args_are_refused(live: LiveServer) -> None:
    reply = await call(live.port, "query", "events:list", {"$where": 1})
    assert reply.status == 560
    data = error_of(reply)
    assert (data["code"], data["path"]) == ("InvalidArgs", "$where")


async def test_unknown_function_is_not_found(live: LiveServer) -> None:
    for kind in ("query", "mutation", "action"):
        reply = await call(live.port, kind, "nope:nothing", {})
        assert reply.status == 560
        data = error_of(reply)
        assert data["code"] == "NotFound" and data["function"] == "nope:nothing"


async def test_actions_do_not_exist_yet(live: LiveServer) -> None:
    reply = await call(live.port, "action", "events:create", EVENT, live.admin)
    assert reply.status == 560 and error_of(reply)["code"] == "NotFound"


async def test_conflict_carries_details(live: LiveServer) -> None:
    event_id = await create_event(live)
    args = {"eventId": event_id, "userId": "ann"}
    await call(live.port, "mutation", "events:joinWaitingList", args, live.user("ann"))
    again = await call(live.port, "mutation", "events:joinWaitingList", args, live.user("ann"))
    assert again.status == 560
    data = error_of(again)
    assert data["code"] == Conflict.code and data["waitingListId"]


async def test_anonymous_callers_are_unauthenticated_for_user_functions(live: LiveServer) -> None:
    event_id = await create_event(live)
    args = {"eventId": event_id, "userId": "ann"}
    reply = await call(live.port, "mutation", "events:joinWaitingList", args)
    assert reply.status == 560 and error_of(reply)["code"] == "Unauthenticated"
    # Anonymous callers may still read public queries.
    assert (await call(live.port, "query", "events:list", {})).status == 200


async def test_users_need_the_capability(live: LiveServer) -> None:
    bare = live.user("bob", org="org_a")
    reply = await call(live.port, "mutation", "events:create", EVENT, bare)
    assert error_of(reply)["code"] == "Forbidden"
    manager = live.user("bob", org="org_a", caps=("events:manage",))
    assert (await call(live.port, "mutation", "events:create", EVENT, manager)).status == 200


def forge(claims: dict[str, Any], alg: str = "HS256", secret: str = JWT_SECRET) -> str:
    import jwt

    if alg == "none":
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
        payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
        return f"{header.decode()}.{payload.decode()}."
    return jwt.encode(claims, secret, algorithm=alg)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {forge({'sub': 'ann', 'exp': 4_000_000_000}, secret='x' * 40)}",
        f"Bearer {forge({'sub': 'ann', 'exp': 1_000_000_000})}",
        f"Bearer {forge({'sub': 'ann', 'exp': 4_000_000_000}, alg='none')}",
        f"Bearer {forge({'sub': 'ann', 'exp': 4_000_000_000}, alg='HS512')}",
        "Bearer not.a.token",
        "Convex wrong-admin-key",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    ],
    ids=["forged", "expired", "alg-none", "other-alg", "malformed", "bad-admin-key", "basic"],
)
async def test_bad_credentials_are_401(live: LiveServer, authorization: str) -> None:
    reply = await call(live.port, "query", "events:list", {}, authorization)
    assert reply.status == 401
    assert error_of(reply)["code"] == "Unauthenticated"


async def test_unexpected_failures_are_internal_without_a_traceback(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail of the bug")

    monkeypatch.setattr(live.engine, "query", broken)
    reply = await call(live.port, "query", "events:list", {})
    assert reply.status == 560
    assert error_of(reply)["code"] == "Internal"
    assert b"secret detail" not in reply.body and b"Traceback" not in reply.body


async def test_routes_methods_and_preflight(live: LiveServer) -> None:
    client = await HttpClient.connect(live.port)
    try:
        assert (await client.request("GET", "/nope")).status == 404
        wrong = await client.request("GET", "/api/query")
        assert wrong.status == 405 and wrong.headers[b"allow"] == b"POST, OPTIONS"
        assert (await client.request("POST", "/health", b"")).status == 405
        assert (await client.request("GET", "/api/1.2.3/sync")).status == 426
        preflight = await client.request(
            "OPTIONS",
            "/api/mutation",
            headers=[
                ("origin", "http://app.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type, authorization"),
            ],
        )
        assert preflight.status == 204
        assert preflight.headers[b"access-control-allow-origin"] == b"*"
        assert b"POST" in preflight.headers[b"access-control-allow-methods"]
        assert preflight.headers[b"access-control-allow-headers"] == b"content-type, authorization"
        # All of the above on one keep-alive connection.
        assert (await client.request("GET", "/health")).status == 200
    finally:
        await client.aclose()


async def test_malformed_bodies_are_400(live: LiveServer) -> None:
    client = await HttpClient.connect(live.port)
    try:
        for body in (
            b"{not json",
            b"[1, 2]",
            b'{"args": [{}]}',
            b'{"path": "events:list", "args": [1]}',
            b'{"path": "events:list", "args": [{}, {}]}',
        ):
            reply = await client.request("POST", "/api/query", body)
            assert reply.status == 400
            assert error_of(reply)["code"] == "InvalidArgs"
    finally:
        await client.aclose()


async def test_oversized_body_is_413(live: LiveServer) -> None:
    big = orjson.dumps({"path": "events:list", "args": [{"pad": "x" * (1024 * 1024)}]})
    client = await HttpClient.connect(live.port)
    try:
        reply = await client.request("POST", "/api/query", big)
    finally:
        await client.aclose()
    assert reply.status == 413
    assert reply.headers[b"connection"] == b"close"


async def test_oversized_chunked_body_is_413(live: LiveServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    head = b"POST /api/query HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    chunk = b"x" * 65536
    await stream.send_all(head)
    async with trio.open_nursery() as nursery:

        async def flood() -> None:
            try:
                for _ in range(20):
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        nursery.start_soon(flood)
        answer = await read_until_closed(stream)
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_oversized_head_is_refused(live: LiveServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    padding = b"x-pad: " + b"a" * 40_000 + b"\r\n"
    await stream.send_all(b"GET /health HTTP/1.1\r\nhost: x\r\n" + padding + b"\r\n")
    answer = await read_until_closed(stream)
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_garbage_is_400(live: LiveServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    await stream.send_all(b"HELLO\r\n\r\n")
    answer = await read_until_closed(stream)
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_a_slow_client_is_cut_off_and_others_are_served(live: LiveServer) -> None:
    slow = await trio.open_tcp_stream("127.0.0.1", live.port)
    await slow.send_all(b"POST /api/query HTTP/1.1\r\nhost: x\r\n")  # ... and nothing more
    assert (await get(live, "/health")).status == 200
    assert await read_until_closed(slow) == b""  # closed after the read timeout
    await slow.aclose()
    half_body = await trio.open_tcp_stream("127.0.0.1", live.port)
    await half_body.send_all(b"POST /api/query HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
    assert (await read_until_closed(half_body)).startswith(b"HTTP/1.1 408 ")
    await half_body.aclose()
    assert (await get(live, "/health")).status == 200


async def test_shutdown_answers_requests_in_flight_and_stops_accepting(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrived = trio.Event()
    release = trio.Event()
    real_query = live.engine.query

    async def slow_query(*args: Any, **kwargs: Any) -> Any:
        arrived.set()
        await release.wait()
        return await real_query(*args, **kwargs)

    monkeypatch.setattr(live.engine, "query", slow_query)
    idle = await HttpClient.connect(live.port)
    assert (await idle.request("GET", "/health")).status == 200
    replies: list[Any] = []

    async def in_flight() -> None:
        replies.append(await call(live.port, "query", "events:list", {}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(in_flight)
        await arrived.wait()
        live.server.stop()
        assert await read_until_closed(idle.stream) == b""  # idle keep-alive: closed at once
        await idle.aclose()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", live.port)
        release.set()
    assert replies[0].status == 200
    assert replies[0].headers[b"connection"] == b"close"
    with trio.fail_after(10):
        await live.server.wait_stopped()


async def test_pipelined_requests_are_answered_in_order(live: LiveServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    await stream.send_all(
        b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n"
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    answer = await read_until_closed(stream)
    await stream.aclose()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200"]
