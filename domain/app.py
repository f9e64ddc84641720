"""An app: a team's own aggregates, read models, queries, mutations and cron jobs, served beside
the built-in booking domain, which is itself the app `booking` (`domain.catalog.BOOKING`).

`turnstile serve --app shop.backend` imports `shop.backend` and serves its module-level `app`
(docs/apps.md is the guide). An `App` is a `Module` with a name:

- `name` is the app's namespace in the journal. Every event type the app defines sets
  `namespace = name` (once, on a base class of its events), so its journal type is
  `name.ClassName` and two apps' `ItemAdded` never meet; the built-in events keep bare names.
- Function names are `module:function`, as Convex names a file's exports; a name may be served
  by one app only. `aliases` serve a function under further names as well (another file's name
  for it, as a seed's frontend calls it).
- Names beginning with `_` (Convex's system functions), the module `storage` (file storage)
  and the module `scheduler` (scheduled functions' operator query) are reserved to Turnstile.

What is wrong with a set of apps (a name declared twice, a reserved name, an event type in
another app's namespace) is found before anything starts: `engine.apps.load_apps` raises
`AppError` and no server or journal is opened. `actions` (domain.actions) and `routes`
(domain.routes) are declared the same way, and checked with the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from domain.model import Module

#: What an app's name may be: it prefixes the app's event types in the journal.
APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: The built-in app's name.
BUILTIN_APP = "booking"
#: Names no app may take: the built-in app's and the engine's own.
RESERVED_APP_NAMES = frozenset({BUILTIN_APP, "engine", "turnstile", "system"})
#: Function modules reserved to Turnstile (besides every name beginning with `_`).
RESERVED_FUNCTION_MODULES = frozenset({"storage", "scheduler"})


class AppError(ValueError):
    """A set of apps that cannot be served together, said in one sentence naming the app."""


@attrs.frozen(kw_only=True)
class App(Module):
    """A named set of declarations that the engine serves (see the module's docstring)."""

    name: str
    #: Further names for functions of this app: `{"waiting_list:getQueuePosition":
    #: "waitingList:getQueuePosition"}`.
    aliases: tuple[tuple[str, str], ...] = ()

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not APP_NAME.fullmatch(self.name):
            raise AppError(
                f"app name {self.name!r} is not a lower-case identifier of at most 32 characters"
            )
        for table in self.tables:
            try:
                table.resolve_refs(self.tables)
            except TypeError as error:
                raise AppError(f"app {self.name!r}: {error}") from None

    @classmethod
    def combining(
        cls, name: str, modules: Iterable[Module], *, aliases: Iterable[tuple[str, str]] = ()
    ) -> App:
        """One app made of several modules' declarations, in their order."""
        parts = tuple(modules)
        return cls(
            name=name,
            aggregates=tuple(a for m in parts for a in m.aggregates),
            projections=tuple(p for m in parts for p in m.projections),
            mutations=tuple(f for m in parts for f in m.mutations),
            queries=tuple(q for m in parts for q in m.queries),
            jobs=tuple(j for m in parts for j in m.jobs),
            tables=tuple(t for m in parts for t in m.tables),
            actions=tuple(a for m in parts for a in m.actions),
            routes=tuple(r for m in parts for r in m.routes),
            aliases=tuple(aliases),
        )
