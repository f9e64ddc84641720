"""A customer's erasure across the built-in app's areas.

`customers:erase` (domain/customers/commands.py) forgets what the customer's own stream holds
and deletes the photo's file. What the customer left in other streams is the built-in app's to
reach, since the areas holding it import the customers area and not the other way round: the
notes of the customer's orders live in each location's stream (`OrderPlaced.notes`). The
erasure served as `customers:erase` decides, in the same command, an `OrderNotesErased` on each
location the customer ordered at, so that the engine rewrites those rows of that location too
(only this customer's; engine/erasure.py). All of it commits together, or none of it does.
"""

from __future__ import annotations

import attrs

from domain.customers import CUSTOMERS
from domain.customers.args import CustomerIdArgs
from domain.customers.commands import erase_customer
from domain.customers.state import CustomerState
from domain.model import Decision, Module
from domain.venue.aggregate import LOCATION
from domain.venue.events import OrderNotesErased

ERASE = "customers:erase"


def erase_everywhere(d: Decision[CustomerState], args: CustomerIdArgs) -> None:
    """`customers:erase`, and the notes of the customer's orders at every location."""
    already = d.state.soft_state == "erased"
    erase_customer(d, args)  # refuses (raising) before anything below is decided
    if already:
        return
    for location_id in sorted({order.location_id for order in d.state.orders.values()}):
        d.co_decide(LOCATION, location_id).emit(OrderNotesErased, customer_id=d.aggregate_id)


def with_erasure_everywhere(customers: Module = CUSTOMERS) -> Module:
    """The customers module with its `customers:erase` reaching the other areas."""
    mutations = tuple(
        attrs.evolve(spec, handle=erase_everywhere) if spec.name == ERASE else spec
        for spec in customers.mutations
    )
    return attrs.evolve(customers, mutations=mutations)
