"""Actions through the unmodified `convex` npm client: `ConvexClient.action` over WebSocket and
`ConvexHttpClient.action` over HTTP, against `turnstile serve --app tests.apps.payments`, whose
action calls a stand-in payment provider on 127.0.0.1 and then records the charge."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine.server.auth import mint_token
from tests.apps.provider import provider_in_thread
from tests.interop.test_convex_client import HERE, JWT_SECRET, Server, pytestmark

__all__ = ["pytestmark"]


def test_the_convex_client_runs_actions_over_websocket_and_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = mint_token(JWT_SECRET, "ann", None, (), 600)
    with provider_in_thread() as provider:
        monkeypatch.setenv("PAYMENTS_PROVIDER_URL", provider.url)
        server = Server(tmp_path / "data", options=["--app", "tests.apps.payments"])
        try:
            done = subprocess.run(
                ["node", str(HERE / "action_scenario.mjs"), server.url, token],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            assert server.stop() == 0
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"step"')]
    steps = {step["step"]: step for step in map(json.loads, lines)}
    assert done.returncode == 0 and "error" not in steps, (steps, done.stderr)
    assert steps["ws"]["result"]["status"] == "pending"
    assert steps["http"]["result"]["status"] == "pending"
    assert sorted(c["amount"] for c in steps["mine"]["mine"]) == [900, 1100]
    assert {c["userId"] for c in steps["mine"]["mine"]} == {"ann"}
    assert steps["failed"]["failed"]["data"]["code"] == "Internal"
    assert [r["body"]["amount"] for r in provider.requests] == [900, 1100]
