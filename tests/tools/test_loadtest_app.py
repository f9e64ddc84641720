"""`turnstile loadtest --app MODULE`: an app's own load scenarios, run against a live
`turnstile serve --app` (the gift-card app and `tests/apps/giftcards_load.py`'s `giftcards`
scenario), and every way the command refuses to start (exit 2, one line saying why).

The scenario's own checks are read from the report, and the cards are also read back over the
HTTP API, so a harness that claimed redemptions it did not make would fail here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apps.giftcards_load import BALANCE, CARDS
from tests.server.test_cli import REPO, serving, turnstile
from tests.tools.test_loadtest import ADMIN_KEY, RUN_TIMEOUT, SECRET, harness, query

LOAD_APP = "tests.apps.giftcards_load"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`turnstile serve --app tests.apps.giftcards` on a free port."""
    data = tmp_path_factory.mktemp("loadtest-app") / "data"
    args = ("--data-dir", str(data), "--admin-key", ADMIN_KEY, "--jwt-secret", SECRET)
    with serving(*args, "--app", "tests.apps.giftcards", "--log-level", "WARNING") as (
        process,
        port,
        _,
    ):
        yield port
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def run(port: int, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        harness(port, out, *args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def test_the_giftcards_scenario_races_clerks_and_every_check_passes(
    app_server: int, tmp_path: Path
) -> None:
    done = run(
        app_server, tmp_path,
        "--app", LOAD_APP, "--scenario", "giftcards",
        "--duration", "3", "--users", "8", "--subscribers", "6",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("turnstile loadtest: giftcards against")
    assert done.stdout.rstrip().endswith("PASSED")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True
    assert report["scenario"] == "giftcards"
    assert report["config"]["apps"] == [LOAD_APP]
    assert set(report["scenarios"]) == {"giftcards"}
    checks = {c["name"]: c for c in report["checks"]}
    assert [c for c in checks.values() if not c["passed"]] == []
    assert set(checks) == {
        *(f"giftcards card {i}: every subscriber converged" for i in range(CARDS)),
        "giftcards: no balance ever negative",
        "giftcards: every balance is issued minus the acknowledged redemptions",
    }
    for i in range(CARDS):
        assert checks[f"giftcards card {i}: every subscriber converged"]["detail"].startswith(
            "6 subscribers hold"
        )
    stats = report["scenarios"]["giftcards"]
    assert stats["redeemed"] > 0
    assert report["connections"]["connected"] == report["connections"]["participants"] == 8 + 6
    assert report["latency"]["byFunction"]["giftcards:redeem"]["count"] == stats["redeemed"]
    assert report["errors"].get("Conflict", 0) == stats.get("notEnoughLeft", 0)
    # Read back apart from the harness: what the cards hold is what was issued less what the
    # harness says was acknowledged (nothing was cut short: the cards ran dry or the count
    # of attempts ran out well within the deadline).
    assert report["unfinished"] == {}
    balances = [
        query(app_server, "giftcards:get", {"giftCardId": card_id}, f"Convex {ADMIN_KEY}")[
            "balance"
        ]
        for card_id in stats["cardIds"]
    ]
    assert len(balances) == CARDS
    assert all(balance >= 0 for balance in balances)
    assert sum(balances) == CARDS * BALANCE - stats["unitsRedeemed"]


def test_a_server_without_the_app_is_refused_before_the_load(tmp_path: Path) -> None:
    args = ("--data-dir", str(tmp_path / "data"), "--admin-key", ADMIN_KEY, "--jwt-secret", SECRET)
    with serving(*args, "--log-level", "WARNING") as (process, port, _):
        done = run(port, tmp_path, "--app", LOAD_APP, "--scenario", "giftcards")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "turnstile loadtest: cannot run giftcards: the server does not serve the giftcards app"
        " (giftcards:issue)" in done.stderr
    )
    assert not (tmp_path / "report.json").exists()


# -- refused before anything is sent ---------------------------------------------------------


def refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What `turnstile loadtest ARGS` says as it exits 2 (no server is needed: it stops first)."""
    from tools.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "loadtest", "--url", "http://127.0.0.1:1", "--admin-key", "k",
                "--jwt-secret", SECRET, "--connect-timeout", "0.5", *args,
            ]
        )  # fmt: skip
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_without_app_an_unknown_scenario_is_refused_as_before(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refusal(capsys, "--scenario", "giftcards")
    assert err.startswith("usage: turnstile loadtest")
    assert (
        "turnstile loadtest: error: argument --scenario: invalid choice: 'giftcards' (choose"
        " from 'onsale', 'booking', 'fanout', 'mixed')" in err
    )


@pytest.mark.parametrize(
    ("apps", "message"),
    [
        (
            [LOAD_APP],
            "loadtest: unknown scenario 'nope': not built in (onsale, booking, fanout, mixed)"
            f" nor declared by {LOAD_APP} (giftcards)",
        ),
        (
            ["tests.apps.giftcards"],
            "loadtest: unknown scenario 'nope': not built in (onsale, booking, fanout, mixed)"
            " nor declared by tests.apps.giftcards (none)",
        ),
    ],
)
def test_with_app_an_unknown_scenario_is_refused_naming_the_apps(
    capsys: pytest.CaptureFixture[str], apps: list[str], message: str
) -> None:
    err = refusal(capsys, *(f"--app={a}" for a in apps), "--scenario", "nope")
    assert f"turnstile: error: {message}\n" in err


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("tests.apps.no_such_app", "app tests.apps.no_such_app: cannot import"),
        (
            "tests.apps.broken:NOT_AN_APP",
            "app tests.apps.broken:NOT_AN_APP: tests.apps.broken has no `NOT_AN_APP` that is a"
            " domain.app.App",
        ),
        ("tests.apps.loose_events", "event type LooseThingHappened (tests.apps.loose_events)"),
    ],
)
def test_a_wrong_app_is_refused_as_serve_refuses_it(
    capsys: pytest.CaptureFixture[str], app: str, message: str
) -> None:
    err = refusal(capsys, "--app", app, "--scenario", "giftcards")
    assert "turnstile: error: app " in err
    assert message in err


APPS_DECLARING = {
    "declares_onsale": """
        class Named(GiftCardRush):
            name = "onsale"

        app = App(name="declares_onsale")
        loadtest_scenarios = (Named,)
    """,
    "declares_giftcards": """
        app = App(name="declares_giftcards")
        loadtest_scenarios = (GiftCardRush,)
    """,
    "declares_a_list": """
        app = App(name="declares_a_list")
        loadtest_scenarios = [GiftCardRush]
    """,
    "declares_a_non_scenario": """
        app = App(name="declares_a_non_scenario")
        loadtest_scenarios = (GiftCardRush, object)
    """,
    "declares_an_abstract_one": """
        class Half(Scenario):
            name = "half"

        app = App(name="declares_an_abstract_one")
        loadtest_scenarios = (Half,)
    """,
    "declares_a_nameless_one": """
        class Nameless(GiftCardRush):
            name = ""

        app = App(name="declares_a_nameless_one")
        loadtest_scenarios = (Nameless,)
    """,
}


@pytest.fixture
def declaring_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The modules of `APPS_DECLARING`, importable for the test (and forgotten after it)."""
    header = (
        "from domain import App\n"
        "from tests.apps.giftcards_load import GiftCardRush\n"
        "from tools.loadtest.scenarios import Scenario\n"
    )
    for name, body in APPS_DECLARING.items():
        (tmp_path / f"{name}.py").write_text(header + textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in APPS_DECLARING:
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("declaring_apps")
@pytest.mark.parametrize(
    ("apps", "message"),
    [
        (
            ["declares_onsale"],
            "app declares_onsale: its load scenario 'onsale' (declares_onsale.Named) has the"
            " name of a built-in scenario",
        ),
        (
            [LOAD_APP, "declares_giftcards"],
            "app declares_giftcards: its load scenario 'giftcards'"
            " (tests.apps.giftcards_load.GiftCardRush) has the name of"
            " tests.apps.giftcards_load's (tests.apps.giftcards_load.GiftCardRush)",
        ),
        (
            ["declares_a_list"],
            "app declares_a_list: `loadtest_scenarios` must be a tuple of"
            " tools.loadtest.scenarios.Scenario subclasses, not list",
        ),
        (
            ["declares_a_non_scenario"],
            "app declares_a_non_scenario: `loadtest_scenarios` holds <class 'object'>, which is"
            " not a tools.loadtest.scenarios.Scenario subclass",
        ),
        (
            ["declares_an_abstract_one"],
            "app declares_an_abstract_one: load scenario declares_an_abstract_one.Half does not"
            " define audiences, participants, prepare, stats, verify",
        ),
        (
            ["declares_a_nameless_one"],
            "app declares_a_nameless_one: load scenario declares_a_nameless_one.Nameless has no"
            " `name`",
        ),
    ],
)
def test_a_wrong_declaration_of_scenarios_is_refused_naming_the_app(
    capsys: pytest.CaptureFixture[str], apps: list[str], message: str
) -> None:
    # The declarations are refused whatever is asked for, a built-in scenario included.
    err = refusal(capsys, *(f"--app={a}" for a in apps), "--scenario", "onsale")
    assert f"turnstile: error: loadtest: {message}\n" in err


def test_the_command_line_lists_app() -> None:
    done = subprocess.run(
        turnstile("loadtest", "--help"),
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0
    assert "--app MODULE" in done.stdout
    assert "loadtest_scenarios" in done.stdout
