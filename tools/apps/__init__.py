"""The `--app MODULE` option, as every command that serves or reads apps takes it.

`add_app_option(parser)` adds it (repeatable); `load_app_modules(parser, values)` loads the apps
(`engine.apps.load_apps`: the built-in app first) and turns an `AppError` into the parser's
usage error (exit status 2, one line naming the app), so a wrong app stops the command before it
opens anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from domain.app import AppError
from domain.model import Module
from engine.apps import load_apps

HELP = (
    "serve an app's functions beside the built-in ones: a Python import path whose module has"
    " `app = domain.app.App(...)` (`MODULE:NAME` for another attribute); repeatable"
)


def add_app_option(parser: argparse.ArgumentParser, help: str = HELP) -> None:
    parser.add_argument(
        "--app", dest="apps", action="append", default=[], metavar="MODULE", help=help
    )


def load_app_modules(parser: argparse.ArgumentParser, values: Iterable[str]) -> tuple[Module, ...]:
    try:
        return load_apps(values)
    except AppError as exc:
        parser.error(str(exc))
