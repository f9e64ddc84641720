"""Rate limits as data: a policy per limit name, one small aggregate per (limit, key).

Two policies, as Convex's rate limiter offers them:
- `FixedWindow(rate, period_ms)`: at most `rate` takes in each window of `period_ms`, windows
  aligned to the first take after the previous window ended;
- `TokenBucket(rate, period_ms, capacity)`: `rate` tokens refill per `period_ms`, up to
  `capacity`; a take needs one whole token.

A take that fits emits `RateLimitTaken` (so the count survives restarts: it is in the journal);
one that does not raises `RateLimited` with `retryAfter` in ms and emits nothing. The engine
runs the take, durably, before the limited mutation, and refuses the mutation if the take fails
for any reason (fail closed).
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
    window_start: int
    count: int
    milli_tokens: int


def evolve(state: LimiterState, event: Event) -> LimiterState:
    if isinstance(event, RateLimitTaken):
        return LimiterState(
            window_start=event.window_start,
            count=event.count,
            milli_tokens=event.milli_tokens,
            updated_at=event.at,
            started=True,
        )
    raise TypeError(f"not a rate-limit event: {type(event).__name__}")


class Taken:
    """One take: the limiter's part of a command, its `RateLimitTaken` and the state after it
    (`evolve` of the two), committed with the command and before its own events."""

    __slots__ = ("events", "state", "stream", "version")

    def __init__(self, event: RateLimitTaken, state: LimiterState) -> None:
        self.stream = event.stream
        self.version = event.version
        self.events = (event,)
        self.state = state


def take(limit: RateLimit, stream: str, state: LimiterState, version: int, now: int) -> Taken:
    """Take one unit of `limit` at `now` from the limiter `stream` (at `state`, `version`), or
    raise `RateLimited` (nothing taken). Built directly rather than through a `Decision`: a
    take is one event, decided on every limited command."""
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
    event = RateLimitTaken(
        stream=stream,
        version=version + 1,
        at=now,
        window_start=window_start,
        count=count,
        milli_tokens=milli_tokens,
    )
    return Taken(event, evolve(state, event))


def limiter_id(limit_name: str, key: str) -> str:
    """The limiter aggregate's id for one key of one limit (ids are `[a-z0-9]`, so hashed)."""
    digest = hashlib.blake2b(f"{limit_name}\x1f{key}".encode(), digest_size=12).hexdigest()
    return f"rl_{digest}"


RATE_LIMITER = Aggregate(
    kind="ratelimit",
    id_prefix="rl",
    state_type=LimiterState,
    initial=LimiterState(),
    evolve=evolve,
)
