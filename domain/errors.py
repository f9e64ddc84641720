"""The one error tree.

Every failure a client can see is a `TurnstileError` with a stable machine-readable `code`
(docs/reference/errors.md). `data()` is what travels as Convex's `errorData`; library errors are
translated into this tree at the boundary and never reach a client as a traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TurnstileError(Exception):
    """Base of every error with a wire code. `details` become fields of `errorData`."""

    code: ClassVar[str] = "Internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def data(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidArgs(TurnstileError):
    """Arguments do not fit the function's schema or a field rule; `path` names the field."""

    code = "InvalidArgs"

    def __init__(self, message: str, *, path: str, **details: Any) -> None:
        super().__init__(message, path=path, **details)


class Unauthenticated(TurnstileError):
    code = "Unauthenticated"


class Forbidden(TurnstileError):
    code = "Forbidden"


class NotFound(TurnstileError):
    """Also what another organization's record looks like: indistinguishable from absence."""

    code = "NotFound"


class Conflict(TurnstileError):
    """A rule of the current state refuses the command (sold out, wrong status, duplicate)."""

    code = "Conflict"


class RateLimited(TurnstileError):
    code = "RateLimited"

    def __init__(self, message: str, *, retry_after_ms: int, **details: Any) -> None:
        super().__init__(message, retryAfter=retry_after_ms, **details)


class Overloaded(TurnstileError):
    """The engine cannot take the command now (full mailbox, journal unavailable); retry later."""

    code = "Overloaded"


class Internal(TurnstileError):
    code = "Internal"


ERROR_CODES: tuple[str, ...] = (
    "InvalidArgs",
    "Unauthenticated",
    "Forbidden",
    "NotFound",
    "Conflict",
    "RateLimited",
    "Overloaded",
    "Internal",
)
