"""Rate limits in the decide step (domain/ratelimit.py, domain/model.py): both policies take and
refuse as declared, a take's state is what folding the same take as an older journal's event
gives (so a limiter read from either form ends where the engine did), a refused command takes
nothing, and a handler cannot co-decide on a limiter."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.core import Aggregate, Decision
from domain.errors import RateLimited
from domain.identity import Identity
from domain.model import decide
from domain.ratelimit import (
    RATE_LIMITER,
    FixedWindow,
    LimiterState,
    RateLimit,
    RateLimitTaken,
    TokenBucket,
    evolve,
    limiter_id,
    take,
)

MINUTE = 60_000
STREAM = RATE_LIMITER.stream_of(limiter_id("join", "ann"))


def limit(policy: FixedWindow | TokenBucket) -> RateLimit:
    return RateLimit(name="join", policy=policy, key=lambda args, identity: str(args))


def run(policy: FixedWindow | TokenBucket, times: list[int]) -> list[int | None]:
    """Take at each of `times` (ms) in turn: None for a take, `retryAfter` for a refusal."""
    state, version, outcomes = RATE_LIMITER.initial, 0, []
    for now in times:
        try:
            after = take(limit(policy), state, now)
        except RateLimited as refused:
            outcomes.append(refused.data()["retryAfter"])
            continue
        assert (after.updated_at, after.started) == (now, True)
        # The same take as an older journal holds it folds to the same state.
        event = RateLimitTaken(
            stream=STREAM,
            version=version + 1,
            at=now,
            window_start=after.window_start,
            count=after.count,
            milli_tokens=after.milli_tokens,
        )
        assert evolve(state, event) == after
        state, version = after, version + 1
        outcomes.append(None)
    return outcomes


def test_a_fixed_window_takes_its_rate_then_refuses_until_it_ends() -> None:
    policy = FixedWindow(rate=3, period_ms=30 * MINUTE)
    start = 1_000
    times = [start, start + 1, start + 2, start + 10 * MINUTE, start + 30 * MINUTE]
    assert run(policy, times) == [None, None, None, 20 * MINUTE, None]


def test_a_fixed_windows_next_window_starts_at_its_first_take() -> None:
    policy = FixedWindow(rate=1, period_ms=MINUTE)
    assert run(policy, [0, 5 * MINUTE + 7, 6 * MINUTE]) == [None, None, 7]


def test_a_token_bucket_starts_full_and_refills_at_its_rate() -> None:
    policy = TokenBucket(rate=1, period_ms=MINUTE, capacity=2)
    # Full (two), then empty: the next token is a whole period away; half a period later,
    # half of one has come back; after two more periods the bucket is full again, not fuller.
    times = [0, 0, 0, MINUTE // 2, MINUTE, 3 * MINUTE, 3 * MINUTE, 3 * MINUTE]
    assert run(policy, times) == [None, None, MINUTE, MINUTE // 2, None, None, None, MINUTE]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1, 5),
    period=st.integers(1, 10_000),
    steps=st.lists(st.integers(0, 4_000), max_size=30),
)
def test_a_fixed_window_takes_at_most_its_rate_in_each_window(
    rate: int, period: int, steps: list[int]
) -> None:
    times, now = [], 0
    for step in steps:
        now += step
        times.append(now)
    outcomes = run(FixedWindow(rate=rate, period_ms=period), times)
    # Windows start at the first take after the last one ended: at most `rate` takes in each,
    # and a refusal only while one is full, told to wait until it ends.
    start, count = None, 0
    for at, outcome in zip(times, outcomes, strict=True):
        if start is None or at >= start + period:
            start, count = at, 0
        if outcome is None:
            count += 1
            assert count <= rate
        else:
            assert count == rate and outcome == start + period - at


def handler(d: Decision[Any], args: Any) -> str:
    return "done"


def decide_limited(state: LimiterState, handle: Any = handler, *, limited: bool = True) -> Any:
    """A limited command decided on a limiter at `state` (without `limiters` if not
    `limited`)."""
    own = Aggregate(kind="thing", id_prefix="th", state_type=int, initial=0, evolve=lambda s, e: s)
    asked = []

    def limiters(stream: str) -> LimiterState:
        asked.append(stream)
        return state

    decided = decide(
        own,
        "thing/th_1",
        0,
        0,
        handle,
        "ann",
        identity=Identity(subject="ann"),
        now=5_000,
        tokens=lambda: "t",
        reach=lambda aggregate, stream: (0, 0),
        rate_limit=limit(FixedWindow(rate=1, period_ms=MINUTE)),
        limiters=limiters if limited else None,
    )
    assert asked == [STREAM]
    return decided


def test_the_take_is_a_part_of_a_limited_command() -> None:
    decided = decide_limited(LimiterState())
    assert decided.value == "done"
    assert decided.others == ()
    assert decided.taken.stream == STREAM
    assert decided.taken.state == LimiterState(
        window_start=5_000, count=1, updated_at=5_000, started=True
    )


def test_a_limited_command_needs_its_limiters() -> None:
    with pytest.raises(ValueError, match="needs `limiters`"):
        decide_limited(LimiterState(), limited=False)


def test_a_spent_limit_refuses_before_the_handler_runs() -> None:
    ran = []

    def handle(d: Decision[Any], args: Any) -> None:
        ran.append(args)

    spent = LimiterState(window_start=4_000, count=1, updated_at=4_000, started=True)
    with pytest.raises(RateLimited):
        decide_limited(spent, handle)
    assert ran == []


def test_a_handler_cannot_co_decide_on_a_limiter() -> None:
    def handle(d: Decision[Any], args: Any) -> None:
        d.co_decide(RATE_LIMITER, limiter_id("join", "ann"))

    with pytest.raises(ValueError, match="rate limiters are the engine's"):
        decide_limited(LimiterState(), handle)
