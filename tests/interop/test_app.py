"""An app (tests/apps/giftcards.py) served by `turnstile serve --app`, driven by the unmodified
`convex` npm client over WebSocket and HTTP across a kill -9 and restart; `turnstile replay
--verify --app` is then clean on its data dir."""

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

APP = ["--app", "tests.apps.giftcards"]


def test_an_app_is_served_to_the_convex_client_across_a_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = mint_token(JWT_SECRET, "clerk-1", "org_interop", ["orders:manage"], 600)
    steps = steps_across_sigkill(
        [str(HERE / "app_scenario.mjs"), ADMIN_KEY, token], data_dir, free_port(), APP
    )
    assert "error" not in steps, steps.get("error")
    assert steps["subscribed"]["value"]["balance"] == 5000
    assert steps["redeemed"]["left"] == 3800
    assert steps["redeemed"]["seenAfterRedeem"]["balance"] == 3800  # read-your-writes
    assert steps["refused"]["refused"]["data"]["code"] == "Conflict"
    # The redemption in flight at the kill took effect exactly once.
    assert steps["in-flight"]["left"] == 3300
    assert steps["in-flight"]["seen"]["balance"] == 3300
    assert [card["balance"] for card in steps["listed"]["listed"]] == [3300]

    verified = subprocess.run(
        [sys.executable, "-m", "tools.cli", "replay", str(data_dir), "--verify", *APP],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
