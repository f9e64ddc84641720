"""The customer aggregate's invariants, checked in full (O(n)) after every command in tests and
wherever the engine chooses to (`Aggregate.check_invariants`).

`check_invariants(state)` raises AssertionError naming the first broken rule; it never changes
anything. The rules:

1. a stream without a customer holds nothing;
2. the profile passes the customer rules (profile.py) and its values are normalized; an erased
   customer's profile holds no personal field (and a profile folded from rows the engine
   blanked after an erasure is not held to the rules: its values are gone);
3. the soft state is the end of `stateHistory`, which starts at active and takes only steps the
   transition table allows;
4. the lifetime-value figures equal a recomputation over the completed orders;
5. memberships are numbered 0..n-1 with their child ids, and no balance is below 0;
6. the timeline is numbered 0..n-1 in time order, and the membership index points at entries
   about that membership.
"""

from __future__ import annotations

from domain.customers import profile as rules
from domain.customers.profile import anonymized, is_redacted
from domain.customers.state import (
    INITIAL,
    SOFT_STATE_TRANSITIONS,
    CustomerState,
    figures_of,
    membership_id,
)
from domain.errors import InvalidArgs


def check_invariants(state: CustomerState) -> None:
    """Raise AssertionError (with a precise message) if `state` breaks an invariant."""
    if state.profile is None:
        if state != INITIAL:
            raise AssertionError("a stream without a customer holds customer data")
        return
    if state.id is None or state.org_id is None:
        raise AssertionError("a customer without its id or organization")
    _check_profile(state)
    _check_soft_state(state)
    figures = figures_of(state.orders.values())
    if figures != state.figures:
        raise AssertionError(f"figures {state.figures} differ from the orders' {figures}")
    _check_memberships(state)
    _check_activity(state)


def _check_profile(state: CustomerState) -> None:
    profile = state.profile
    assert profile is not None
    if state.soft_state == "erased":
        if profile != anonymized(profile):
            raise AssertionError("an erased customer still holds personal data")
        return
    if is_redacted(profile):
        return  # folded from journal rows blanked by a later erasure: nothing left to check
    try:
        rules.check_complete(profile)
    except InvalidArgs as exc:
        raise AssertionError(f"the profile breaks a rule: {exc.message}") from None
    if profile.customer_type not in rules.CUSTOMER_TYPES:
        raise AssertionError(f"unknown customer type {profile.customer_type!r}")
    if profile.lifecycle not in rules.LIFECYCLES:
        raise AssertionError(f"unknown lifecycle {profile.lifecycle!r}")
    if profile.phone is not None and not profile.phone.isdigit():
        raise AssertionError("the phone is not stored as digits")


def _check_soft_state(state: CustomerState) -> None:
    current = "active"
    for step in state.state_history:
        if step.from_state != current:
            raise AssertionError(f"state history jumps from {current} to a {step.from_state} step")
        if step.to_state not in SOFT_STATE_TRANSITIONS[current]:
            raise AssertionError(f"illegal soft-state step {current} -> {step.to_state}")
        current = step.to_state
    if current != state.soft_state:
        raise AssertionError(f"soft state {state.soft_state} but history ends at {current}")


def _check_memberships(state: CustomerState) -> None:
    assert state.id is not None
    if len(state.memberships) != state.membership_count:
        raise AssertionError("membership count differs from the memberships held")
    for mid, membership in state.memberships.items():
        if mid != membership.id or mid != membership_id(state.id, membership.number):
            raise AssertionError(f"membership {mid} is filed under a wrong id")
        if membership.points < 0:
            raise AssertionError(f"membership {mid} has a negative balance")


def _check_activity(state: CustomerState) -> None:
    if len(state.activity) != state.activity_count:
        raise AssertionError("activity count differs from the timeline")
    previous_at = state.created_at
    for number in range(state.activity_count):
        entry = state.activity.get(str(number))
        if entry is None or entry.number != number:
            raise AssertionError(f"timeline entry {number} is missing or misnumbered")
        if entry.at < previous_at:
            raise AssertionError(f"timeline entry {number} is older than the one before")
        previous_at = entry.at
    for mid, numbers in state.membership_activity.items():
        for number in numbers:
            if state.entry(number).metadata.get("membershipId") != mid:
                raise AssertionError(f"timeline entry {number} is not about {mid}")
