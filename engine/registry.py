"""The function registry: Convex-style names bound to the domain's declarations.

Built once from the apps and modules the engine serves; answers which mutation or query a name
is (aliases included), which aggregate kind owns a stream, and which projections exist. Names
are `module:function`. Whatever cannot be served together is refused here, before anything
starts, with an `AppError` that names the apps involved: a function, aggregate kind, id prefix,
projection or job declared twice; an alias that hides a function or points at none; a reserved
function name taken by an app; a route on a path Turnstile serves, or one method and path
routed twice. It also picks the route that serves an HTTP request (`route_for`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.actions import ActionSpec
from domain.app import BUILTIN_APP, RESERVED_FUNCTION_MODULES, App, AppError
from domain.errors import InvalidArgs, NotFound
from domain.model import Aggregate, Module, MutationSpec, Projection, QuerySpec
from domain.ratelimit import RATE_LIMITER
from domain.routes import HttpRoute
from domain.scheduled import SCHEDULED
from domain.scheduling import JOB, CronJob
from domain.storage import STORAGE

#: What the engine itself keeps in the journal, beside the apps: every registry holds it.
ENGINE_MODULE = App(
    name="engine",
    aggregates=(RATE_LIMITER, JOB, *STORAGE.aggregates, *SCHEDULED.aggregates),
    projections=(*STORAGE.projections, *SCHEDULED.projections),
    mutations=STORAGE.mutations,
    queries=(*STORAGE.queries, *SCHEDULED.queries),
)


def owner_of(module: Module) -> str:
    """The app a module's declarations belong to (plain modules are the built-in app's)."""
    return module.name if isinstance(module, App) else BUILTIN_APP


class Registry:
    def __init__(self, modules: Iterable[Module]) -> None:
        self.mutations: dict[str, MutationSpec[Any, Any]] = {}
        self.queries: dict[str, QuerySpec[Any]] = {}
        self.aggregates: dict[str, Aggregate[Any]] = {}
        self.projections: dict[str, Projection[Any]] = {}
        self.jobs: dict[str, CronJob] = {}
        self.actions: dict[str, ActionSpec[Any]] = {}
        #: HTTP routes, with the app that declared each (`route_for` picks one for a request).
        self.routes: list[tuple[HttpRoute, str]] = []
        #: Alias -> the function's own name.
        self.aliases: dict[str, str] = {}
        #: Which app declared each name ("function events:create", "aggregate event", ...).
        self._owners: dict[str, str] = {}
        id_prefixes: dict[str, str] = {}
        aliases: list[tuple[str, str, str]] = []
        for module in modules:
            app = owner_of(module)
            for aggregate in module.aggregates:
                self._add(self.aggregates, "aggregate kind", aggregate.kind, aggregate, app)
                self._add(id_prefixes, "id prefix", aggregate.id_prefix, aggregate.kind, app)
            for table in module.tables:
                for kind in table.aggregates:
                    self._add(self.aggregates, "aggregate kind", kind.kind, kind, app)
                    self._add(id_prefixes, "id prefix", kind.id_prefix, kind.kind, app)
                self._add(
                    self.projections, "read model", table.projection.name, table.projection, app
                )
            for projection in module.projections:
                self._add(self.projections, "read model", projection.name, projection, app)
            for mutation in module.mutations:
                self._check_name(mutation.name, app)
                self._add(self.mutations, "function", mutation.name, mutation, app)
            for query in module.queries:
                self._check_name(query.name, app)
                self._add(self.queries, "function", query.name, query, app)
            for job in module.jobs:
                self._add(self.jobs, "cron job", job.name, job, app)
            for action in module.actions:
                self._check_name(action.name, app)
                self._add(self.actions, "function", action.name, action, app)
            for route in module.routes:
                self._add_route(route, app)
            if isinstance(module, App):
                aliases.extend((alias, target, app) for alias, target in module.aliases)
        for alias, target, app in aliases:
            self._check_name(alias, app)
            if (
                target not in self.mutations
                and target not in self.queries
                and (target not in self.actions)
            ):
                raise AppError(f"app {app!r}: alias {alias!r} names no function ({target!r})")
            self._add(self.aliases, "function", alias, target, app)

    def _add(self, table: dict[str, Any], what: str, key: str, value: Any, app: str) -> None:
        owner = f"{what} {key}"
        if what == "function":
            clash = (
                key in self.mutations
                or key in self.queries
                or key in self.actions
                or key in self.aliases
            )
        else:
            clash = key in table
        if clash:
            first = self._owners[owner]
            if first == app:
                raise AppError(f"app {app!r} declares {what} {key!r} twice")
            raise AppError(f"app {app!r} declares {what} {key!r}, which app {first!r} declares")
        self._owners[owner] = app
        table[key] = value

    def _add_route(self, route: HttpRoute, app: str) -> None:
        problem = route.problem()
        if problem is not None:
            raise AppError(f"app {app!r}: route {route.method} {route.path}: {problem}")
        for other, other_app in self.routes:
            if (other.method, other.path, other.prefix) == (route.method, route.path, route.prefix):
                what = f"route {route.method} {route.path}{'*' if route.prefix else ''}"
                if other_app == app:
                    raise AppError(f"app {app!r} declares {what} twice")
                raise AppError(f"app {app!r} declares {what}, which app {other_app!r} declares")
        self.routes.append((route, app))
        # Exact paths first, then prefixes longest first: the first match is the one served.
        self.routes.sort(key=lambda found: (found[0].prefix, -len(found[0].path)))

    def route_for(self, method: str, path: str) -> tuple[HttpRoute | None, tuple[str, ...]]:
        """The route serving `method path` (HEAD is served by a GET route), or None with the
        methods the path has routes for (empty: no route at all, a 404; else a 405)."""
        methods: list[str] = []
        for route, _ in self.routes:
            if route.matches(path):
                if route.method == method or (method == "HEAD" and route.method == "GET"):
                    return route, ()
                methods.append(route.method)
        return None, tuple(dict.fromkeys(methods))

    def action(self, name: str) -> ActionSpec[Any]:
        found = _normalize(name)
        spec = self.actions.get(self.aliases.get(found, found))
        if spec is None:
            raise NotFound(f"Could not find public function for '{name}'.", function=name)
        return spec

    @staticmethod
    def _check_name(name: str, app: str) -> None:
        module, sep, function = name.partition(":")
        if not (module and sep and function):
            raise AppError(f"app {app!r}: function name {name!r} is not module:function")
        if app not in (BUILTIN_APP, ENGINE_MODULE.name) and (
            module.startswith("_")
            or function.startswith("_")
            or module in RESERVED_FUNCTION_MODULES
        ):
            raise AppError(f"app {app!r}: function name {name!r} is reserved to Turnstile")

    def owner(self, name: str) -> str:
        """The app that serves function `name` (its own name or an alias)."""
        return self._owners[f"function {name}"]

    def mutation(self, name: str) -> MutationSpec[Any, Any]:
        found = _normalize(name)
        spec = self.mutations.get(self.aliases.get(found, found))
        if spec is None:
            raise NotFound(f"Could not find public function for '{name}'.", function=name)
        return spec

    def query(self, name: str) -> QuerySpec[Any]:
        found = _normalize(name)
        spec = self.queries.get(self.aliases.get(found, found))
        if spec is None:
            raise NotFound(f"Could not find public function for '{name}'.", function=name)
        return spec

    def aggregate_of(self, stream: str) -> Aggregate[Any]:
        kind = stream.partition("/")[0]
        aggregate = self.aggregates.get(kind)
        if aggregate is None:
            raise KeyError(f"no aggregate kind {kind!r} for stream {stream!r}")
        return aggregate


def _normalize(name: str) -> str:
    """Convex clients may send `events.js:create` or `events:create`; both name one function.
    A bare module name is its default export (`notes` is `notes:default`), as Convex has it."""
    if not isinstance(name, str):
        raise InvalidArgs("The function name must be a string.", path="udfPath")
    module, _, function = name.partition(":")
    if module.endswith(".js"):
        module = module[:-3]
    return f"{module}:{function or 'default'}"
