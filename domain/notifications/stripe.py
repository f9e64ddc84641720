"""Stripe's events as notifications (the seed's "Stripe webhook -> real-time notification"): each
Stripe event, by its id, is recorded once and becomes at most one notification.

The HTTP side (`POST /stripe/webhook`, the signature check) is the server's
(engine/server/stripe_webhook.py); once a request is verified it runs `record_stripe_event` as
the system caller on the event's own aggregate (`stripe_event/se_<digest of the event id>`), so
two deliveries of one event, however they race or whatever crashed between them, are serial:
the first records it and notifies, every later one finds it recorded and writes nothing.

What becomes a notification, for the user named in the event object's `metadata.userId`
(`type` is `stripe.` + Stripe's type, as the seed's client matches `stripe.account.updated`):
- `account.updated`: "Your Stripe account is now active!" once charges are enabled, else that
  it was updated (with `chargesEnabled`, `payoutsEnabled`);
- `payment_intent.succeeded` and `payment_intent.payment_failed`: the amount, the currency and,
  for a failure, Stripe's reason.
Any other type, or one without a user, is recorded (so a re-send is recognised) and notifies
nobody.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from domain.errors import InvalidArgs
from domain.model import Aggregate, Decision, Event
from domain.notifications.aggregate import INBOX
from domain.notifications.commands import notify
from domain.notifications.state import inbox_id

STRIPE_EVENT_PREFIX = "se"
#: The Stripe event types that notify their user.
NOTIFYING = frozenset(
    {"account.updated", "payment_intent.succeeded", "payment_intent.payment_failed"}
)


@attrs.frozen(kw_only=True)
class StripeEventRecorded(Event):
    """Stripe event `event_id` of `type` arrived; `notification_id` is what it became (None:
    nothing, as for a type that notifies nobody)."""

    event_id: str
    type: str
    user_id: str | None
    notification_id: str | None


@attrs.frozen(kw_only=True)
class StripeEventState:
    recorded: bool = False
    notification_id: str | None = None


def _evolve(state: StripeEventState, event: Event) -> StripeEventState:
    if isinstance(event, StripeEventRecorded):
        return StripeEventState(recorded=True, notification_id=event.notification_id)
    raise TypeError(f"{type(event).__name__} is not a Stripe event's")


STRIPE_EVENT: Aggregate[StripeEventState] = Aggregate(
    kind="stripe_event",
    id_prefix=STRIPE_EVENT_PREFIX,
    state_type=StripeEventState,
    initial=StripeEventState(),
    evolve=_evolve,
)


def stripe_event_id(event_id: str) -> str:
    """The aggregate id of Stripe event `event_id` (hashed: ids are `[a-z0-9]`)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=12).hexdigest()
    return f"{STRIPE_EVENT_PREFIX}_{digest}"


@attrs.frozen(kw_only=True)
class StripeDelivery:
    """One verified Stripe event, as its JSON has it: `id`, `type`, `data.object`."""

    event_id: str
    type: str
    object: Mapping[str, Any]


def _money(obj: Mapping[str, Any]) -> tuple[int | None, str]:
    amount = obj.get("amount")
    currency = obj.get("currency")
    return (
        amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        currency.upper() if isinstance(currency, str) else "",
    )


def notification_of(delivery: StripeDelivery) -> tuple[str, dict[str, Any]] | None:
    """The notification's (type, data) for `delivery`, or None if it notifies nobody."""
    if delivery.type not in NOTIFYING:
        return None
    obj = delivery.object
    data: dict[str, Any] = {"stripeEventId": delivery.event_id}
    if isinstance(obj.get("id"), str):
        data["objectId"] = obj["id"]
    if delivery.type == "account.updated":
        charges, payouts = obj.get("charges_enabled") is True, obj.get("payouts_enabled") is True
        data["chargesEnabled"], data["payoutsEnabled"] = charges, payouts
        data["message"] = (
            "Your Stripe account is now active!" if charges else "Your Stripe account was updated."
        )
    else:
        amount, currency = _money(obj)
        data["amount"], data["currency"] = amount, currency
        shown = f" of {amount / 100:.2f} {currency}" if amount is not None else ""
        if delivery.type == "payment_intent.succeeded":
            data["message"] = f"Your payment{shown} succeeded."
        else:
            error = obj.get("last_payment_error")
            reason = error.get("message") if isinstance(error, Mapping) else None
            data["reason"] = reason if isinstance(reason, str) else None
            data["message"] = f"Your payment{shown} failed" + (f": {reason}" if reason else ".")
    return f"stripe.{delivery.type}", data


def user_of(delivery: StripeDelivery) -> str | None:
    metadata = delivery.object.get("metadata")
    user = metadata.get("userId") if isinstance(metadata, Mapping) else None
    return user if isinstance(user, str) and user else None


def record_stripe_event(d: Decision[StripeEventState], delivery: StripeDelivery) -> str | None:
    """Record `delivery` once (see the module's docstring); the notification's id, the same
    one on every repeat (None if it notifies nobody)."""
    if d.state.recorded:
        return d.state.notification_id
    user = user_of(delivery)
    made = notification_of(delivery)
    notification = None
    if made is not None and user is not None:
        kind, data = made
        try:
            notification = notify(
                d.co_decide(INBOX, inbox_id(user)), type=kind, user_id=user, data=data
            )
        except InvalidArgs:  # a user id no inbox can have: recorded, notifying nobody
            user = None
    d.emit(
        StripeEventRecorded,
        event_id=delivery.event_id,
        type=delivery.type,
        user_id=user,
        notification_id=notification,
    )
    return notification
