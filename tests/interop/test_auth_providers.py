"""The unmodified `convex` npm client signed in with an identity provider's RS256 tokens
(`turnstile serve --auth-config`), across the token refreshes it makes by itself, and signed out
by a refresh the server refuses (docs/reference/identity.md, docs/reference/wire.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.interop.test_convex_client import ADMIN_KEY, HERE, Server
from tests.server.identity_provider import LocalProvider

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (HERE / "node_modules" / "convex").exists(),
    reason="needs node and `npm ci --prefix tests/interop` (./dev test does both)",
)


def run_auth_scenario(server: Server, idp: LocalProvider, tmp_path: Path) -> dict[str, Any]:
    pem = tmp_path / "provider-key.pem"
    pem.write_bytes(
        idp.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    done = subprocess.run(
        [
            "node",
            str(HERE / "auth_scenario.mjs"),
            server.url,
            ADMIN_KEY,
            idp.issuer,
            idp.kid,
            str(pem),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    steps = {
        step["step"]: step
        for step in (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))
    }
    assert done.returncode == 0 and "error" not in steps, (steps, done.stderr)
    return steps


def test_convex_client_refreshes_provider_tokens_and_is_signed_out_by_a_refused_one(
    tmp_path: Path,
) -> None:
    with LocalProvider() as idp:
        config = tmp_path / "auth.config.json"
        config.write_text(json.dumps(idp.auth_config(application_id="convex")))
        server = Server(tmp_path / "data", options=["--auth-config", str(config)])
        try:
            steps = run_auth_scenario(server, idp, tmp_path)
        finally:
            assert server.stop() == 0

    # Signed in: the cached token, then at once a fresh one (Convex's client always refetches).
    # (the client reports `true` again for each confirmed refresh)
    assert set(steps["signed-in"]["authChanges"]) == {True}
    assert steps["signed-in"]["fetches"][:2] == [False, True]

    # Identity-dependent results and mutations, across refreshes on the same connection.
    assert steps["joined"]["joined"]["status"] == "offered"
    assert steps["joined"]["seenAfterJoin"]["status"] == "offered"  # read-your-writes
    purchased = steps["purchased"]
    assert purchased["refreshes"] >= 2
    assert [ticket["status"] for ticket in purchased["seenTickets"]] == ["valid"]
    assert purchased["seenPosition"]["status"] == "purchased"
    assert purchased["connectionCount"] == 1  # a refresh is an Authenticate, not a reconnect
    refunded = steps["refunded"]
    assert [ticket["status"] for ticket in refunded["tickets"]] == ["refunded"]
    assert set(refunded["authChanges"]) == {True}  # never signed out by a refresh
    assert refunded["connectionCount"] == 1

    # A refresh the server refuses: the client retries, then signs out; its query now runs for
    # nobody and fails.
    signed_out = steps["signed-out"]
    assert signed_out["authChanges"] == [False]
    assert signed_out["last"]["error"]["code"] == "Unauthenticated"

    # The other client saw a later change on its one connection, still signed in.
    other = steps["other"]
    assert other["seen"]["activeOffers"] == 1
    assert other["connectionCount"] == 1
