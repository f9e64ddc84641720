"""The unmodified `convex` npm client against a live `turnstile serve` (docs/reference/wire.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
ADMIN_KEY = "interop-admin-key"
JWT_SECRET = "interop-jwt-secret-of-enough-length"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (HERE / "node_modules" / "convex").exists(),
    reason="needs node and `npm ci --prefix tests/interop` (./dev test does both)",
)


class Server:
    """`turnstile serve` in a child process; `options` are further command-line options
    (`["--app", "tests.apps.giftcards"]`)."""

    def __init__(self, data_dir: Path, port: int = 0, options: Sequence[str] = ()) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--admin-key",
                ADMIN_KEY,
                "--jwt-secret",
                JWT_SECRET,
                *options,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("listening on "):
                self.url = line.split()[-1].strip()
                break
        else:
            _, errors = self.process.communicate(timeout=30)  # also closes the pipes
            raise AssertionError(f"server did not start: {errors}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=30)  # also closes the pipes
        return self.process.returncode


def user_token(sub: str) -> str:
    from engine.server.auth import mint_token

    return mint_token(JWT_SECRET, sub, ttl_seconds=600)


def run_scenario(server: Server, user: str, scenario: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            "node",
            str(HERE / "scenario.mjs"),
            server.url,
            ADMIN_KEY,
            user_token(user),
            user,
            scenario,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (steps, done.stderr)
    return steps


def test_convex_client_subscribes_mutates_and_reads_its_writes(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        steps = {step["step"]: step for step in run_scenario(server, "ann", "basic")}
    finally:
        assert server.stop() == 0
    assert steps["subscribed"]["value"]["remainingTickets"] == 2
    assert steps["joined"]["joined"]["status"] == "offered"
    assert steps["joined"]["seenAfterJoin"]["activeOffers"] == 1  # read-your-writes
    assert steps["purchased"]["seenAfterPurchase"]["purchasedCount"] == 1
    refused = steps["refused"]["refused"]
    assert refused is not None and refused["data"]["code"] == "Forbidden"
    assert steps["http-query"]["value"]["purchasedCount"] == 1


def restart(data_dir: Path, port: int, options: Sequence[str] = ()) -> Server:
    """Start again on the same port (the old socket may linger a moment after SIGKILL)."""
    for attempt in range(10):
        try:
            return Server(data_dir, port, options)
        except AssertionError:
            if attempt == 9:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def steps_across_sigkill(
    node_args: Sequence[str], data_dir: Path, port: int, options: Sequence[str] = ()
) -> dict[str, Any]:
    """Run a node scenario against a server on `port`; when it prints the step "sent", kill
    the server with SIGKILL and start it again on the same port (the client must reconnect by
    itself). The scenario's steps by name, once it printed "done" or "error"."""
    server = Server(data_dir, port, options)
    node = subprocess.Popen(
        ["node", *node_args[:1], server.url, *node_args[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    steps: dict[str, Any] = {}
    try:
        assert node.stdout is not None
        for line in node.stdout:
            if not line.startswith("{"):
                continue  # the convex client's own log lines
            step = json.loads(line)
            steps[step["step"]] = step
            if step["step"] == "sent":
                server.process.kill()  # SIGKILL: no goodbye to anyone
                server.process.communicate(timeout=30)
                server = restart(data_dir, port, options)
            if step["step"] in ("done", "error"):
                break
        node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
        assert server.stop() == 0
    return steps


def test_convex_client_survives_sigkill_and_runs_the_in_flight_mutation_once(
    tmp_path: Path,
) -> None:
    steps = steps_across_sigkill(
        [str(HERE / "scenario.mjs"), ADMIN_KEY, user_token("ann"), "ann", "reconnect"],
        tmp_path / "data",
        free_port(),
    )
    assert "error" not in steps, steps.get("error")
    assert steps["joined"]["joined"]["status"] == "offered"  # not a Conflict from a 2nd run
    assert steps["joined"]["seenAfterJoin"]["activeOffers"] == 1
    assert steps["after"]["value"]["activeOffers"] == 1  # executed exactly once
