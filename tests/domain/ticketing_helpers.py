"""Callers and shortcuts shared by the ticketing tests (plain functions, no fixtures)."""

from __future__ import annotations

from typing import Any

from domain.identity import Identity
from domain.ticketing import TICKETING, EventQueueState
from tests.domain.harness import MINUTE, T0, World

ORG = "org_a"
OTHER_ORG = "org_b"
ORGANIZER = Identity(
    subject="u_organizer",
    org_id=ORG,
    caps=frozenset({"events:manage", "queue:manage", "tickets:checkin"}),
)
DOOR = Identity(subject="u_door", org_id=ORG, caps=frozenset({"tickets:checkin"}))
QUEUE_STAFF = Identity(subject="u_staff", org_id=ORG, caps=frozenset({"queue:manage"}))
RIVAL = Identity(subject="u_rival", org_id=OTHER_ORG, caps=frozenset({"*"}))
STAFF_NO_CAPS = Identity(subject="u_clerk", org_id=ORG)
ANON = Identity()


def user(name: str) -> Identity:
    """A ticket buyer: signed in, no organization, no capabilities."""
    return Identity(subject=name)


def new_world() -> World:
    return World(TICKETING)


def create_event(
    world: World, *, total: int = 2, date: int = T0 + 7 * 24 * 60 * MINUTE, **extra: Any
) -> str:
    args = {
        "name": "Concert",
        "description": "An evening of music",
        "location": "Main hall",
        "eventDate": date,
        "price": 2500,
        "totalTickets": total,
        **extra,
    }
    event_id = world.mutate("events:create", args, ORGANIZER)
    assert isinstance(event_id, str)
    return event_id


def join(world: World, event_id: str, who: str) -> dict[str, Any]:
    reply = world.mutate("events:joinWaitingList", {"eventId": event_id, "userId": who}, user(who))
    assert isinstance(reply, dict)
    return reply


def purchase(
    world: World, event_id: str, who: str, waiting_list_id: str, intent: str | None = None
) -> str:
    args = {
        "eventId": event_id,
        "userId": who,
        "waitingListId": waiting_list_id,
        "paymentInfo": {"paymentIntentId": intent or f"pi_{who}", "amount": 2500},
    }
    ticket_id = world.mutate("events:purchaseTicket", args, user(who))
    assert isinstance(ticket_id, str)
    return ticket_id


def join_and_buy(world: World, event_id: str, who: str) -> str:
    """Join while a seat is free and buy it with a fresh payment intent."""
    reply = join(world, event_id, who)
    assert reply["status"] == "offered"
    intent = f"pi_{who}_{len(world.journal)}"
    return purchase(world, event_id, who, reply["waitingListId"], intent)


def state_of(world: World, event_id: str) -> EventQueueState:
    state = world.states[f"event/{event_id}"]
    assert isinstance(state, EventQueueState)
    return state


def availability(world: World, event_id: str) -> dict[str, Any]:
    result = world.query("events:getEventAvailability", {"eventId": event_id})
    assert isinstance(result, dict)
    return result


def position(world: World, event_id: str, who: str) -> dict[str, Any] | None:
    result = world.query(
        "waitingList:getQueuePosition", {"eventId": event_id, "userId": who}, user(who)
    )
    assert result is None or isinstance(result, dict)
    return result
