"""File storage driven by the unmodified `convex` npm client and the platform's `fetch`, as a
frontend does it (docs/storage.md), against a live `turnstile serve`: the whole flow, and a
kill -9 right after one upload's 200 and in the middle of another."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.server.auth import mint_token
from tests.interop.test_convex_client import (
    ADMIN_KEY,
    HERE,
    JWT_SECRET,
    REPO,
    Server,
    free_port,
    pytestmark,
    steps_across_sigkill,
)

__all__ = ["pytestmark"]

SCENARIO = str(HERE / "storage_scenario.mjs")


def organizer() -> str:
    return mint_token(JWT_SECRET, "organizer-1", "org_gallery", ["events:manage"], 600)


def run(server: Server, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", SCENARIO, server.url, ADMIN_KEY, organizer(), mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (steps, done.stderr)
    return {step["step"]: step for step in steps}


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_upload_url_fetch_event_image_and_download_with_the_convex_client(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        steps = run(server, "flow")
    finally:
        assert server.stop() == 0
    uploaded = steps["uploaded"]
    storage_id = uploaded["storageId"]
    image_url = f"{server.url}/api/storage/{storage_id}"
    assert steps["created"]["imageStorageId"] == storage_id
    assert steps["created"]["imageUrl"] == image_url
    assert steps["http-get"]["imageUrl"] == image_url
    downloaded = steps["downloaded"]
    assert (downloaded["status"], downloaded["type"]) == (200, "image/png")
    assert (downloaded["sha256"], downloaded["size"]) == (uploaded["sha256"], uploaded["size"])
    metadata = steps["metadata"]["metadata"]
    assert metadata["storageId"] == storage_id
    assert (metadata["contentType"], metadata["size"]) == ("image/png", uploaded["size"])
    assert metadata["sha256"] == uploaded["sha256"]
    assert steps["metadata"]["getUrl"] == image_url
    deleted = steps["deleted"]
    assert (deleted["imageUrl"], deleted["status"], deleted["metadata"]) == (None, 404, None)
    assert not (tmp_path / "data" / "storage" / storage_id).exists()


def test_a_kill_after_the_200_keeps_the_file_and_one_mid_upload_leaves_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    steps = steps_across_sigkill(
        [SCENARIO, ADMIN_KEY, organizer(), "sigkill"], data_dir, free_port()
    )
    assert "error" not in steps, steps.get("error")
    acknowledged = steps["acknowledged"]
    storage_id = acknowledged["storageId"]
    # Acknowledged: back byte for byte after the kill, on disk and over HTTP.
    survived = steps["survived"]
    assert survived["metadata"]["sha256"] == acknowledged["sha256"]
    assert survived["download"]["sha256"] == acknowledged["sha256"]
    assert survived["download"]["type"] == "image/jpeg"
    stored = data_dir / "storage" / storage_id
    assert sha256_b64(stored.read_bytes()) == acknowledged["sha256"]
    # Cut off mid-upload: never answered 200, nothing of it kept, and its URL still unused.
    assert "status" not in steps["cut"]["outcome"] or steps["cut"]["outcome"]["status"] != 200
    token = steps["sent"]["token"]
    retried = steps["retried"]
    assert retried["status"] == 200 and retried["answer"] == {"storageId": token}
    assert sha256_b64((data_dir / "storage" / token).read_bytes()) == retried["sha256"]
    assert sorted(p.name for p in (data_dir / "storage").iterdir() if p.is_file()) == sorted(
        [storage_id, token]
    )
    assert not list((data_dir / "storage" / "incoming").iterdir())
    verified = subprocess.run(
        [sys.executable, "-m", "tools.cli", "replay", str(data_dir), "--verify", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
