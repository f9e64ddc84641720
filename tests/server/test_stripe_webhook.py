"""`POST /stripe/webhook` (engine.server.stripe_webhook) and the operators' routes
(engine.server.operations) on a live server on 127.0.0.1:
- the signature check gives the answers of Stripe's own library (`stripe.WebhookSignature`)
  over random payloads, secrets and headers, and refuses what is stale, from the future,
  tampered or signed with another secret;
- a signed event becomes one notification for `metadata.userId`, seen by a subscriber of
  `webhooks:getUserWebhookEvents`; a re-sent event notifies nobody again; a bad signature
  writes nothing; other types are acknowledged and ignored; without a secret the path is 404;
- `POST /releases/ingest` and `POST /cron/JOB` need the admin key, and do what they say.
Real clock (a Stripe timestamp is wall-clock time); nothing asserts on time."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import stripe
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import EngineConfig
from engine.server import Authenticator, RunningServer, ServerConfig, mint_token, open_server
from engine.server.stripe_webhook import SignatureRefused, sign, verify
from engine.testing import user
from tests.server.client import HttpClient, Reply, call

ADMIN_KEY = "stripe-test-admin-key"
JWT_SECRET = "stripe-test-jwt-secret-long-enough-for-hs256"
WHSEC = "whsec_test_9f8e7d6c5b4a"


# -- the signature, against Stripe's library -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    payload=st.text(max_size=300),
    secret=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    other=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    age=st.integers(0, 10**6),
    tamper=st.sampled_from(["none", "payload", "secret", "signature", "scheme", "extra"]),
)
def test_the_signature_check_answers_as_stripes_library(
    payload: str, secret: str, other: str, age: int, tamper: str
) -> None:
    body = payload.encode()
    timestamp = int(time.time()) - age
    header = sign(body, secret, timestamp)
    checked_body, checked_secret = body, secret
    if tamper == "payload":
        checked_body = body + b" "
    elif tamper == "secret" and other != secret:
        checked_secret = other
    elif tamper == "signature":
        header = header[:-1] + ("0" if header[-1] != "0" else "1")
    elif tamper == "scheme":
        header = header.replace("v1=", "v0=")
    elif tamper == "extra":  # a second, wrong v1 beside the right one is still Stripe's
        header += ",v1=" + "ab" * 32
    try:
        stripe.WebhookSignature.verify_header(checked_body, header, checked_secret)
        theirs = True
    except stripe.SignatureVerificationError:
        theirs = False
    try:
        verify(checked_body, header, checked_secret, now=time.time(), tolerance=math.inf)
        ours = True
    except SignatureRefused:
        ours = False
    assert ours == theirs
    # Stripe's own header for the payload is one we accept.
    made = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
    assert verify(body, made, secret, now=time.time(), tolerance=math.inf) == timestamp


def test_stale_future_and_malformed_headers_are_refused() -> None:
    now = 1_700_000_000
    body = b'{"id":"evt_1"}'
    assert verify(body, sign(body, WHSEC, now - 299), WHSEC, now=now) == now - 299
    for header, why in (
        (sign(body, WHSEC, now - 301), "outside the tolerance"),
        (sign(body, WHSEC, now + 301), "outside the tolerance"),
        ("", "no Stripe-Signature"),
        ("v1=abc", "no timestamp"),
        (f"t={now}", "no v1 signature"),
        ("t=soon,v1=abc", "not a number"),
        (sign(body, "whsec_other", now), "No signature matches"),
    ):
        with pytest.raises(SignatureRefused, match=why):
            verify(body, header, WHSEC, now=now)


# -- the routes, on a live server -------------------------------------------------------------


async def _live(tmp_path: Path, secret: str | None) -> AsyncIterator[RunningServer]:
    async with open_server(
        tmp_path / "data",
        engine_config=EngineConfig(offload_io=True, run_jobs=True),
        authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
        config=ServerConfig(read_timeout=5.0, drain_seconds=5.0),
        stripe_webhook_secret=secret,
    ) as server:
        yield server
        server.stop()
        with trio.fail_after(30):
            await server.wait_stopped()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async for server in _live(tmp_path, WHSEC):
        yield server


def stripe_event(event_id: str, kind: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": obj}})


async def post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    client = await HttpClient.connect(port)
    try:
        return await client.request("POST", path, body, list((headers or {}).items()))
    finally:
        await client.aclose()


async def deliver(port: int, body: bytes, *, secret: str = WHSEC, at: int | None = None) -> Reply:
    header = sign(body, secret, int(time.time()) if at is None else at)
    return await post(port, "/stripe/webhook", body, {"stripe-signature": header})


async def notifications(server: RunningServer, user: str) -> list[dict[str, Any]]:
    token = f"Bearer {mint_token(JWT_SECRET, user, None, ())}"
    reply = await call(
        server.port, "query", "webhooks:getUserWebhookEvents", {"userId": user, "since": 0}, token
    )
    assert reply.status == 200, reply.body
    value: list[dict[str, Any]] = orjson.loads(reply.body)["value"]
    return value


PAID = {
    "id": "pi_1",
    "object": "payment_intent",
    "amount": 2500,
    "currency": "gbp",
    "metadata": {"userId": "user_ann"},
}


async def test_a_signed_event_notifies_its_user_once_and_a_bad_one_writes_nothing(
    live: RunningServer,
) -> None:
    engine = live.engine
    body = stripe_event("evt_paid_1", "payment_intent.succeeded", PAID)
    # Refused, each writing nothing: another secret, a stale timestamp, a tampered body.
    before = engine.committed_seq
    assert (await deliver(live.port, body, secret="whsec_wrong")).status == 400
    assert (await deliver(live.port, body, at=int(time.time()) - 3_600)).status == 400
    tampered = body.replace(b"2500", b"9900")
    header = sign(body, WHSEC, int(time.time()))
    refused = await post(live.port, "/stripe/webhook", tampered, {"stripe-signature": header})
    assert refused.status == 400
    assert (await post(live.port, "/stripe/webhook", body)).status == 400  # no header at all
    assert engine.committed_seq == before
    assert await notifications(live, "user_ann") == []
    # Delivered, then re-sent (Stripe retries): one notification, the same id answered.
    first = await deliver(live.port, body)
    again = await deliver(live.port, body)
    assert first.status == again.status == 200
    assert orjson.loads(first.body)["notificationId"] == orjson.loads(again.body)["notificationId"]
    seen = await notifications(live, "user_ann")
    assert [(n["type"], n["data"]["message"]) for n in seen] == [
        ("stripe.payment_intent.succeeded", "Your payment of 25.00 GBP succeeded.")
    ]
    # Other types are acknowledged and ignored; so is an event without a user.
    ignored = await deliver(live.port, stripe_event("evt_x", "customer.created", {"id": "cus_1"}))
    assert ignored.status == 200 and orjson.loads(ignored.body)["notificationId"] is None
    nobody = await deliver(live.port, stripe_event("evt_y", "payment_intent.succeeded", {}))
    assert orjson.loads(nobody.body)["notificationId"] is None
    # Signed, but not an event: 400.
    assert (await deliver(live.port, b'{"hello": 1}')).status == 400
    assert (await deliver(live.port, b"not json")).status == 400


async def test_accounts_and_failures_become_the_seeds_toasts(live: RunningServer) -> None:
    account = {"id": "acct_1", "charges_enabled": True, "metadata": {"userId": "user_bo"}}
    failed = {
        **PAID,
        "id": "pi_2",
        "metadata": {"userId": "user_bo"},
        "last_payment_error": {"message": "Your card was declined."},
    }
    await deliver(live.port, stripe_event("evt_acct", "account.updated", account))
    await deliver(live.port, stripe_event("evt_fail", "payment_intent.payment_failed", failed))
    seen = {n["type"]: n["data"] for n in await notifications(live, "user_bo")}
    assert seen["stripe.account.updated"]["message"] == "Your Stripe account is now active!"
    assert seen["stripe.payment_intent.payment_failed"]["message"] == (
        "Your payment of 25.00 GBP failed: Your card was declined."
    )


async def test_a_subscriber_is_told_of_the_notification(live: RunningServer) -> None:
    async with live.engine.subscribe(
        "webhooks:getUserWebhookEvents",
        {"userId": "user_cy", "since": 0},
        identity=user("user_cy"),
    ) as updates:
        _, first = await updates.__anext__()
        assert first == []
        obj = {**PAID, "metadata": {"userId": "user_cy"}}
        await deliver(live.port, stripe_event("evt_cy", "payment_intent.succeeded", obj))
        with trio.fail_after(10):
            _, value = await updates.__anext__()
        assert [n["type"] for n in value] == ["stripe.payment_intent.succeeded"]


async def test_without_a_secret_the_webhook_is_not_served(tmp_path: Path) -> None:
    async for server in _live(tmp_path, None):
        body = stripe_event("evt_1", "payment_intent.succeeded", PAID)
        assert (await deliver(server.port, body)).status == 404


async def test_releases_are_ingested_with_the_admin_key_and_listed(live: RunningServer) -> None:
    admin = {"authorization": f"Convex {ADMIN_KEY}"}
    report = {
        "deploymentId": "dep_1",
        "status": "building",
        "commit": "a1b2c3d",
        "service": "web",
        "time": "2026-12-01T10:00:00Z",
    }
    body = orjson.dumps(report)
    assert (await post(live.port, "/releases/ingest", body)).status == 403  # nobody
    user = {"authorization": f"Bearer {mint_token(JWT_SECRET, 'u', None, ())}"}
    assert (await post(live.port, "/releases/ingest", body, user)).status == 403
    forged = {"authorization": "Convex not-the-key"}
    assert (await post(live.port, "/releases/ingest", body, forged)).status == 401
    assert (await post(live.port, "/releases/ingest", b"[1]", admin)).status == 400
    made = await post(live.port, "/releases/ingest", body, admin)
    assert made.status == 200
    ready = orjson.dumps({**report, "status": "ready"})
    assert (await post(live.port, "/releases/ingest", ready, admin)).status == 200
    other = orjson.dumps({**report, "deploymentId": "dep_2", "service": "api", "time": 1})
    assert (await post(live.port, "/releases/ingest", other, admin)).status == 200
    token = f"Bearer {mint_token(JWT_SECRET, 'u', None, ())}"
    listed = orjson.loads((await call(live.port, "query", "releases:list", {}, token)).body)
    rows = [(r["deploymentId"], r["status"], r["reports"]) for r in listed["value"]]
    assert rows == [("dep_1", "ready", 2), ("dep_2", "building", 1)]
    assert listed["value"][0]["deployedAt"] == 1_796_119_200_000  # 2026-12-01T10:00Z
    one = await call(live.port, "query", "releases:list", {"service": "api"}, token)
    assert [r["deploymentId"] for r in orjson.loads(one.body)["value"]] == ["dep_2"]


async def test_a_cron_job_runs_now_with_the_admin_key(live: RunningServer) -> None:
    admin = {"authorization": f"Convex {ADMIN_KEY}"}
    job = live.engine.scheduler.jobs[0].name
    assert (await post(live.port, f"/cron/{job}", b"")).status == 403
    ran = await post(live.port, f"/cron/{job}", b"", admin)
    assert ran.status == 200 and orjson.loads(ran.body)["job"] == job
    assert (await post(live.port, "/cron/noSuchJob", b"", admin)).status == 404
