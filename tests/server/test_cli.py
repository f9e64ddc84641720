"""`turnstile serve` and `turnstile token` as an operator runs them (subprocesses)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from domain.catalog import MODULES
from domain.identity import Identity
from domain.scheduling import AtStart
from engine.server.auth import Authenticator

REPO = Path(__file__).resolve().parent.parent.parent
SECRET = "cli-test-secret-that-is-at-least-32-bytes"
LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")


def turnstile(*args: str) -> list[str]:
    return [sys.executable, "-m", "tools.cli", *args]


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    """Start `turnstile serve --port 0 ARGS`; yield it, its port and the lines before ready."""
    with subprocess.Popen(
        turnstile("serve", "--port", "0", *args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as process:
        assert process.stdout is not None
        lines: list[str] = []
        try:
            for line in process.stdout:
                match = LISTENING.match(line.rstrip("\n"))
                if match:
                    yield process, int(match.group(1)), lines
                    break
                lines.append(line.rstrip("\n"))
            else:
                raise AssertionError(f"no 'listening on' line: {lines}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def request(port: int, method: str, path: str, body: Any = None, auth: str = "") -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": auth} if auth else {}
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, payload, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


#: What a first start writes: one row scheduling each periodic job (an `AtStart` job writes
#: nothing when it finds nothing to do, as on an empty journal).
JOBS = sum(1 for module in MODULES for job in module.jobs if not isinstance(job.schedule, AtStart))
#: And the server's address, which file storage's URLs begin with (docs/storage.md): written
#: when it is not the one recorded.
ORIGIN = 1


def test_serve_prints_where_it_listens_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with serving("--data-dir", data, "--admin-key", "k", "--jwt-secret", SECRET) as (p, port, _):
        # A fresh journal holds only the schedule of each cron job and the server's address.
        assert request(port, "GET", "/health") == (
            200,
            {"status": "ok", "journalSeq": JOBS + ORIGIN},
        )
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0


def test_a_second_serve_on_a_data_dir_in_use_exits_1_and_changes_nothing(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    keys = ("--admin-key", "k", "--jwt-secret", SECRET)
    with serving("--data-dir", data, *keys) as (first, port, _):
        before = request(port, "GET", "/health")
        second = subprocess.run(
            turnstile("serve", "--port", "0", "--data-dir", data, *keys),
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=60,
        )
        assert second.returncode == 1
        assert "listening on" not in second.stdout
        assert second.stderr.strip().splitlines()[-1].startswith("turnstile serve: ")
        assert "is in use" in second.stderr
        assert request(port, "GET", "/health") == before  # the first goes on, unchanged
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0


def test_dev_keys_and_demo_data(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    # One address for both starts (each picks a free port): the second writes nothing.
    public = ("--public-url", "http://demo.test:3210")
    with serving("--data-dir", data, "--demo", *public) as (process, port, lines):
        printed = dict(line.split(": ", 1) for line in lines if ": " in line)
        token = printed["dev user token (sub=dev-user, 7 days)"]
        assert printed["dev admin key"] and printed["dev jwt secret"]
        loaded = request(port, "GET", "/health")[1]["journalSeq"]
        assert loaded > JOBS
        call = {"path": "events:list", "args": [{}], "format": "convex_encoded_json"}
        status, body = request(port, "POST", "/api/query", call, f"Bearer {token}")
        assert status == 200 and [e["orgId"] for e in body["value"]] == ["org_demo"]
        status, _ = request(port, "POST", "/api/query", call, f"Convex {printed['dev admin key']}")
        assert status == 200
        listing = {
            "path": "customers:list",
            "args": [{"orgId": "org_demo"}],
            "format": "convex_encoded_json",
        }
        status, body = request(
            port, "POST", "/api/query", listing, f"Convex {printed['dev admin key']}"
        )
        assert status == 200 and len(body["value"]["page"]) == 3
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    # --demo loads nothing on a journal that is not empty
    with serving("--data-dir", data, "--demo", *public) as (process, port, lines):
        assert request(port, "GET", "/health")[1]["journalSeq"] == loaded
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_token_prints_a_token_the_server_accepts() -> None:
    done = subprocess.run(
        turnstile(
            "token",
            "--jwt-secret",
            SECRET,
            "--sub",
            "ann",
            "--org",
            "org_a",
            "--cap",
            "events:manage",
            "--cap",
            "tickets:checkin",
            "--ttl",
            "60",
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    identity = Authenticator("k", SECRET).user(done.stdout.strip())
    assert identity == Identity(
        subject="ann",
        org_id="org_a",
        caps=frozenset({"events:manage", "tickets:checkin"}),
        token_identifier="turnstile|ann",
    )


def test_token_refuses_unknown_capabilities() -> None:
    done = subprocess.run(
        turnstile("token", "--jwt-secret", SECRET, "--sub", "ann", "--cap", "root"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "root" in done.stderr
