"""Rate limits as data: a policy per limit name, one small state per (limit, key).

Two policies, as Convex's rate limiter offers them:
- `FixedWindow(rate, period_ms)`: at most `rate` takes in each window of `period_ms`, windows
  aligned to the first take after the previous window ended;
- `TokenBucket(rate, period_ms, capacity)`: `rate` tokens refill per `period_ms`, up to
  `capacity`; a take needs one whole token.

A take that fits gives the limiter's next `LimiterState`; one that does not raises `RateLimited`
with `retryAfter` in ms and changes nothing. The engine runs the take before the limited
mutation, in the same step, refuses the mutation if the take fails for any reason (fail closed),
and journals the state after the take with the mutation's batch (engine/limiters.py), so the
count survives restarts. A take's state is whole: the limiter's state is its last take, with
nothing to fold.

Journals written before takes were records of their own hold them as `RateLimitTaken` events
on the limiter's stream (`RATE_LIMITER`, kind `ratelimit`): the engine folds such a stream
(`evolve`) when that limiter is first used, and they replay as any other stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs

from domain.core import Aggregate, Event
from domain.errors import RateLimited
from domain.identity import Identity


@attrs.frozen(kw_only=True)
class FixedWindow:
    rate: int
    period_ms: int


@attrs.frozen(kw_only=True)
class TokenBucket:
    rate: int
    period_ms: int
    capacity: int


Policy = FixedWindow | TokenBucket


@attrs.frozen(kw_only=True)
class RateLimit:
    """A named limit on a mutation, keyed per caller or per argument (`key(args, identity)`)."""

    name: str
    policy: Policy
    key: Callable[[Any, Identity], str]
    message: str = "Too many attempts; please wait before trying again."


@attrs.frozen(kw_only=True)
class LimiterState:
    #: Fixed window: start of the current window and takes in it.
    window_start: int = 0
    count: int = 0
    #: Token bucket: tokens (in thousandths, to stay integral) as of `updated_at`.
    milli_tokens: int = 0
    updated_at: int = 0
    started: bool = False


@attrs.frozen(kw_only=True)
class RateLimitTaken(Event):
    """A take as journals before takes were records of their own hold it (see the module
    docstring): the limiter's state after it."""

    window_start: int
    count: int
    milli_tokens: int


def taken_state(*, at: int, window_start: int, count: int, milli_tokens: int) -> LimiterState:
    """The limiter's state after a take at `at` that left these counts (a take's state is
    whole: nothing before it matters)."""
    return LimiterState(
        window_start=window_start,
        count=count,
        milli_tokens=milli_tokens,
        updated_at=at,
        started=True,
    )


def evolve(state: LimiterState, event: Event) -> LimiterState:
    if isinstance(event, RateLimitTaken):
        return taken_state(
            at=event.at,
            window_start=event.window_start,
            count=event.count,
            milli_tokens=event.milli_tokens,
        )
    raise TypeError(f"not a rate-limit event: {type(event).__name__}")


class Taken:
    """One take: the limiter's part of a command, the limiter `stream` and its `state` after the
    take, committed with the command or not at all."""

    __slots__ = ("state", "stream")

    def __init__(self, stream: str, state: LimiterState) -> None:
        self.stream = stream
        self.state = state


def take(limit: RateLimit, state: LimiterState, now: int) -> LimiterState:
    """Take one unit of `limit` at `now` from a limiter at `state`: its state after the take,
    or raise `RateLimited` (nothing taken)."""
    policy = limit.policy
    if isinstance(policy, FixedWindow):
        window_start, count = state.window_start, state.count
        if not state.started or now >= window_start + policy.period_ms:
            window_start, count = now, 0
        if count >= policy.rate:
            raise RateLimited(limit.message, retry_after_ms=window_start + policy.period_ms - now)
        count, milli_tokens = count + 1, 0
    else:
        full = policy.capacity * 1000
        tokens = full if not state.started else state.milli_tokens
        elapsed = max(0, now - state.updated_at) if state.started else 0
        tokens = min(full, tokens + elapsed * policy.rate * 1000 // policy.period_ms)
        if tokens < 1000:
            missing = 1000 - tokens
            wait = -(-missing * policy.period_ms // (policy.rate * 1000))
            raise RateLimited(limit.message, retry_after_ms=wait)
        window_start, count, milli_tokens = 0, 0, tokens - 1000
    return taken_state(at=now, window_start=window_start, count=count, milli_tokens=milli_tokens)


def limiter_id(limit_name: str, key: str) -> str:
    """The limiter's id for one key of one limit (ids are `[a-z0-9]`, so hashed): its stream is
    `RATE_LIMITER.stream_of(limiter_id(...))`, the name its takes are journaled under."""
    digest = hashlib.blake2b(f"{limit_name}\x1f{key}".encode(), digest_size=12).hexdigest()
    return f"rl_{digest}"


#: The limiters' aggregate kind: the streams of `RateLimitTaken` in older journals, and the
#: names of limiters (never decided on through a `Decision`).
RATE_LIMITER = Aggregate(
    kind="ratelimit",
    id_prefix="rl",
    state_type=LimiterState,
    initial=LimiterState(),
    evolve=evolve,
)
