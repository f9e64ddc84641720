"""The ticketing module's declarations: each client-callable function under its Convex name."""

from __future__ import annotations

from typing import Any

from domain.identity import Identity, require_user
from domain.model import Module, MutationSpec, QuerySpec
from domain.ratelimit import FixedWindow, RateLimit
from domain.ticketing import commands, live_queue, queries
from domain.ticketing.aggregate import EVENT_QUEUE
from domain.ticketing.args import (
    CreateEventArgs,
    EventIdArgs,
    EventListArgs,
    EventUserArgs,
    ListEventsArgs,
    PurchaseTicketArgs,
    ReleaseTicketArgs,
    TicketIdArgs,
    UpdateEventArgs,
    UserListArgs,
)
from domain.ticketing.projections import EVENT_CATALOG, USER_QUEUE, USER_TICKETS
from domain.ticketing.wire import AvailabilityDoc, EventDoc

_route_event = commands.route_event


def _join_limit_key(args: EventUserArgs, identity: Identity) -> str:
    # Authorize before counting: nobody may spend another user's joins.
    require_user(identity, args.user_id)
    return args.user_id


#: At most 3 waiting-list joins per user per 30 minutes (fixed window).
QUEUE_JOIN_LIMIT = RateLimit(
    name="queueJoin",
    policy=FixedWindow(rate=3, period_ms=30 * 60 * 1000),
    key=lambda args, identity: _join_limit_key(args, identity),
    message="You've joined the waiting list too many times. Please wait before trying again.",
)

MUTATIONS: tuple[MutationSpec[Any, Any], ...] = (
    MutationSpec(
        name="events:create",
        args_type=CreateEventArgs,
        aggregate=EVENT_QUEUE,
        route=None,
        handle=commands.create_event,
    ),
    MutationSpec(
        name="events:update",
        args_type=UpdateEventArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=commands.update_event,
    ),
    MutationSpec(
        name="events:cancelEvent",
        args_type=EventIdArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=commands.cancel_event,
    ),
    MutationSpec(
        name="events:joinWaitingList",
        args_type=EventUserArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=commands.join_waiting_list,
        rate_limit=QUEUE_JOIN_LIMIT,
    ),
    MutationSpec(
        name="events:purchaseTicket",
        args_type=PurchaseTicketArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=commands.purchase_ticket,
    ),
    MutationSpec(
        name="waitingList:releaseTicket",
        args_type=ReleaseTicketArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=commands.release_ticket,
    ),
    MutationSpec(
        name="tickets:checkIn",
        args_type=TicketIdArgs,
        aggregate=EVENT_QUEUE,
        route=commands.route_ticket,
        handle=commands.check_in,
    ),
    MutationSpec(
        name="tickets:refund",
        args_type=TicketIdArgs,
        aggregate=EVENT_QUEUE,
        route=commands.route_ticket,
        handle=commands.refund,
    ),
    MutationSpec(
        name="queue:joinQueue",
        args_type=EventUserArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=live_queue.join_queue,
    ),
    MutationSpec(
        name="queue:leaveQueue",
        args_type=EventUserArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=live_queue.leave_queue,
    ),
    MutationSpec(
        name="queue:callNext",
        args_type=EventIdArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=live_queue.call_next,
    ),
    MutationSpec(
        name="queue:complete",
        args_type=EventUserArgs,
        aggregate=EVENT_QUEUE,
        route=_route_event,
        handle=live_queue.complete,
    ),
)

QUERIES: tuple[QuerySpec[Any], ...] = (
    QuerySpec(
        name="events:get",
        args_type=EventIdArgs,
        evaluate=queries.get_event,
        returns=EventDoc | None,
    ),
    QuerySpec(name="events:list", args_type=ListEventsArgs, evaluate=queries.list_events),
    QuerySpec(
        name="events:getEventAvailability",
        args_type=EventIdArgs,
        evaluate=queries.get_event_availability,
        returns=AvailabilityDoc,
    ),
    QuerySpec(
        name="events:getUserTickets", args_type=UserListArgs, evaluate=queries.get_user_tickets
    ),
    QuerySpec(
        name="waitingList:getQueuePosition",
        args_type=EventUserArgs,
        evaluate=queries.get_queue_position,
    ),
    QuerySpec(
        name="tickets:getUserTicketForEvent",
        args_type=EventUserArgs,
        evaluate=queries.get_user_ticket_for_event,
    ),
    QuerySpec(
        name="tickets:listForEvent",
        args_type=EventListArgs,
        evaluate=queries.list_tickets_for_event,
    ),
    QuerySpec(
        name="queue:getEventQueue", args_type=EventListArgs, evaluate=live_queue.get_event_queue
    ),
    QuerySpec(
        name="queue:getUserQueue", args_type=UserListArgs, evaluate=live_queue.get_user_queue
    ),
)

TICKETING = Module(
    aggregates=(EVENT_QUEUE,),
    projections=(EVENT_CATALOG, USER_TICKETS, USER_QUEUE),
    mutations=MUTATIONS,
    queries=QUERIES,
)
