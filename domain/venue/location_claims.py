"""Locations created before a location took its organization's claim at creation get one.

A customer's or a ticketing event's `locationId` is checked against the organization's
location claim (`domain.customers.claims.require_location`), which `locations:create` takes in
the same commit since that check exists. A journal written before then holds locations without
claims: their organization could no longer name them. This job gives each of them its claim.

Plan:
- `UNCLAIMED_LOCATIONS`, a read model folded from every `LocationCreated` and
  `LocationClaimTaken`: per location id, its organization (once created) and whether it holds its
  claim. Order-free (a create and its claim commit together, the claim first): each event sets
  its half. Folded from the whole journal at the first start of a build that has it.
- `LOCATION_CLAIMS`, a job run once at each start (`AtStart`): for each location that is
  created and holds no claim, `locations:update` with no field (as the system caller), which
  takes the missing claim and changes nothing else. Once every location holds its claim it
  plans nothing (and writes two job rows per start).
"""

from __future__ import annotations

from collections.abc import Iterable

import immutables

from domain.customers.events import LocationClaimTaken
from domain.model import Event, Projection, View
from domain.scheduling import AtStart, CronJob, JobCommand
from domain.venue.events import LocationCreated

#: The read model's one key (no query reads it; the job does).
KEY = "all"

#: location id -> (organization, or "" until its creation is folded; holds its claim).
Unclaimed = immutables.Map[str, tuple[str, bool]]


def _apply(state: Unclaimed, event: Event) -> Unclaimed:
    if isinstance(event, LocationCreated):
        location_id = event.stream.partition("/")[2]
        _, claimed = state.get(location_id, ("", False))
        return state.set(location_id, (event.org_id, claimed))
    if isinstance(event, LocationClaimTaken):
        org_id, _ = state.get(event.location_id, ("", False))
        return state.set(event.location_id, (org_id, True))
    return state


def _keys(event: Event) -> Iterable[str]:
    return (KEY,)


UNCLAIMED_LOCATIONS: Projection[Unclaimed] = Projection(
    name="unclaimedLocations",
    state_type=Unclaimed,
    initial=immutables.Map(),
    apply=_apply,
    keys=_keys,
    event_types=(LocationCreated, LocationClaimTaken),
)


def plan_claims(view: View, now: int) -> list[JobCommand]:
    """`locations:update` (no field: it takes the missing claim) for each unclaimed location."""
    state = view.projection(UNCLAIMED_LOCATIONS, KEY)
    return [
        JobCommand(mutation="locations:update", args={"locationId": location_id}, key=location_id)
        for location_id, (org_id, claimed) in sorted(state.items())
        if org_id and not claimed
    ]


LOCATION_CLAIMS = CronJob(name="locationClaims", schedule=AtStart(), plan=plan_claims)
