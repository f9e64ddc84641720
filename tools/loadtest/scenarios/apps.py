"""Load scenarios that apps declare for themselves.

An app's module (the one `turnstile serve --app MODULE` imports) may declare, beside its `app`,

    loadtest_scenarios = (GiftCardRush,)

a tuple of `Scenario` subclasses, each with its own `name`; `turnstile loadtest --app MODULE
--scenario NAME` then runs one of them (docs/loadtest.md, "Apps' own scenarios").
`declared_scenarios` reads those declarations, after loading the apps exactly as the server does
(`engine.apps.load_apps`), and refuses with a `ConfigError` naming the app:

- an app that does not load (the server would refuse it too);
- a `loadtest_scenarios` that is not a tuple of concrete `Scenario` subclasses with a name;
- a name that a built-in scenario has, or that another app's scenario has already taken.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Collection, Sequence

from domain.app import AppError
from engine.apps import load_apps
from tools.loadtest.config import ConfigError
from tools.loadtest.scenarios.base import Scenario

#: The attribute of an app's module that declares its load scenarios.
DECLARATION = "loadtest_scenarios"


def declared_scenarios(
    paths: Sequence[str], builtin: Collection[str]
) -> dict[str, tuple[str, type[Scenario]]]:
    """name -> (the app path declaring it, its class), for every scenario the apps at `paths`
    declare, in their order; `ConfigError` as the module's docstring says."""
    try:
        load_apps(paths)
    except AppError as exc:
        raise ConfigError(str(exc)) from None
    found: dict[str, tuple[str, type[Scenario]]] = {}
    for path in paths:
        module = importlib.import_module(path.partition(":")[0])
        declared = getattr(module, DECLARATION, ())
        if not isinstance(declared, tuple):
            raise ConfigError(
                f"app {path}: `{DECLARATION}` must be a tuple of"
                f" tools.loadtest.scenarios.Scenario subclasses, not {type(declared).__name__}"
            )
        for cls in declared:
            name = _checked(path, cls)
            if name in builtin:
                raise ConfigError(
                    f"app {path}: its load scenario {name!r} ({_qualified(cls)}) has the name"
                    " of a built-in scenario"
                )
            if name in found:
                other, taken = found[name]
                raise ConfigError(
                    f"app {path}: its load scenario {name!r} ({_qualified(cls)}) has the name"
                    f" of {other}'s ({_qualified(taken)})"
                )
            found[name] = (path, cls)
    return found


def _checked(path: str, cls: object) -> str:
    """The name of declared scenario `cls`, or `ConfigError` if it is not one."""
    if not (isinstance(cls, type) and issubclass(cls, Scenario)):
        raise ConfigError(
            f"app {path}: `{DECLARATION}` holds {cls!r}, which is not a"
            " tools.loadtest.scenarios.Scenario subclass"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConfigError(f"app {path}: load scenario {_qualified(cls)} does not define {missing}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"app {path}: load scenario {_qualified(cls)} has no `name`")
    return name


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


__all__ = ["DECLARATION", "declared_scenarios"]
