"""The venue module's declarations: each client-callable function under its Convex name, the
read models, and the booking-reminders job."""

from __future__ import annotations

from typing import Any

from domain.model import Module, MutationSpec, QuerySpec
from domain.venue import analytics, locations, orders, queries, reminders
from domain.venue.aggregate import LOCATION
from domain.venue.analytics import DAILY_ANALYTICS
from domain.venue.args import (
    CreateLocationArgs,
    CreateOrderArgs,
    CreateServiceArgs,
    CustomerIdArgs,
    DailyAnalyticsArgs,
    ListLocationsArgs,
    ListOrdersByLocationArgs,
    ListServicesArgs,
    LocationIdArgs,
    OrderIdArgs,
    RecordPaymentArgs,
    UpdateLocationArgs,
    UpdateOrderStatusArgs,
    UpdateServiceArgs,
)
from domain.venue.location_claims import LOCATION_CLAIMS, UNCLAIMED_LOCATIONS
from domain.venue.projections import CUSTOMER_ORDERS, LOCATION_DIRECTORY
from domain.venue.reminders import BOOKING_REMINDERS, UPCOMING_BOOKINGS

MUTATIONS: tuple[MutationSpec[Any, Any], ...] = (
    MutationSpec(
        name="locations:create",
        args_type=CreateLocationArgs,
        aggregate=LOCATION,
        route=None,
        handle=locations.create_location,
    ),
    MutationSpec(
        name="locations:update",
        args_type=UpdateLocationArgs,
        aggregate=LOCATION,
        route=locations.route_location,
        handle=locations.update_location,
    ),
    MutationSpec(
        name="services:create",
        args_type=CreateServiceArgs,
        aggregate=LOCATION,
        route=locations.route_location,
        handle=locations.create_service,
    ),
    MutationSpec(
        name="services:update",
        args_type=UpdateServiceArgs,
        aggregate=LOCATION,
        route=locations.route_service,
        handle=locations.update_service,
    ),
    MutationSpec(
        name="orders:create",
        args_type=CreateOrderArgs,
        aggregate=LOCATION,
        route=locations.route_location,
        handle=orders.create_order,
    ),
    MutationSpec(
        name="orders:updateStatus",
        args_type=UpdateOrderStatusArgs,
        aggregate=LOCATION,
        route=locations.route_order,
        handle=orders.update_status,
    ),
    MutationSpec(
        name="orders:recordPayment",
        args_type=RecordPaymentArgs,
        aggregate=LOCATION,
        route=locations.route_order,
        handle=orders.record_payment,
    ),
    MutationSpec(
        name=reminders.SEND_REMINDER,
        args_type=OrderIdArgs,
        aggregate=LOCATION,
        route=locations.route_order,
        handle=reminders.send_reminder,
    ),
)

QUERIES: tuple[QuerySpec[Any], ...] = (
    QuerySpec(name="locations:get", args_type=LocationIdArgs, evaluate=queries.get_location),
    QuerySpec(name="locations:list", args_type=ListLocationsArgs, evaluate=queries.list_locations),
    QuerySpec(name="services:list", args_type=ListServicesArgs, evaluate=queries.list_services),
    QuerySpec(
        name="orders:listByLocation",
        args_type=ListOrdersByLocationArgs,
        evaluate=queries.list_orders_by_location,
    ),
    QuerySpec(
        name="orders:listByCustomer",
        args_type=CustomerIdArgs,
        evaluate=queries.list_orders_by_customer,
    ),
    QuerySpec(name="analytics:daily", args_type=DailyAnalyticsArgs, evaluate=analytics.daily),
)

VENUE = Module(
    aggregates=(LOCATION,),
    projections=(
        LOCATION_DIRECTORY,
        CUSTOMER_ORDERS,
        DAILY_ANALYTICS,
        UPCOMING_BOOKINGS,
        UNCLAIMED_LOCATIONS,
    ),
    mutations=MUTATIONS,
    queries=QUERIES,
    jobs=(BOOKING_REMINDERS, LOCATION_CLAIMS),
)
