"""`POST /stripe/webhook`: Stripe's events, verified, as notifications
(domain.notifications.stripe says what each becomes).

Plan:
- Served when the server has a secret (`--stripe-webhook-secret whsec_...`); without one the
  path is 404, as any path nothing serves.
- `Stripe-Signature` is `t=TIMESTAMP,v1=HEX[,v1=HEX...]` (further schemes, such as `v0`, are
  ignored, as Stripe's libraries do). The request is Stripe's when one `v1` equals
  HMAC-SHA256(secret, "TIMESTAMP." + the raw body), compared in constant time, and TIMESTAMP is
  within `TOLERANCE_SECONDS` of the server's wall clock either way, so an old request replayed
  is refused. Otherwise: 400, nothing written. This is Stripe's documented scheme, the one
  `stripe.WebhookSignature.verify_header` checks (tests/server/test_stripe_webhook.py holds the
  two to the same answers).
- A verified body must be one event object (`id`, `type`, `data.object`): else 400.
- `record_stripe_event` then runs as the system caller on the event's own aggregate, durable
  before the answer: 200 `{"received": true, "notificationId"}` (null when it notifies nobody).
  A re-sent event (Stripe retries until it gets a 2xx, also after this server was killed) is
  recognised and notifies nobody again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any

import orjson

from domain.errors import TurnstileError
from domain.notifications.stripe import (
    STRIPE_EVENT,
    StripeDelivery,
    record_stripe_event,
    stripe_event_id,
)
from engine.server.api import HttpRequest, HttpResponse, json_response, method_not_allowed
from engine.server.context import ServerContext

log = logging.getLogger("turnstile.stripe")

PATH = "/stripe/webhook"
#: How far the signature's timestamp may be from the server's clock, seconds (Stripe's default).
TOLERANCE_SECONDS = 300
SCHEME = "v1"


class SignatureRefused(Exception):
    """Why a request is not Stripe's (the 400's message)."""


def _signature(payload: bytes, secret: str, timestamp: int) -> str:
    """HMAC-SHA256(secret, "TIMESTAMP." + payload), hex: what a `v1` signature must be."""
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A `Stripe-Signature` header for `payload` at `timestamp`, as Stripe makes it (for tests
    and benchmarks that stand in for Stripe)."""
    return f"t={timestamp},{SCHEME}={_signature(payload, secret, timestamp)}"


def verify(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> int:
    """The signature's timestamp if `header` signs `payload` with `secret` within `tolerance`
    of `now`; else `SignatureRefused` saying why."""
    if not header:
        raise SignatureRefused("The request has no Stripe-Signature header.")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureRefused("The signature's timestamp is not a number.") from None
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureRefused("The Stripe-Signature header has no timestamp.")
    if not signatures:
        raise SignatureRefused(f"The Stripe-Signature header has no {SCHEME} signature.")
    wanted = _signature(payload, secret, timestamp)
    if not any(hmac.compare_digest(wanted, given) for given in signatures):
        raise SignatureRefused("No signature matches the payload.")
    if abs(now - timestamp) > tolerance:
        raise SignatureRefused("The signature's timestamp is outside the tolerance.")
    return timestamp


def _delivery(payload: bytes) -> StripeDelivery:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise SignatureRefused("The body is not JSON.") from None
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"]
        and isinstance(event.get("type"), str)
        and isinstance(obj, dict)
    ):
        raise SignatureRefused("The body is not a Stripe event (id, type, data.object).")
    return StripeDelivery(event_id=event["id"], type=event["type"], object=obj)


def _refusal(message: str) -> HttpResponse:
    return json_response(400, {"status": "error", "errorMessage": message})


async def handle(ctx: ServerContext, request: HttpRequest) -> HttpResponse:
    secret = ctx.stripe_webhook_secret
    if secret is None:
        return json_response(404, {"status": "error", "errorMessage": "Not found."})
    if request.method != b"POST":
        return method_not_allowed(b"POST, OPTIONS")
    header = request.headers.get(b"stripe-signature", b"").decode("latin-1")
    try:
        verify(request.body, header, secret, now=time.time())
        delivery = _delivery(request.body)
    except SignatureRefused as refused:
        ctx.metrics.webhooks.labels("stripe", "refused").inc()
        return _refusal(str(refused))
    try:
        outcome = await ctx.engine.run_internal(
            STRIPE_EVENT, stripe_event_id(delivery.event_id), record_stripe_event, delivery
        )
    except TurnstileError as error:
        log.warning("Stripe event %s not recorded: %s", delivery.event_id, error.message)
        ctx.metrics.webhooks.labels("stripe", "failed").inc()
        status = 503 if error.code == "Overloaded" else 500
        return json_response(status, {"status": "error", "errorMessage": error.message})
    ctx.metrics.webhooks.labels("stripe", "recorded").inc()
    body: dict[str, Any] = {"received": True, "notificationId": outcome.value}
    return json_response(200, body)


__all__ = ["PATH", "TOLERANCE_SECONDS", "SignatureRefused", "handle", "sign", "verify"]
