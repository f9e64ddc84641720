"""Read models for the ticketing queries that span events, folded from committed events.

- `EVENT_CATALOG` (one key, "all"): every event not cancelled, by id, for `events:list`.
- `USER_TICKETS` (key: user id): the events where a user bought a ticket, in order of their
  first purchase there; `events:getUserTickets` then reads each event through the View, so a
  refund or check-in re-evaluates it through the aggregate dependency.
- `USER_QUEUE` (key: user id): the events where a user is in the live queue (waiting or
  called), in join order; `queue:getUserQueue` reads each event's state for position and time.

Every `apply` is O(log n) (the catalog's cancellation included); `keys` names exactly the users
or the catalog key an event may change.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import immutables

from domain.model import Event, Projection
from domain.ticketing.events import (
    EventCancelled,
    EventCreated,
    EventUpdated,
    QueueEntryCompleted,
    QueueJoined,
    QueueLeft,
    TicketPurchased,
)
from domain.ticketing.state import EventInfo, apply_update, event_info_of

CATALOG_KEY = "all"


def _event_id(event: Event) -> str:
    return event.stream.partition("/")[2]


@attrs.frozen(kw_only=True)
class EventCatalog:
    """Events not cancelled, by event id."""

    events: immutables.Map[str, EventInfo] = attrs.field(factory=immutables.Map)


@attrs.frozen(kw_only=True)
class UserEventIndex:
    """user id -> event ids (no duplicates, in the order they were added)."""

    events_by_user: immutables.Map[str, tuple[str, ...]] = attrs.field(factory=immutables.Map)

    def of(self, user_id: str) -> tuple[str, ...]:
        return self.events_by_user.get(user_id, ())

    def adding(self, user_id: str, event_id: str) -> UserEventIndex:
        mine = self.of(user_id)
        if event_id in mine:
            return self
        return UserEventIndex(events_by_user=self.events_by_user.set(user_id, (*mine, event_id)))

    def removing(self, user_id: str, event_id: str) -> UserEventIndex:
        mine = self.of(user_id)
        if event_id not in mine:
            return self
        rest = tuple(e for e in mine if e != event_id)
        by_user = (
            self.events_by_user.set(user_id, rest) if rest else self.events_by_user.delete(user_id)
        )
        return UserEventIndex(events_by_user=by_user)


def _apply_catalog(catalog: EventCatalog, event: Event) -> EventCatalog:
    event_id = _event_id(event)
    if isinstance(event, EventCreated):
        return EventCatalog(events=catalog.events.set(event_id, event_info_of(event)))
    info = catalog.events.get(event_id)
    if info is None:
        return catalog
    if isinstance(event, EventUpdated):
        return EventCatalog(events=catalog.events.set(event_id, apply_update(info, event)))
    if isinstance(event, EventCancelled):
        return EventCatalog(events=catalog.events.delete(event_id))
    return catalog


def _catalog_keys(event: Event) -> Iterable[str]:
    return (CATALOG_KEY,)


EVENT_CATALOG: Projection[EventCatalog] = Projection(
    name="ticketing.eventCatalog",
    state_type=EventCatalog,
    initial=EventCatalog(),
    apply=_apply_catalog,
    keys=_catalog_keys,
    event_types=(EventCreated, EventUpdated, EventCancelled),
)


def _apply_user_tickets(index: UserEventIndex, event: Event) -> UserEventIndex:
    if isinstance(event, TicketPurchased):
        return index.adding(event.user_id, _event_id(event))
    return index


def _user_tickets_keys(event: Event) -> Iterable[str]:
    return (event.user_id,) if isinstance(event, TicketPurchased) else ()


USER_TICKETS: Projection[UserEventIndex] = Projection(
    name="ticketing.userTickets",
    state_type=UserEventIndex,
    initial=UserEventIndex(),
    apply=_apply_user_tickets,
    keys=_user_tickets_keys,
    event_types=(TicketPurchased,),
)


def _apply_user_queue(index: UserEventIndex, event: Event) -> UserEventIndex:
    event_id = _event_id(event)
    if isinstance(event, QueueJoined):
        return index.adding(event.user_id, event_id)
    if isinstance(event, QueueLeft | QueueEntryCompleted):
        return index.removing(event.user_id, event_id)
    if isinstance(event, EventCancelled):
        for user_id in event.cancelled_queue_user_ids:
            index = index.removing(user_id, event_id)
    return index


def _user_queue_keys(event: Event) -> Iterable[str]:
    if isinstance(event, QueueJoined | QueueLeft | QueueEntryCompleted):
        return (event.user_id,)
    if isinstance(event, EventCancelled):
        return event.cancelled_queue_user_ids
    return ()


USER_QUEUE: Projection[UserEventIndex] = Projection(
    name="ticketing.userQueue",
    state_type=UserEventIndex,
    initial=UserEventIndex(),
    apply=_apply_user_queue,
    keys=_user_queue_keys,
    event_types=(QueueJoined, QueueLeft, QueueEntryCompleted, EventCancelled),
)
