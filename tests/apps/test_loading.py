"""`load_apps` refuses, before anything starts, every set of apps that cannot be served together,
with one sentence naming the app; `turnstile serve --app` then exits 2 and opens nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain import App, AppError, NotFound, QuerySpec
from domain.catalog import BOOKING
from engine.apps import load_apps
from engine.registry import Registry
from tests.apps import giftcards

ROOT = Path(__file__).resolve().parents[2]


def test_an_app_is_served_after_the_built_in_one() -> None:
    modules = load_apps(["tests.apps.giftcards"])
    assert modules == (BOOKING, giftcards.app)
    registry = Registry(modules)
    assert registry.owner("giftcards:issue") == "giftcards"
    assert registry.owner("events:create") == "booking"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.apps.broken:TWICE", "app 'twice' declares function 'things:get' twice"),
        (
            "tests.apps.broken:TAKES_A_BUILTIN_NAME",
            "app 'squatter' declares function 'events:list', which app 'booking' declares",
        ),
        ("tests.apps.broken:SYSTEM_NAME", "'_system:listTables' is reserved to Turnstile"),
        ("tests.apps.broken:STORAGE_NAME", "'storage:getUrl' is reserved to Turnstile"),
        ("tests.apps.broken:BOOKING", "the name 'booking' is reserved"),
        ("tests.apps.broken:ALIAS_TO_NOTHING", "alias 'stuff:get' names no function"),
        (
            "tests.apps.broken:ALIAS_HIDING_A_FUNCTION",
            "app 'hider' declares function 'events:list', which app 'booking' declares",
        ),
        (
            "tests.apps.broken:SAME_KIND",
            "app 'copycat' declares aggregate kind 'giftcard', which app 'giftcards' declares",
        ),
        (
            "tests.apps.broken:ENGINE_PREFIX",
            "app 'squatter' declares id prefix 'rl', which app 'engine' declares",
        ),
        ("tests.apps.broken:NOT_AN_APP", "has no `NOT_AN_APP` that is a domain.app.App"),
        ("tests.apps.broken:MISSING", "has no `MISSING`"),
        (
            "tests.apps.foreign_events",
            "app 'forger': event type giftcards.GiftCardForged (tests.apps.foreign_events) has"
            " the namespace 'giftcards', another app's",
        ),
        (
            "tests.apps.loose_events",
            "app 'loose': event type LooseThingHappened (tests.apps.loose_events) has no"
            " namespace; set `namespace = 'loose'`",
        ),
        ("tests.apps.failing_import", "the app's settings file is missing"),
        ("tests.apps.no_such_module", "cannot import 'tests.apps.no_such_module'"),
    ],
)
def test_what_cannot_be_served_is_refused_naming_the_app(path: str, message: str) -> None:
    with pytest.raises(AppError) as refused:
        load_apps(["tests.apps.giftcards", path])
    assert message in str(refused.value)


def test_one_app_loaded_twice_under_its_name_is_refused() -> None:
    with pytest.raises(AppError, match="app 'giftcards' is loaded twice"):
        load_apps(["tests.apps.giftcards", "tests.apps.broken:SECOND_GIFTCARDS"])


def test_an_app_name_must_be_a_lower_case_identifier() -> None:
    for name in ("Shop", "my shop", "", "9lives", "x" * 33):
        with pytest.raises(AppError, match="is not a lower-case identifier"):
            App(name=name)


def test_serve_with_a_wrong_app_exits_2_and_opens_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--app",
            "tests.apps.loose_events",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "app 'loose': event type LooseThingHappened" in done.stderr
    assert "listening" not in done.stdout
    assert not data_dir.exists()


def test_a_bare_module_name_is_its_default_export() -> None:
    from tests.apps.broken import NoArgs, _nothing

    default = QuerySpec(name="notes:default", args_type=NoArgs, evaluate=_nothing)
    registry = Registry((App(name="notes", queries=(default,)),))
    assert registry.query("notes") is default
    assert registry.query("notes.js") is default
    assert registry.query("notes.js:default") is default
    with pytest.raises(NotFound):
        registry.query("events")
