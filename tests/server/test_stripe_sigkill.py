"""Stripe re-sends an event until it gets a 2xx: across a kill -9 of `turnstile serve`, each
event id still becomes exactly one notification. One event is acknowledged and then the server
is killed; another is killed with its request in flight (its answer never read). After a
restart, Stripe's re-sends are answered 200, the acknowledged one with the same notification id,
and the user has exactly one notification of each."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

from engine.server.auth import mint_token
from engine.server.stripe_webhook import sign
from tests.server.test_cli import SECRET, serving

WHSEC = "whsec_sigkill_test"


def _event(event_id: str) -> bytes:
    obj = {"id": f"pi_{event_id}", "amount": 1000, "currency": "eur", "metadata": {"userId": "u1"}}
    body = {"id": event_id, "type": "payment_intent.succeeded", "data": {"object": obj}}
    return json.dumps(body).encode()


def _deliver(port: int, body: bytes) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Stripe-Signature": sign(body, WHSEC, int(time.time()))}
        connection.request("POST", "/stripe/webhook", body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _send_without_reading(port: int, body: bytes) -> None:
    head = (
        f"POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Stripe-Signature: {sign(body, WHSEC, int(time.time()))}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)


def _notifications(port: int) -> list[dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps(
            {"path": "webhooks:getUserWebhookEvents", "args": {"userId": "u1", "since": 0}}
        )
        token = mint_token(SECRET, "u1", None, ())
        connection.request("POST", "/api/query", body, {"Authorization": f"Bearer {token}"})
        reply = json.loads(connection.getresponse().read())
        assert reply["status"] == "success", reply
        value: list[dict[str, Any]] = reply["value"]
        return value
    finally:
        connection.close()


def test_each_stripe_event_notifies_once_across_a_sigkill(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--admin-key", "k", "--jwt-secret", SECRET]
    args += ["--stripe-webhook-secret", WHSEC]
    with serving(*args) as (process, port, _):
        status, first = _deliver(port, _event("evt_acked"))
        assert status == 200 and first["notificationId"]
        _send_without_reading(port, _event("evt_in_flight"))
        process.kill()  # SIGKILL: the second one's answer is never read
        process.wait()
    with serving(*args) as (process, port, _):
        for _ in range(2):  # Stripe's retries: each event re-sent, twice
            status, again = _deliver(port, _event("evt_acked"))
            assert status == 200 and again["notificationId"] == first["notificationId"]
            status, _ = _deliver(port, _event("evt_in_flight"))
            assert status == 200
        seen = _notifications(port)
        assert sorted(n["data"]["stripeEventId"] for n in seen) == ["evt_acked", "evt_in_flight"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
