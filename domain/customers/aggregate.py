"""The customer aggregate: one actor per customer, stream `customer/cu_...`."""

from __future__ import annotations

from domain.customers.invariants import check_invariants
from domain.customers.state import INITIAL, CustomerState, evolve
from domain.model import Aggregate

CUSTOMER: Aggregate[CustomerState] = Aggregate(
    kind="customer",
    id_prefix="cu",
    state_type=CustomerState,
    initial=INITIAL,
    evolve=evolve,
    check_invariants=check_invariants,
)
