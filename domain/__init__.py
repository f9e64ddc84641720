"""Turnstile's domain: pure aggregates, rules and function declarations (no I/O, no clock)."""

from domain.errors import (
    Conflict,
    Forbidden,
    Internal,
    InvalidArgs,
    NotFound,
    Overloaded,
    RateLimited,
    TurnstileError,
    Unauthenticated,
)
from domain.identity import ADMIN, ANONYMOUS, Identity
from domain.model import (
    Aggregate,
    Decision,
    Event,
    Module,
    MutationSpec,
    Projection,
    QuerySpec,
    TimerChange,
    View,
)

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "Aggregate",
    "Conflict",
    "Decision",
    "Event",
    "Forbidden",
    "Identity",
    "Internal",
    "InvalidArgs",
    "Module",
    "MutationSpec",
    "NotFound",
    "Overloaded",
    "Projection",
    "QuerySpec",
    "RateLimited",
    "TimerChange",
    "TurnstileError",
    "Unauthenticated",
    "View",
]
