"""The location aggregate: one actor per location, stream `location/lo_...`, owning the
location's services (`sv_<core>_<n>`) and orders (`or_<core>_<n>`)."""

from __future__ import annotations

from domain.model import Aggregate
from domain.venue.invariants import check_invariants
from domain.venue.state import INITIAL, LocationState, evolve

LOCATION: Aggregate[LocationState] = Aggregate(
    kind="location",
    id_prefix="lo",
    state_type=LocationState,
    initial=INITIAL,
    evolve=evolve,
    check_invariants=check_invariants,
)
