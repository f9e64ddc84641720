"""Payments: an app of actions and HTTP routes (docs/apps.md, "Actions and HTTP routes").

`payments:charge` is an action: it asks a payment provider for a charge over HTTP (the
provider's base URL is the `PAYMENTS_PROVIDER_URL` environment variable; tests run a stand-in on
127.0.0.1, tests/apps/provider.py), then records the provider's answer with a mutation, as the
caller. The provider later reports the charge's outcome to `POST /payments/hook`, a route that
checks the provider's shared secret (`PAYMENTS_HOOK_SECRET`) and settles the charge as the
system caller. `GET /payments/charges/ID` shows one charge to whoever names it with the admin
key or its owner's token.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

import attrs
import trio

from domain import (
    ActionContext,
    ActionSpec,
    App,
    Conflict,
    Decision,
    HttpRoute,
    Identity,
    Index,
    InvalidArgs,
    MutationSpec,
    NotFound,
    QuerySpec,
    RouteRequest,
    RouteResponse,
    Table,
    Unauthenticated,
    View,
    db,
)


@attrs.frozen(kw_only=True)
class Charge:
    user_id: str
    amount: int
    provider_id: str
    status: str  # "pending", "succeeded", "failed"


CHARGES: Table[Charge] = Table(
    namespace="payments",
    name="charges",
    document=Charge,
    id_prefix="ch",
    indexes=(Index.of("by_user", "user_id"), Index.of("by_provider", "provider_id", unique=True)),
)


@attrs.frozen(kw_only=True)
class RecordArgs:
    amount: int
    provider_id: str
    status: str


@attrs.frozen(kw_only=True)
class SettleArgs:
    provider_id: str
    status: str


@attrs.frozen(kw_only=True)
class ChargeArgs:
    amount: int


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


@attrs.frozen(kw_only=True)
class ChargeIdArgs:
    charge_id: str


def _user(identity: Identity) -> str:
    """The signed-in user calling (an admin key is no user)."""
    if identity.subject is None:
        raise Unauthenticated("Charges are made by a signed-in user.")
    return identity.subject


def record(d: Decision[Any], args: RecordArgs) -> str:
    """charges:record: a charge the provider made for the caller."""
    user = _user(d.identity)
    charge_id: str = db(d).insert(
        CHARGES,
        Charge(user_id=user, amount=args.amount, provider_id=args.provider_id, status=args.status),
    )
    return charge_id


def settle(d: Decision[Any], args: SettleArgs) -> str:
    """charges:settle (admin): the provider's final word on a charge; a repeat is a no-op."""
    if not d.identity.is_admin:
        raise NotFound("No such charge.")
    if args.status not in ("succeeded", "failed"):
        raise InvalidArgs("status is succeeded or failed.", path="status")
    found = db(d).query(CHARGES).with_index("by_provider", provider_id=args.provider_id).first()
    if found is None:
        raise NotFound(f"No charge {args.provider_id!r}.")
    # The index is read at the committed cut; the document itself, by id, serially.
    charge_id: str = found.id
    current = db(d).get(CHARGES, charge_id)
    if current is None:
        raise NotFound(f"No charge {args.provider_id!r}.")
    if current.status == "pending":
        db(d).patch(CHARGES, charge_id, status=args.status)
    elif current.status != args.status:
        raise Conflict(f"Charge {args.provider_id} is already {current.status}.")
    return charge_id


def _doc(stored: Any) -> dict[str, Any]:
    charge = stored.document
    return {
        "_id": stored.id,
        "amount": charge.amount,
        "providerId": charge.provider_id,
        "status": charge.status,
        "userId": charge.user_id,
    }


def mine(view: View, args: NoArgs, identity: Identity) -> list[dict[str, Any]]:
    user = _user(identity)
    q = db(view, identity).query(CHARGES).with_index("by_user", user_id=user)
    return [_doc(stored) for stored in q.collect()]


def get_charge(view: View, args: ChargeIdArgs, identity: Identity) -> dict[str, Any] | None:
    stored = db(view, identity).get_stored(CHARGES, args.charge_id)
    if stored is None or not (identity.is_admin or identity.subject == stored.document.user_id):
        return None
    return _doc(stored)


def _provider() -> str:
    url = os.environ.get("PAYMENTS_PROVIDER_URL")
    if not url:
        raise Conflict("No payment provider is configured (PAYMENTS_PROVIDER_URL).")
    return url.rstrip("/")


async def charge(ctx: ActionContext, args: ChargeArgs) -> dict[str, Any]:
    """payments:charge: ask the provider for a charge, then record it; the charge's id."""
    _user(ctx.identity)
    if args.amount <= 0:
        raise InvalidArgs("amount is a positive number of minor units.", path="amount")
    answer = await ctx.fetch(
        f"{_provider()}/charges", method="POST", json={"amount": args.amount}, timeout_seconds=5
    )
    if answer.status != 200:
        raise Conflict(f"The provider refused the charge ({answer.status}).")
    made = answer.json()
    ctx.log("provider charge", made["id"], made["status"])
    charge_id = await ctx.run_mutation(
        "charges:record",
        {"amount": args.amount, "providerId": made["id"], "status": made["status"]},
    )
    return {"chargeId": charge_id, "providerId": made["id"], "status": made["status"]}


@attrs.frozen(kw_only=True)
class PollArgs:
    provider_id: str
    delay_ms: int = 0


async def poll(ctx: ActionContext, args: PollArgs) -> str:
    """payments:poll: ask the provider how a charge ended, and settle it (as the system)."""
    answer = await ctx.fetch(f"{_provider()}/charges/{args.provider_id}", timeout_seconds=5)
    status = answer.json()["status"]
    await ctx.as_system().run_mutation(
        "charges:settle", {"providerId": args.provider_id, "status": status}
    )
    return str(status)


async def poll_later(ctx: ActionContext, args: PollArgs) -> str:
    """payments:pollLater: schedule payments:poll (an action) `delayMs` from now; its id."""
    return await ctx.run_after(args.delay_ms, "payments:poll", {"providerId": args.provider_id})


async def stall(ctx: ActionContext, args: NoArgs) -> None:
    """payments:stall: never finishes (its time limit ends it)."""
    await trio.sleep_forever()


async def crash(ctx: ActionContext, args: NoArgs) -> None:
    """payments:crash: a bug in an action."""
    ctx.log("about to fail")
    raise RuntimeError("a bug in the action")


async def hook(ctx: ActionContext, request: RouteRequest) -> RouteResponse:
    """POST /payments/hook: `{"id", "status"}` from the provider, with its shared secret."""
    secret = os.environ.get("PAYMENTS_HOOK_SECRET", "")
    given = request.headers.get("x-provider-secret", "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return RouteResponse.of_json({"error": "bad secret"}, status=401)
    body = request.json()
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise InvalidArgs("The body is {id, status}.", path="body")
    charge_id: str = await ctx.as_system().run_mutation(
        "charges:settle", {"providerId": body["id"], "status": body.get("status")}
    )
    return RouteResponse.of_json({"chargeId": charge_id})


async def show(ctx: ActionContext, request: RouteRequest) -> RouteResponse:
    """GET /payments/charges/ID: the charge, to its owner or an admin; else 404."""
    charge_id = request.path.removeprefix("/payments/charges/")
    found = await ctx.run_query("charges:get", {"chargeId": charge_id})
    if found is None:
        return RouteResponse(status=404, body=b"no such charge\n")
    return RouteResponse.of_json(found, status=200)


app = App(
    name="payments",
    tables=(CHARGES,),
    mutations=(
        MutationSpec(
            name="charges:record",
            args_type=RecordArgs,
            aggregate=CHARGES.aggregate,
            route=None,
            handle=record,
        ),
        MutationSpec(
            name="charges:settle",
            args_type=SettleArgs,
            aggregate=CHARGES.aggregate,
            route=None,
            handle=settle,
        ),
    ),
    queries=(
        QuerySpec(name="charges:mine", args_type=NoArgs, evaluate=mine),
        QuerySpec(name="charges:get", args_type=ChargeIdArgs, evaluate=get_charge),
    ),
    actions=(
        ActionSpec(name="payments:charge", args_type=ChargeArgs, run=charge, timeout_seconds=20),
        ActionSpec(name="payments:poll", args_type=PollArgs, run=poll),
        ActionSpec(name="payments:pollLater", args_type=PollArgs, run=poll_later),
        ActionSpec(name="payments:stall", args_type=NoArgs, run=stall, timeout_seconds=2),
        ActionSpec(name="payments:crash", args_type=NoArgs, run=crash),
    ),
    routes=(
        HttpRoute(method="POST", path="/payments/hook", handle=hook),
        HttpRoute(method="GET", path="/payments/charges/", prefix=True, handle=show),
    ),
)
