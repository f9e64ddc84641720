"""`IdentityAllowance`: one signed-in user's messages per second, shared by all of that user's
connections. Timed on trio's MockClock (autojump), so every wait is exact and instant."""

from __future__ import annotations

import trio
import trio.testing

from domain.identity import ADMIN, ANONYMOUS, Identity
from engine.server.metrics import Metrics
from engine.sync.limits import IdentityAllowance

ANN = Identity(subject="ann")
BOB = Identity(subject="bob")


async def admitted_at(allowance: IdentityAllowance, identity: Identity, count: int) -> list[float]:
    """The clock when each of `count` messages from `identity`, sent back to back, got in."""
    times = []
    for _ in range(count):
        await allowance.admit(identity)
        times.append(trio.current_time())
    return times


async def test_the_burst_goes_at_once_then_the_rate_holds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    allowance = IdentityAllowance(10.0, 5, metrics)
    start = trio.current_time()
    times = await admitted_at(allowance, ANN, 8)
    assert [t - start for t in times[:5]] == [0.0] * 5
    # Then one every 0.1 s.
    assert [round(t - start, 6) for t in times[5:]] == [0.1, 0.2, 0.3]
    assert metrics.registry.get_sample_value("turnstile_identity_throttled_total") == 3


async def test_one_user_on_many_connections_shares_one_allowance_and_others_keep_theirs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    allowance = IdentityAllowance(10.0, 4, Metrics())
    start = trio.current_time()
    ann: list[float] = []
    bob: list[float] = []

    async def connection(identity: Identity, into: list[float]) -> None:
        into.extend(await admitted_at(allowance, identity, 4))

    async with trio.open_nursery() as nursery:
        for _ in range(3):  # three connections of Ann's, four messages each
            nursery.start_soon(connection, ANN, ann)
        nursery.start_soon(connection, BOB, bob)
    # Ann's twelve messages: four at once, then eight at her rate, whichever connection.
    assert round(max(ann) - start, 6) == 0.8
    # Bob spent none of Ann's allowance, nor she his.
    assert bob == [start] * 4


async def test_the_admin_key_and_anonymous_callers_are_not_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    allowance = IdentityAllowance(1.0, 1, Metrics())
    start = trio.current_time()
    assert await admitted_at(allowance, ADMIN, 50) == [start] * 50
    assert await admitted_at(allowance, ANONYMOUS, 50) == [start] * 50
    assert allowance.tracked == 0


async def test_users_within_their_allowance_are_forgotten_when_too_many_are_tracked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    allowance = IdentityAllowance(10.0, 2, Metrics(), max_tracked=3)
    a, b, c, d = (Identity(subject=name) for name in "abcd")
    await allowance.admit(a)
    await allowance.admit(b)
    await admitted_at(allowance, c, 3)  # c overdraws: -1 at 0 s, after a wait until 0.1 s
    await trio.sleep(0.1)  # 0.2 s: a and b are full again, c is back to 1 of 2
    await allowance.admit(d)
    assert allowance.tracked == 2  # a and b forgotten (losing nothing), c and d kept
    first, second = await admitted_at(allowance, c, 2)
    assert second > first  # c is still held to what it spent
