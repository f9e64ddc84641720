"""The layers point one way (docs/engine.md, "Layers"), read from the source itself.

- `domain/` is pure: every module under it, the top level included, imports only `domain` and a
  short list of pure libraries, and calls nothing that reads the clock or does I/O.
- The modules of engine/, domain/, snapshots/, tools/ and lab/ form no import cycle, and neither
  do their packages and sub-packages (the engine's root modules are one node, `engine`; each of
  its sub-packages is another).
- Lower layers import no higher one: domain imports nothing of ours outside domain; engine,
  domain and snapshots import neither tools nor lab; tools import no lab.

Plan: one `ast` pass over every file gives each module's imports, wherever they are written (top
level, under `if TYPE_CHECKING:`, inside a function): any of them can close a circle when it
runs. `import a.b` imports the module `a.b`; `from a import b` imports the module `a.b` if there
is one, else `a`. The tests are queries over that graph, and each failure names the modules.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Set
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "engine", "snapshots", "tools", "lab")

#: What a domain module may import besides `domain` itself: pure standard library modules and
#: the two value libraries the domain is written with.
DOMAIN_MAY_IMPORT = frozenset(
    {
        "__future__",
        "abc",
        "attrs",
        "bisect",
        "collections",
        "dataclasses",
        "datetime",
        "enum",
        "functools",
        "hashlib",
        "heapq",
        "immutables",
        "itertools",
        "json",
        "math",
        "operator",
        "re",
        "string",
        "types",
        "typing",
        "zoneinfo",
    }
)
#: Methods that read the clock (`datetime.now()`, `date.today()`, ...); the `time` module, the
#: other clock, may not be imported at all.
CLOCK_CALLS = frozenset({"now", "utcnow", "today"})
#: Built-ins that do I/O or import by name.
IO_BUILTINS = frozenset({"open", "print", "input", "__import__", "breakpoint", "exec", "eval"})


@attrs.frozen
class Import:
    """One import statement's target, as written (`module`) and the names it takes."""

    module: str
    names: tuple[str, ...]
    line: int


@attrs.frozen
class Source:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_sources(root: Path, packages: Iterable[str]) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            sources[name] = Source(name, path, ast.parse(path.read_text(), str(path)))
    return sources


def imports_of(source: Source) -> Iterator[Import]:
    """Every import in the module, relative ones resolved to absolute names."""
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = source.name.split(".")
                if not source.is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            yield Import(module, tuple(alias.name for alias in node.names), node.lineno)


def targets(imported: Import, known: Set[str]) -> set[str]:
    """The modules of ours an import runs: `from a import b` is `a.b` when that is a module."""
    found: set[str] = set()
    if imported.names:
        for name in imported.names:
            submodule = f"{imported.module}.{name}"
            if submodule in known:
                found.add(submodule)
            elif imported.module in known:
                found.add(imported.module)
        return found
    name = imported.module
    while name and name not in known:
        name = name.rpartition(".")[0]
    return {name} if name else set()


def import_graph(sources: dict[str, Source]) -> dict[str, dict[str, int]]:
    """module -> {imported module of ours -> first line importing it} (no self-imports)."""
    graph: dict[str, dict[str, int]] = {name: {} for name in sources}
    known = set(sources)
    for name, source in sources.items():
        for imported in imports_of(source):
            for target in targets(imported, known):
                if target != name:
                    graph[name].setdefault(target, imported.line)
    return graph


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm): each is
    a set of nodes that all import each other, directly or not. Members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_in(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first member, ending where it starts."""
    start, members = component[0], set(component)
    paths = {nxt: [start, nxt] for nxt in sorted(graph[start]) if nxt in members}
    frontier = list(paths)
    while start not in paths:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt in members and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    return paths[start]


def describe(
    graph: Mapping[str, Iterable[str]],
    component: list[str],
    edges: Mapping[str, Mapping[str, list[str]]] | None = None,
) -> str:
    """The cycle through a component, the imports making each hop (for packages), and the
    component's other members."""
    cycle = cycle_in(graph, component)
    text = " -> ".join(cycle)
    if edges is not None:
        for a, b in itertools.pairwise(cycle):
            text += f"\n    {a} -> {b}: {'; '.join(edges[a][b][:3])}"
    others = sorted(set(component) - set(cycle))
    if others:
        text += f"\n    also in this circle: {', '.join(others)}"
    return text


def layer_of(module: str) -> str:
    """The package node a module belongs to: `lab` whole; elsewhere the top package for its
    root modules and each first-level sub-package on its own (`engine.sync`, `tools.replay`)."""
    parts = module.split(".")
    if parts[0] == "lab" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:2]) if _is_package(".".join(parts[:2])) else parts[0]


def _is_package(name: str) -> bool:
    return (ROOT / name.replace(".", "/") / "__init__.py").exists()


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, list[str]]]:
    """package node -> {imported package node -> the module imports making that edge}."""
    packages: dict[str, dict[str, list[str]]] = {}
    for module, imported in graph.items():
        source = layer_of(module)
        packages.setdefault(source, {})
        for target, line in imported.items():
            destination = layer_of(target)
            if destination != source:
                packages[source].setdefault(destination, []).append(f"{module}:{line} -> {target}")
    return packages


def purity_violations(source: Source) -> Iterator[str]:
    """What makes a domain module impure: imports beyond `domain` and DOMAIN_MAY_IMPORT,
    calls that read the clock, built-ins that do I/O."""
    where = source.path.relative_to(ROOT) if source.path.is_relative_to(ROOT) else source.path
    for imported in imports_of(source):
        top = imported.module.split(".")[0]
        if top != "domain" and top not in DOMAIN_MAY_IMPORT:
            yield f"{where}:{imported.line} imports {imported.module}"
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS:
            yield f"{where}:{node.lineno} reads the clock ({ast.unparse(func)}())"
        elif isinstance(func, ast.Name) and func.id in IO_BUILTINS:
            yield f"{where}:{node.lineno} calls {func.id}()"


SOURCES = read_sources(ROOT, PACKAGES)
GRAPH = import_graph(SOURCES)


# -- domain/ is pure ------------------------------------------------------------------------------


def test_the_domain_is_pure_all_of_it() -> None:
    domain = [source for name, source in SOURCES.items() if name.split(".")[0] == "domain"]
    names = {source.name for source in domain}
    # The top level and every area are read: a wrong path must not pass by reading nothing.
    assert {"domain", "domain.model", "domain.core", "domain.ratelimit"} <= names
    for area, least in (("customers", 6), ("notifications", 10), ("ticketing", 2), ("venue", 2)):
        assert sum(name.startswith(f"domain.{area}.") for name in names) >= least, area
    violations = [v for source in domain for v in purity_violations(source)]
    assert not violations, "domain/ must do no I/O:\n" + "\n".join(violations)


# -- no cycles ------------------------------------------------------------------------------------


def test_no_modules_import_each_other_in_a_circle() -> None:
    found = circles(GRAPH)
    assert not found, "import cycles between modules:\n" + "\n".join(
        describe(GRAPH, c) for c in found
    )


def test_no_packages_import_each_other_in_a_circle() -> None:
    packages = package_graph(GRAPH)
    found = circles(packages)
    assert not found, "import cycles between packages:\n" + "\n".join(
        describe(packages, c, packages) for c in found
    )


# -- lower layers import no higher one ------------------------------------------------------------

#: (importing top package, the top packages it must not import)
FORBIDDEN_LAYERS = (
    ("domain", frozenset(PACKAGES) - {"domain"}),
    ("engine", frozenset({"tools", "lab"})),
    ("snapshots", frozenset({"tools", "lab"})),
    ("tools", frozenset({"lab"})),
)


def layer_violations(graph: Mapping[str, Mapping[str, int]]) -> list[str]:
    return [
        f"{module}:{line} imports {target}"
        for module, imported in sorted(graph.items())
        for lower, higher in FORBIDDEN_LAYERS
        if module.split(".")[0] == lower
        for target, line in sorted(imported.items())
        if target.split(".")[0] in higher
    ]


def test_no_lower_layer_imports_a_higher_one() -> None:
    wrong = layer_violations(GRAPH)
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


# -- the checks themselves ------------------------------------------------------------------------


def _source(name: str, text: str, *, package: bool = False) -> Source:
    path = ROOT / (name.replace(".", "/") + ("/__init__.py" if package else ".py"))
    return Source(name, path, ast.parse(text))


def test_every_kind_of_import_is_seen() -> None:
    source = _source(
        "engine.sync.session",
        "from typing import TYPE_CHECKING\n"
        "import engine.wire.protocol\n"
        "from engine.server import context\n"
        "from . import sender\n"
        "from ..journal import open_journal\n"
        "if TYPE_CHECKING:\n"
        "    from engine.engine import Engine\n"
        "def f():\n"
        "    from snapshots import Snapshot\n",
    )
    known = {
        "engine",
        "engine.engine",
        "engine.journal",
        "engine.server",
        "engine.server.context",
        "engine.sync",
        "engine.sync.sender",
        "engine.wire",
        "engine.wire.protocol",
        "snapshots",
    }
    found = {t for imported in imports_of(source) for t in targets(imported, known)}
    assert found == {
        "engine.wire.protocol",
        "engine.server.context",
        "engine.sync.sender",
        "engine.journal",
        "engine.engine",
        "snapshots",
    }


def test_an_import_against_the_layers_is_caught() -> None:
    graph = {
        "domain.model": {"engine.codec": 3},
        "engine.engine": {"domain.model": 1, "tools.cli": 9},
        "snapshots.store": {"lab.bench": 2},
        "tools.cli": {"engine": 4, "lab.chaos": 5},
        "lab.bench": {"tools.cli": 6, "engine": 7},
    }
    assert layer_violations(graph) == [
        "domain.model:3 imports engine.codec",
        "engine.engine:9 imports tools.cli",
        "snapshots.store:2 imports lab.bench",
        "tools.cli:5 imports lab.chaos",
    ]


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": [], "e": ["d"]}
    assert circles(graph) == [["a", "b", "c"]]
    assert cycle_in(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert describe(graph, ["a", "b", "c"]) == "a -> b -> c -> a"
    wide = {"a": ["b", "c"], "b": ["a"], "c": ["a"]}
    assert describe(wide, ["a", "b", "c"]) == "a -> b -> a\n    also in this circle: c"
    assert circles({"a": ["b"], "b": []}) == []
    assert layer_of("engine.engine") == "engine"
    assert layer_of("engine.sync.session") == "engine.sync"
    assert layer_of("tools.loadtest.scenarios.shop") == "tools.loadtest"
    assert layer_of("lab.chaos.crash") == "lab"


def test_an_impure_domain_module_is_caught() -> None:
    source = _source(
        "domain.bad",
        "import trio\n"
        "from os import urandom\n"
        "from datetime import datetime\n"
        "def f():\n"
        "    import sqlite3\n"
        "    print(datetime.now())\n"
        "    return open('x')\n",
    )
    found = {v.split(" ", 1)[1] for v in purity_violations(source)}
    assert found == {
        "imports trio",
        "imports os",
        "imports sqlite3",
        "reads the clock (datetime.now())",
        "calls print()",
        "calls open()",
    }


def test_the_client_and_the_wire_load_none_of_the_engine() -> None:
    """engine/__init__.py imports its public names when first used, so a client process does
    not load the actors, the journal or the server (docs/engine.md, "Layers")."""
    probe = (
        "import sys, engine.client, engine.wire; "
        "print(sorted(m for m in sys.modules if m.startswith('engine.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(ast.literal_eval(done.stdout))
    assert loaded, "the probe loaded nothing: it did not run"
    assert loaded <= {
        "engine.client",
        "engine.wire",
        "engine.wire.connection",
        "engine.wire.protocol",
        "engine.wire.values",
    }
