"""Turnstile's domain: pure aggregates, rules and function declarations (no I/O, no clock).

What is exported here (and `domain.app.App`) is the API an app is written against
(docs/apps.md); the rest of the package is the built-in booking app's own."""

from domain.actions import ActionContext, ActionSpec, FetchFailed, FetchResponse
from domain.app import App, AppError
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
from domain.identity import (
    ADMIN,
    ANONYMOUS,
    Identity,
    org_for_new_record,
    require_authenticated,
    require_cap,
    require_org,
    require_user,
)
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
from domain.pagination import InvalidCursor, Page, PaginationOpts, paginate, scope_of
from domain.routes import HttpRoute, RouteRequest, RouteResponse
from domain.scheduled import (
    cancel_scheduled,
    run_after,
    run_at,
    scheduled_function,
    scheduled_functions,
)
from domain.scheduling import AtStart, CronJob, DailyAt, Every, JobCommand
from domain.storage import FileState, erase_file, file_url, require_file
from domain.tables import Index, Search, Stored, Table, db

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "ActionContext",
    "ActionSpec",
    "Aggregate",
    "App",
    "AppError",
    "AtStart",
    "Conflict",
    "CronJob",
    "DailyAt",
    "Decision",
    "Event",
    "Every",
    "FetchFailed",
    "FetchResponse",
    "FileState",
    "Forbidden",
    "HttpRoute",
    "Identity",
    "Index",
    "Internal",
    "InvalidArgs",
    "InvalidCursor",
    "JobCommand",
    "Module",
    "MutationSpec",
    "NotFound",
    "Overloaded",
    "Page",
    "PaginationOpts",
    "Projection",
    "QuerySpec",
    "RateLimited",
    "RouteRequest",
    "RouteResponse",
    "Search",
    "Stored",
    "Table",
    "TimerChange",
    "TurnstileError",
    "Unauthenticated",
    "View",
    "cancel_scheduled",
    "db",
    "erase_file",
    "file_url",
    "org_for_new_record",
    "paginate",
    "require_authenticated",
    "require_cap",
    "require_file",
    "require_org",
    "require_user",
    "run_after",
    "run_at",
    "scheduled_function",
    "scheduled_functions",
    "scope_of",
]
