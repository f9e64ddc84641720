"""The customer module's declarations: each client-callable function under its Convex name."""

from __future__ import annotations

from typing import Any

from domain.customers import commands, queries
from domain.customers.aggregate import CUSTOMER
from domain.customers.args import (
    ActivityArgs,
    AddPointsArgs,
    CreateCustomerArgs,
    CustomerIdArgs,
    EnrollArgs,
    ListCustomersArgs,
    MembershipListArgs,
    OrgArgs,
    SoftStateArgs,
    UpdateCustomerArgs,
    UploadPhotoArgs,
)
from domain.customers.claims import CLAIM
from domain.customers.jobs import CLV_RECALCULATION
from domain.customers.projections import CUSTOMER_DIRECTORY
from domain.model import Module, MutationSpec, QuerySpec

_route = commands.route_customer


def _on_customer(name: str, args_type: type[Any], handle: Any) -> MutationSpec[Any, Any]:
    return MutationSpec(
        name=name, args_type=args_type, aggregate=CUSTOMER, route=_route, handle=handle
    )


MUTATIONS: tuple[MutationSpec[Any, Any], ...] = (
    MutationSpec(
        name="customers:create",
        args_type=CreateCustomerArgs,
        aggregate=CUSTOMER,
        route=None,
        handle=commands.create_customer,
    ),
    _on_customer("customers:update", UpdateCustomerArgs, commands.update_customer),
    _on_customer("customers:delete", SoftStateArgs, commands.delete_customer),
    _on_customer("customers:restore", SoftStateArgs, commands.restore_customer),
    _on_customer("customers:suspend", SoftStateArgs, commands.suspend_customer),
    _on_customer("customers:archive", SoftStateArgs, commands.archive_customer),
    _on_customer("customers:erase", CustomerIdArgs, commands.erase_customer),
    _on_customer("customers:uploadPhoto", UploadPhotoArgs, commands.upload_photo),
    _on_customer("customers:calculateCLV", CustomerIdArgs, commands.calculate_clv),
    _on_customer("memberships:enroll", EnrollArgs, commands.enroll),
    MutationSpec(
        name="memberships:addPoints",
        args_type=AddPointsArgs,
        aggregate=CUSTOMER,
        route=commands.route_membership,
        handle=commands.add_points,
    ),
)

QUERIES: tuple[QuerySpec[Any], ...] = (
    QuerySpec(name="customers:get", args_type=CustomerIdArgs, evaluate=queries.get_customer),
    QuerySpec(name="customers:list", args_type=ListCustomersArgs, evaluate=queries.list_customers),
    QuerySpec(name="customers:typeStatistics", args_type=OrgArgs, evaluate=queries.type_statistics),
    QuerySpec(name="customers:exportData", args_type=CustomerIdArgs, evaluate=queries.export_data),
    QuerySpec(
        name="memberships:list", args_type=MembershipListArgs, evaluate=queries.list_memberships
    ),
    QuerySpec(name="activity:list", args_type=ActivityArgs, evaluate=queries.list_activity),
)

CUSTOMERS = Module(
    aggregates=(CUSTOMER, CLAIM),
    projections=(CUSTOMER_DIRECTORY,),
    mutations=MUTATIONS,
    queries=QUERIES,
    jobs=(CLV_RECALCULATION,),
)
