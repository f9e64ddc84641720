"""The platform app (tests/apps/platform) served by `turnstile serve --app`, driven by the
unmodified `convex` npm client over WebSocket and HTTP across a kill -9 and restart; `turnstile
replay --verify --app` is then clean on its data dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.server.auth import mint_token
from tests.interop.test_convex_client import (
    ADMIN_KEY,
    HERE,
    JWT_SECRET,
    REPO,
    free_port,
    pytestmark,
    steps_across_sigkill,
)

__all__ = ["pytestmark"]

APP = ["--app", "tests.apps.platform"]


def test_the_platform_app_is_served_to_the_convex_client_across_a_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # No capabilities in the tokens: the users' roles in org_live grant them.
    owner = mint_token(JWT_SECRET, "ann", "org_live", [], 600)
    door = mint_token(JWT_SECRET, "dee", "org_live", [], 600)
    steps = steps_across_sigkill(
        [str(HERE / "platform_scenario.mjs"), ADMIN_KEY, owner, door], data_dir, free_port(), APP
    )
    assert "error" not in steps, steps.get("error")
    made = steps["bootstrapped"]["made"]
    assert steps["set-up"]["me"]["memberId"] == made["ownerMemberId"]
    assert steps["set-up"]["me"]["role"] == "owner"
    vip = {t["name"]: t for t in steps["subscribed"]["tiers"]["tiers"]}["vip"]
    assert (vip["capacity"], vip["remaining"]) == (2, 2)

    placed = steps["placed"]
    assert placed["placed"]["total"] == 10000 and len(placed["placed"]["passIds"]) == 2
    seen = {t["name"]: t for t in placed["seenAfterPlace"]["tiers"]}
    assert seen["vip"]["remaining"] == 0  # read-your-writes
    sold_out = steps["sold-out"]["refused"]["data"]
    assert (sold_out["code"], sold_out["remaining"]) == ("Conflict", 0)

    checked = steps["checked-in"]
    assert checked["door"]["capabilities"] == ["tickets:checkin"]
    assert checked["refusedSale"]["data"]["code"] == "Forbidden"
    assert checked["secondScan"]["data"]["code"] == "Conflict"  # over HTTP
    assert checked["secondScan"]["data"]["checkInId"] == checked["checkInId"]

    # The purchase in flight at the kill took effect exactly once.
    in_flight = steps["in-flight"]
    assert len(in_flight["placed"]["passIds"]) == 3
    general = {t["name"]: t for t in in_flight["seen"]["tiers"]}["general"]
    assert (general["sold"], general["remaining"]) == (3, 2)
    after = steps["after"]
    assert after["thirdScan"]["data"]["checkInId"] == checked["checkInId"]
    assert sorted((o["tier"], o["quantity"]) for o in after["orders"]) == [
        ("general", 3),
        ("vip", 2),
    ]
    assert [r["deploymentId"] for r in after["releases"]] == ["dep-1"]

    verified = subprocess.run(
        [sys.executable, "-m", "tools.cli", "replay", str(data_dir), "--verify", *APP],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
