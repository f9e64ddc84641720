"""Loading apps by import path, all checked together before anything starts.

`load_apps(["shop.backend", "crm.app:CRM"])` imports each path (the current directory first on
`sys.path`, as `python -m` has it), takes its `app` attribute (or the one after `:`), and returns
the built-in app followed by them. It raises `AppError`, one sentence naming the app, when:
- a path does not import or names no `domain.app.App`;
- two apps share a name, or an app takes a reserved one (`booking`, `engine`, ...);
- an event type defined in an app's package has another namespace than the app's name (none,
  or another app's): its events would land in the journal under a name it does not own;
- the registry refuses the set (a name declared twice, a reserved function name, ...).
Nothing is started and no journal is opened by any of this, so a wrong app never leaves a
half-loaded server.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence

from domain.app import RESERVED_APP_NAMES, App, AppError
from domain.catalog import BOOKING
from domain.model import EVENT_TYPES, Module
from engine.registry import ENGINE_MODULE, Registry

__all__ = ["AppError", "load_apps"]


def load_apps(paths: Iterable[str] = ()) -> tuple[Module, ...]:
    """The built-in app, then the apps at `paths` in order; `AppError` if they cannot be served
    together (see the module's docstring)."""
    found: list[tuple[str, App]] = []
    for path in paths:
        found.append((path, _import_app(path)))
    check_apps(found)
    return (BOOKING, *(app for _, app in found))


def check_apps(found: Sequence[tuple[str, App]]) -> None:
    """Refuse what cannot be served beside the built-in app (the module's docstring)."""
    names: dict[str, str] = {}
    for path, app in found:
        if app.name in RESERVED_APP_NAMES:
            raise AppError(f"app {app.name!r} ({path}): the name {app.name!r} is reserved")
        if app.name in names:
            raise AppError(f"app {app.name!r} is loaded twice: by {names[app.name]} and by {path}")
        names[app.name] = path
    for path, app in found:
        package = path.partition(":")[0]
        for type_name, cls in EVENT_TYPES.items():
            module = cls.__module__
            if not (module == package or module.startswith(package + ".")):
                continue
            if cls.namespace != app.name:
                whose = (
                    "no namespace"
                    if not cls.namespace
                    else f"the namespace {cls.namespace!r}"
                    + (", another app's" if cls.namespace in names else "")
                )
                raise AppError(
                    f"app {app.name!r}: event type {type_name} ({module}) has {whose}; set"
                    f" `namespace = {app.name!r}` on the app's events"
                )
    Registry((ENGINE_MODULE, BOOKING, *(app for _, app in found)))


def _import_app(path: str) -> App:
    module_name, _, attribute = path.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except AppError:
        raise
    except Exception as exc:  # an app's import can raise anything; say which app and why
        raise AppError(f"app {path}: cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise AppError(
            f"app {path}: {module_name} has no `{attribute or 'app'}` that is a domain.app.App"
        )
    return app
