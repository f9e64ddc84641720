"""`api.js` and `api.d.ts` for a frontend, shaped like Convex's `convex/_generated/api`.

`generate(modules)` reads the functions the engine would serve for `modules` (a `Registry`:
every mutation, query, action and alias) and returns both files' text; `write_api(out, generated)`
writes them into `out`. The output depends on the declarations only, sorted by module and
function name, so it can be committed and diffed.

- `api.js` is what Convex's generated file is at runtime: `api` and `internal` are `anyApi`
  from `convex/server`, a proxy whose `api.events.create` is a function reference named
  `events:create` (`api.admin.users.list` is `admin/users:list`), so the unmodified client
  sends the names Turnstile serves.
- `api.d.ts` gives `api` its type: for each function a `FunctionReference<"query" |
  "mutation" | "action", "public", Args, Result>`, nested by the module path's `/`-separated
  parts as Convex nests `convex/admin/users.ts`. A part that is not a JavaScript identifier (`a.b`,
  `my-file`) is a quoted key, reached as `api["a.b"].fn`, which is what `anyApi` sends as
  `a.b:fn`. Args are the args class as the wire carries it (`tools.codegen.typescript`, the
  `"args"` direction); Result is the spec's `returns`, or else the handler's return
  annotation (`handle` for a mutation, `evaluate` for a query, `run` for an action; none:
  `any`).
- Turnstile has no internal functions, so `internal`'s type is empty.

`CodegenError` (nothing is written then) names the function whose types cannot be written.
"""

from __future__ import annotations

import functools
import inspect
import os
import tempfile
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from domain.actions import ActionSpec
from domain.model import Module, MutationSpec, QuerySpec
from engine.registry import ENGINE_MODULE, Registry
from tools.codegen.typescript import CodegenError, TsType, property_key, typescript_of

__all__ = [
    "API_DTS",
    "API_JS",
    "ApiFunction",
    "GeneratedApi",
    "api_functions",
    "generate",
    "write_api",
]

API_JS = "api.js"
API_DTS = "api.d.ts"

FunctionKind = Literal["query", "mutation", "action"]


@attrs.frozen(kw_only=True)
class ApiFunction:
    """One entry of `api`: a function under its own name or under an alias."""

    #: The name a client sends (`events:create`, `admin/users:list`).
    name: str
    kind: FunctionKind
    args: TsType
    result: TsType
    #: The function's own name when `name` is an alias of it.
    alias_of: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        """The keys that reach it from `api`: `("admin", "users", "list")`."""
        module, _, function = self.name.partition(":")
        return (*module.split("/"), function)


@attrs.frozen(kw_only=True)
class GeneratedApi:
    """Both files' text and the functions they hold, sorted by name."""

    js: str
    dts: str
    functions: tuple[ApiFunction, ...]


def generate(modules: Iterable[Module], *, app_paths: Sequence[str] = ()) -> GeneratedApi:
    """The files for the functions `modules` serve; `app_paths` (the `--app` options they were
    loaded from) only go into the header's regeneration command. Raises `CodegenError` for a
    type with no TypeScript form and `domain.app.AppError` for modules that cannot be served
    together."""
    # The engine's own functions (storage:*, scheduler:list) are served beside every app's.
    functions = api_functions(Registry((*modules, ENGINE_MODULE)))
    header = _header(app_paths)
    return GeneratedApi(js=header + _API_JS, dts=header + _api_dts(functions), functions=functions)


def write_api(out: Path, generated: GeneratedApi) -> tuple[Path, Path]:
    """Write `api.js` and `api.d.ts` into `out` (made if missing). Each file is replaced
    whole (a reader sees the old file or the new one, never a part). Raises `OSError`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((API_JS, generated.js), (API_DTS, generated.dts)):
        target = out / name
        handle, temporary = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(target)
    return written[0], written[1]


def api_functions(registry: Registry) -> tuple[ApiFunction, ...]:
    """Every public function of `registry` and every alias, sorted by the name sent."""
    found: list[ApiFunction] = []
    own: dict[str, ApiFunction] = {}
    for name, mutation in registry.mutations.items():
        own[name] = _function(name, "mutation", mutation)
    for name, query in registry.queries.items():
        own[name] = _function(name, "query", query)
    for name, action in registry.actions.items():
        own[name] = _function(name, "action", action)
    found.extend(own.values())
    for alias, target in registry.aliases.items():
        found.append(attrs.evolve(own[target], name=alias, alias_of=target))
    return tuple(sorted(found, key=lambda f: f.path))


def _function(
    name: str, kind: FunctionKind, spec: MutationSpec[Any, Any] | QuerySpec[Any] | ActionSpec[Any]
) -> ApiFunction:
    try:
        args = typescript_of(spec.args_type, "args")
        result = typescript_of(_result_type(spec), "result")
    except CodegenError as exc:
        raise CodegenError(f"function {name}: {exc}") from None
    return ApiFunction(name=name, kind=kind, args=args, result=result)


def _result_type(spec: MutationSpec[Any, Any] | QuerySpec[Any] | ActionSpec[Any]) -> Any:
    if spec.returns is not None:
        return spec.returns
    handler: Any
    if isinstance(spec, ActionSpec):
        handler = spec.run
    else:
        handler = spec.handle if isinstance(spec, MutationSpec) else spec.evaluate
    while isinstance(handler, functools.partial):
        handler = handler.func
    if not inspect.isroutine(handler) and callable(handler):
        handler = type(handler).__call__
    what = {MutationSpec: "handle", QuerySpec: "evaluate", ActionSpec: "run"}[type(spec)]
    try:
        hints = typing.get_type_hints(handler)
    except Exception as exc:  # a bad annotation can raise anything; say whose it is
        raise CodegenError(
            f"the return annotation of its `{what}` cannot be resolved: {exc}"
        ) from exc
    return hints.get("return", Any)


# -- the files -----------------------------------------------------------------------------------


def _header(app_paths: Sequence[str]) -> str:
    command = " ".join(["turnstile codegen --out DIR", *(f"--app {path}" for path in app_paths)])
    return f"""/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED by `turnstile codegen`: do not edit it.
 *
 * To regenerate, run `{command}`.
 * @module
 */

"""


_USAGE = """ * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```"""

_INTERNAL = """/**
 * Convex's `internal`: Turnstile has no internal functions (every function it serves is
 * public), so it references nothing; it is here so that code written for Convex imports.
 */"""

_API_JS = f"""import {{ anyApi }} from "convex/server";

/**
 * A utility for referencing Turnstile functions in your app's API.
 *
{_USAGE}
 */
export const api = anyApi;

{_INTERNAL}
export const internal = anyApi;
"""


def _api_dts(functions: Sequence[ApiFunction]) -> str:
    tree = _Namespace()
    for function in functions:
        tree.add(function.path, function)
    return f"""import type {{ FunctionReference }} from "convex/server";

/**
 * A utility for referencing Turnstile functions in your app's API.
 *
{_USAGE}
 */
export declare const api: {tree.render("")};

{_INTERNAL}
export declare const internal: {{}};
"""


class _Namespace:
    """A node of `api`: the keys below it, and the function it is itself, if any (module
    `a` with function `b` beside module `a/b`: `api.a.b` is both)."""

    def __init__(self) -> None:
        self.children: dict[str, _Namespace] = {}
        self.function: ApiFunction | None = None

    def add(self, path: tuple[str, ...], function: ApiFunction) -> None:
        node = self
        for key in path:
            node = node.children.setdefault(key, _Namespace())
        node.function = function

    def render(self, indent: str) -> str:
        parts = []
        if self.function is not None:
            parts.append(_reference(self.function, indent))
        if self.children or self.function is None:
            inner = indent + "  "
            lines = []
            for key in sorted(self.children):
                child = self.children[key]
                if child.function is not None and child.function.alias_of is not None:
                    lines.append(f"{inner}/** An alias of `{child.function.alias_of}`. */")
                lines.append(f"{inner}{property_key(key)}: {child.render(inner)};")
            parts.append("{\n" + "\n".join(lines) + f"\n{indent}}}" if lines else "{}")
        return " & ".join(parts)


def _reference(function: ApiFunction, indent: str) -> str:
    inner = indent + "  "
    parameters = (
        f'"{function.kind}"',
        '"public"',
        function.args.render(inner),
        function.result.render(inner),
    )
    return "FunctionReference<\n" + ",\n".join(inner + p for p in parameters) + f"\n{indent}>"
