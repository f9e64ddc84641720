"""The function registry: Convex-style names bound to the domain's declarations.

Built once from the domain `Module`s; answers which mutation or query a name is, which
aggregate kind owns a stream, and which projections exist. Names are `module:function`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.errors import InvalidArgs, NotFound
from domain.model import Aggregate, Module, MutationSpec, Projection, QuerySpec
from domain.scheduling import CronJob


class Registry:
    def __init__(self, modules: Iterable[Module]) -> None:
        self.mutations: dict[str, MutationSpec[Any, Any]] = {}
        self.queries: dict[str, QuerySpec[Any]] = {}
        self.aggregates: dict[str, Aggregate[Any]] = {}
        self.projections: dict[str, Projection[Any]] = {}
        self.jobs: dict[str, CronJob] = {}
        for module in modules:
            for aggregate in module.aggregates:
                self._add(self.aggregates, aggregate.kind, aggregate)
            for projection in module.projections:
                self._add(self.projections, projection.name, projection)
            for mutation in module.mutations:
                self._check_name(mutation.name)
                self._add(self.mutations, mutation.name, mutation)
            for query in module.queries:
                self._check_name(query.name)
                self._add(self.queries, query.name, query)
            for job in module.jobs:
                self._add(self.jobs, job.name, job)

    @staticmethod
    def _add(table: dict[str, Any], key: str, value: Any) -> None:
        if key in table:
            raise ValueError(f"{key!r} is declared twice")
        table[key] = value

    @staticmethod
    def _check_name(name: str) -> None:
        module, sep, function = name.partition(":")
        if not (module and sep and function):
            raise ValueError(f"function name {name!r} is not module:function")

    def mutation(self, name: str) -> MutationSpec[Any, Any]:
        spec = self.mutations.get(_normalize(name))
        if spec is None:
            raise NotFound(f"Could not find public function for '{name}'.", function=name)
        return spec

    def query(self, name: str) -> QuerySpec[Any]:
        spec = self.queries.get(_normalize(name))
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
    """Convex clients may send `events.js:create` or `events:create`; both name one function."""
    if not isinstance(name, str):
        raise InvalidArgs("The function name must be a string.", path="udfPath")
    module, sep, function = name.partition(":")
    if module.endswith(".js"):
        module = module[:-3]
    return f"{module}{sep}{function}" if sep else name
