"""Identity-provider tokens against a live server: over the sync WebSocket and over HTTP, the
function sees the token's user (its `tokenIdentifier` too); every forged or wrong token is
refused and leaves no session; keys rotate, a provider may be down or stall, and `/metrics`
and the log say so.

Rate limits are passed in virtual time: `mock_clock` runs at the wall clock's rate (`rate = 1`)
and jumps over `REFRESH_SECONDS` and cache lifetimes. The key fetches themselves run in real
worker threads against the provider on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives import serialization

from engine.server import identity_providers
from engine.server.identity_providers import MIN_CACHE_SECONDS, REFRESH_SECONDS
from tests.server.identity_provider import (
    LocalProvider,
    http_call,
    new_private_key,
    open_sessions,
    open_sync,
    refused,
    scrape,
    serve_trusting,
    signed_in,
    wait_for_requests,
)

#: An OIDC provider is fetched as two documents: its discovery document, then its JWKS.
OIDC_FETCH = 2


def part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_hs256(claims: dict[str, Any], secret: bytes, *, kid: str) -> str:
    """HS256 by hand: PyJWT refuses to use a PEM public key as an HMAC secret."""
    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{part(signature)}"


def forged_tokens(idp: LocalProvider) -> dict[str, str]:
    """Tokens naming `idp`'s issuer that must each be refused, by what is wrong with them."""
    claims = {"iss": idp.issuer, "sub": "ann", "exp": 2**31, "aud": "convex"}
    public_pem = idp.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "wrong aud": idp.token("ann", aud="someone-else"),
        "no aud": idp.token("ann", aud=None),
        "wrong iss": jwt.encode(
            {**claims, "iss": idp.issuer + "/other"},
            idp.private_key,
            algorithm=idp.algorithm,
            headers={"kid": idp.kid},
        ),
        "expired": idp.token("ann", ttl=-120),
        "not yet valid": idp.token("ann", nbf=2**31),
        "issued in the future": idp.token("ann", iat=2**31),
        "another key with the same kid": idp.token("ann", key=new_private_key(idp.algorithm)),
        "alg none": jwt.encode(claims, "", algorithm="none", headers={"kid": idp.kid}),
        "HS256 with the public key as secret": sign_hs256(claims, public_pem, kid=idp.kid),
        "no sub": jwt.encode(
            {k: v for k, v in claims.items() if k != "sub"},
            idp.private_key,
            algorithm=idp.algorithm,
            headers={"kid": idp.kid},
        ),
    }


def identity_of(idp: LocalProvider, sub: str, org: str | None = None) -> dict[str, Any]:
    return {
        "subject": sub,
        "tokenIdentifier": f"{idp.issuer}|{sub}",
        "orgId": org,
        "isAdmin": False,
    }


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_valid_token_signs_in_over_websocket_and_http(
    algorithm: str, tmp_path: Path
) -> None:
    with LocalProvider(algorithm) as idp:
        async with serve_trusting(idp, tmp_path / "data") as (server, _):
            ann = idp.token("ann", org="org_a")
            async with open_sync(server) as client:
                await signed_in(client, ann, "ann")
                assert client.values[0] == identity_of(idp, "ann", "org_a")
                assert len(idp.requests) == OIDC_FETCH
                # A query whose answer depends on the user: ann may read her own tickets.
                await client.subscribe(1, "events:getUserTickets", {"userId": "ann"})
                await client.value_of(1, [])
                # A mutation sees the same identity, tokenIdentifier included.
                written = await client.mutation("signins:write", {"text": "hello"})
                assert written["success"], written
                note = written["result"]
                assert note["tokenIdentifier"] == f"{idp.issuer}|ann"
            # Over HTTP: the same identity, and the cached key (no further fetch).
            whoami = await http_call(server, "query", "signins:whoami", {}, ann)
            assert whoami.status == 200
            assert whoami.json()["value"] == identity_of(idp, "ann", "org_a")
            mine = await http_call(server, "query", "signins:note", {"noteId": note["_id"]}, ann)
            assert mine.json()["value"] == {
                "_id": note["_id"],
                "text": "hello",
                "tokenIdentifier": f"{idp.issuer}|ann",
            }
            bo = idp.token("bo")
            theirs = await http_call(server, "query", "signins:note", {"noteId": note["_id"]}, bo)
            assert theirs.status == 200 and theirs.json()["value"] is None
            tickets = await http_call(
                server, "query", "events:getUserTickets", {"userId": "ann"}, bo
            )
            assert tickets.status == 560 and tickets.json()["errorData"]["code"] == "Forbidden"
            wrote = await http_call(server, "mutation", "signins:write", {"text": "hi"}, bo)
            assert wrote.json()["value"]["tokenIdentifier"] == f"{idp.issuer}|bo"
            # A second session's Authenticate adds no fetch: the key is cached.
            async with open_sync(server) as again:
                await signed_in(again, idp.token("cy"), "cy")
            assert len(idp.requests) == OIDC_FETCH


async def test_every_forged_or_wrong_token_is_refused_and_leaves_no_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalProvider() as idp:
        async with serve_trusting(idp, tmp_path / "data") as (server, _), open_sync(server) as ann:
            await signed_in(ann, idp.token("ann"), "ann")
            committed = server.engine.committed_seq
            for case, token in forged_tokens(idp).items():
                async with open_sync(server) as client:
                    error = await refused(client, token)
                assert error, case
                assert await open_sessions(server) == 1, case
                reply = await http_call(server, "mutation", "signins:write", {"text": case}, token)
                assert reply.status == 401, case
                body = reply.json()
                assert body["status"] == "error", case
                assert body["errorData"]["code"] == "Unauthenticated", case
                assert body["errorMessage"], case
            # Nothing was written by any of them; the signed-in session is still served.
            assert server.engine.committed_seq == committed
            written = await ann.mutation("signins:write", {"text": "still here"})
            assert written["success"], written
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def test_a_key_published_after_start_is_picked_up_within_the_rate_limit(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.rate = 1.0
    with LocalProvider() as idp:
        async with serve_trusting(idp, tmp_path / "data") as (server, _):
            old = idp.token("ann")
            async with open_sync(server) as ann:
                await signed_in(ann, old, "ann")
            idp.rotate(keep_old=True)
            new = idp.token("bo")
            # The keys were fetched moments ago: the new kid is refused without a fetch.
            async with open_sync(server) as early:
                await refused(early, new)
            assert len(idp.requests) == OIDC_FETCH
            mock_clock.jump(REFRESH_SECONDS)
            async with open_sync(server) as bo:
                await signed_in(bo, new, "bo")
            assert len(idp.requests) == 2 * OIDC_FETCH
            # Both keys are known now; neither needs another fetch.
            async with open_sync(server) as cy:
                await signed_in(cy, idp.token("cy"), "cy")
            assert (await http_call(server, "query", "signins:whoami", {}, old)).status == 200
            assert len(idp.requests) == 2 * OIDC_FETCH


async def test_a_removed_key_stops_working_once_the_cache_is_refreshed(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.rate = 1.0
    with LocalProvider(max_age=int(MIN_CACHE_SECONDS)) as idp:
        async with serve_trusting(idp, tmp_path / "data") as (server, auth):
            old = idp.token("ann")
            assert (await http_call(server, "query", "signins:whoami", {}, old)).status == 200
            idp.rotate()  # the old key is no longer published
            new = idp.token("bo")
            # Within its cache lifetime the old key still works.
            assert (await http_call(server, "query", "signins:whoami", {}, old)).status == 200
            mock_clock.jump(MIN_CACHE_SECONDS + 1)
            # Past it, the old key is answered from the cache once while the refresh runs in
            # the background; a token of an unknown kid waits for that refresh.
            assert (await http_call(server, "query", "signins:whoami", {}, old)).status == 200
            unknown = idp.token("cy", kid="never-published")
            assert (await http_call(server, "query", "signins:whoami", {}, unknown)).status == 401
            assert len(idp.requests) == 2 * OIDC_FETCH
            assert auth.providers[idp.issuer].keys == 1
            assert (await http_call(server, "query", "signins:whoami", {}, old)).status == 401
            async with open_sync(server) as client:
                await refused(client, old)
            async with open_sync(server) as bo:
                await signed_in(bo, new, "bo")
            assert len(idp.requests) == 2 * OIDC_FETCH


async def test_a_provider_down_at_start_is_refused_quickly_logged_and_shown_in_metrics(
    tmp_path: Path, mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    mock_clock.rate = 1.0
    caplog.set_level(logging.INFO, logger="turnstile.auth")
    with LocalProvider() as idp:
        idp.down = True
        async with serve_trusting(idp, tmp_path / "data") as (server, _):
            token = idp.token("ann")
            async with open_sync(server) as client:
                await refused(client, token)
            assert len(idp.requests) == 1  # the discovery document answered 503
            # More tokens, over both transports: no fetch storm, each refused at once.
            for _ in range(5):
                reply = await http_call(server, "query", "signins:whoami", {}, token)
                assert reply.status == 401
            async with open_sync(server) as client:
                await refused(client, idp.token("bo"))
            assert len(idp.requests) == 1
            issuer = (("issuer", idp.issuer),)
            metrics = await scrape(server)
            assert metrics[("turnstile_identity_provider_up", issuer)] == 0.0
            assert metrics[("turnstile_identity_provider_keys", issuer)] == 0.0
            assert metrics[("turnstile_identity_provider_fetches_total", issuer)] == 1.0
            assert metrics[("turnstile_identity_provider_fetch_failures_total", issuer)] == 1.0
            [warning] = [r for r in caplog.records if r.name == "turnstile.auth"]
            assert warning.levelno == logging.WARNING
            said = warning.getMessage()
            assert idp.issuer in said and "503" in said and "keeping 0 known keys" in said
            assert warning.exc_info is None
            # Back up: after REFRESH_SECONDS the next token fetches the keys again.
            idp.down = False
            mock_clock.jump(REFRESH_SECONDS)
            async with open_sync(server) as client:
                await signed_in(client, token, "ann")
            metrics = await scrape(server)
            assert metrics[("turnstile_identity_provider_up", issuer)] == 1.0
            assert metrics[("turnstile_identity_provider_keys", issuer)] == 1.0
            assert metrics[("turnstile_identity_provider_fetches_total", issuer)] == 2.0
            assert metrics[("turnstile_identity_provider_fetch_failures_total", issuer)] == 1.0
            recovered = caplog.records[-1]
            assert recovered.levelno == logging.INFO
            assert idp.issuer in recovered.getMessage()
            assert "reachable again" in recovered.getMessage()


async def test_a_provider_down_mid_run_keeps_known_keys_working(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.rate = 1.0
    with LocalProvider(max_age=int(MIN_CACHE_SECONDS)) as idp:
        async with (
            serve_trusting(idp, tmp_path / "data") as (server, auth),
            open_sync(server) as ann,
        ):
            await signed_in(ann, idp.token("ann"), "ann")
            idp.down = True
            mock_clock.jump(MIN_CACHE_SECONDS + 1)
            # The cache has expired and the provider is down: the known key still works
            # (its refresh fails in the background) ...
            known = idp.token("bo")
            assert (await http_call(server, "query", "signins:whoami", {}, known)).status == 200
            # ... an unknown kid is refused (after that one refresh, with no other fetch).
            for n in range(10):
                unknown = idp.token("eve", kid=f"unknown-{n}")
                reply = await http_call(server, "query", "signins:whoami", {}, unknown)
                assert reply.status == 401
            assert len(idp.requests) == OIDC_FETCH + 1
            status = auth.providers[idp.issuer]
            assert (status.up, status.failures, status.keys) == (False, 1, 1)
            async with open_sync(server) as bo:
                await signed_in(bo, known, "bo")
            written = await ann.mutation("signins:write", {"text": "while it is down"})
            assert written["success"], written
            # At most one fetch per REFRESH_SECONDS: the next one comes only after it.
            mock_clock.jump(REFRESH_SECONDS)
            for n in range(3):
                unknown = idp.token("eve", kid=f"later-{n}")
                reply = await http_call(server, "query", "signins:whoami", {}, unknown)
                assert reply.status == 401
            assert len(idp.requests) == OIDC_FETCH + 2
            assert (await http_call(server, "query", "signins:whoami", {}, known)).status == 200


async def test_a_session_waiting_for_a_fetch_holds_up_no_other(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.rate = 1.0
    with LocalProvider() as idp:
        async with serve_trusting(idp, tmp_path / "data") as (server, _):
            old = idp.token("ann")
            async with open_sync(server) as ann, open_sync(server) as bo, open_sync(server) as cy:
                await signed_in(ann, old, "ann")
                idp.rotate(keep_old=True)
                mock_clock.jump(REFRESH_SECONDS)
                idp.hold()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(signed_in, bo, idp.token("bo"), "bo")
                    await wait_for_requests(idp, OIDC_FETCH + 1)  # bo's fetch is under way
                    # A third session needing the same new key joins that fetch ...
                    nursery.start_soon(signed_in, cy, idp.token("cy"), "cy")
                    # ... while everyone else is served: a signed-in session's mutation, an
                    # HTTP call with a known key, an anonymous one.
                    written = await ann.mutation("signins:write", {"text": "not waiting"})
                    assert written["success"], written
                    reply = await http_call(server, "query", "signins:whoami", {}, old)
                    assert reply.json()["value"]["subject"] == "ann"
                    anonymous = await http_call(server, "query", "signins:whoami", {})
                    assert anonymous.json()["value"] is None
                    assert bo.values.get(0) is None and cy.values.get(0) is None
                    idp.release()
            assert len(idp.requests) == 2 * OIDC_FETCH


async def test_a_stalled_provider_fails_the_fetch_and_the_session_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(identity_providers, "FETCH_TIMEOUT", 0.2)
    with LocalProvider() as idp:
        idp.hold()  # accepts, reads the request, never answers
        async with serve_trusting(idp, tmp_path / "data") as (server, auth):
            async with open_sync(server) as other:
                await other.subscribe(0, "signins:whoami", {})
                await other.value_of(0, None)
                async with open_sync(server) as client:
                    error = await refused(client, idp.token("ann"))
                assert idp.issuer in error
                # The other session is still served.
                await other.subscribe(1, "events:getUserTickets", {"userId": "ann"})
                failed = await other.until("Transition")
                assert failed["modifications"][0]["type"] == "QueryFailed"
            assert auth.providers[idp.issuer].failures == 1
            assert "timed out" in auth.providers[idp.issuer].last_error
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_provider_dripping_its_headers_is_cut_off_at_the_fetch_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each byte of the head arrives well within a read timeout, so only a bound on the whole
    # exchange ends the fetch: before it, the session would wait for the whole drip.
    monkeypatch.setattr(identity_providers, "FETCH_TIMEOUT", 0.3)
    with LocalProvider() as idp:
        idp.drip = 0.02
        async with serve_trusting(idp, tmp_path / "data") as (server, auth):
            async with open_sync(server) as client:
                error = await refused(client, idp.token("ann"))
            assert idp.issuer in error
            assert auth.providers[idp.issuer].failures == 1
            assert "timed out" in auth.providers[idp.issuer].last_error


async def test_each_provider_is_reported_by_issuer(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.rate = 1.0
    with LocalProvider("RS256") as rsa, LocalProvider("ES256") as ec:
        config = {
            "providers": [
                *rsa.auth_config()["providers"],
                *ec.auth_config(application_id="turnstile", oidc=False)["providers"],
            ]
        }
        async with serve_trusting(rsa, tmp_path / "data", config) as (server, _):
            async with open_sync(server) as ann, open_sync(server) as bo:
                await signed_in(ann, rsa.token("ann"), "ann")
                await signed_in(bo, ec.token("bo", aud="turnstile"), "bo")
                assert bo.values[0]["tokenIdentifier"] == f"{ec.issuer}|bo"
            ec.down = True
            ec.rotate()
            mock_clock.jump(REFRESH_SECONDS)
            cy = ec.token("cy", aud="turnstile")
            assert (await http_call(server, "query", "signins:whoami", {}, cy)).status == 401
            metrics = await scrape(server)
            # customJwt: one document per fetch (its JWKS); OIDC: two.
            assert (len(rsa.requests), len(ec.requests)) == (OIDC_FETCH, 2)
            for idp, up, fetches, failures in [(rsa, 1.0, 1.0, 0.0), (ec, 0.0, 2.0, 1.0)]:
                issuer = (("issuer", idp.issuer),)
                assert metrics[("turnstile_identity_provider_up", issuer)] == up
                assert metrics[("turnstile_identity_provider_keys", issuer)] == 1.0
                assert metrics[("turnstile_identity_provider_fetches_total", issuer)] == fetches
                failed = metrics[("turnstile_identity_provider_fetch_failures_total", issuer)]
                assert failed == failures
