"""Admin keys and user tokens (HS256 JWTs)."""

from __future__ import annotations

import time

import jwt
import pytest

from domain.identity import ADMIN, Identity
from engine.server.auth import Authenticator, AuthFailed, mint_token

SECRET = "auth-test-secret-that-is-at-least-32-bytes"
auth = Authenticator("the-admin-key", SECRET)


def test_the_admin_key_gives_admin() -> None:
    assert auth.admin("the-admin-key") is ADMIN
    for wrong in ("", "the-admin-ke", "the-admin-key ", "THE-ADMIN-KEY"):
        with pytest.raises(AuthFailed):
            auth.admin(wrong)


def test_a_minted_token_gives_its_identity() -> None:
    token = mint_token(SECRET, "ann", org="org_a", caps=["events:manage", "*"])
    assert auth.user(token) == Identity(
        subject="ann",
        org_id="org_a",
        caps=frozenset({"events:manage", "*"}),
        token_identifier="turnstile|ann",
    )
    assert auth.user(mint_token(SECRET, "bob")) == Identity(
        subject="bob", token_identifier="turnstile|bob"
    )


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "ann", "exp": int(time.time()) + 60, **extra}


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(), "another-secret-that-is-32-bytes-long", algorithm="HS256"),
        # Past the 60 s of leeway every token gets for clock skew.
        jwt.encode(claims(exp=int(time.time()) - 61), SECRET, algorithm="HS256"),
        jwt.encode({"sub": "ann"}, SECRET, algorithm="HS256"),
        jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode(claims(sub=""), SECRET, algorithm="HS256"),
        jwt.encode(claims(org_id=7), SECRET, algorithm="HS256"),
        jwt.encode(claims(caps="events:manage"), SECRET, algorithm="HS256"),
        jwt.encode(claims(caps=["events:manage", "root"]), SECRET, algorithm="HS256"),
        jwt.encode(claims(), "", algorithm="none"),
        "",
        "a.b.c",
        "not a token",
    ],
    ids=[
        "wrong-secret", "expired", "no-exp", "no-sub", "empty-sub", "org-not-string",
        "caps-not-list", "unknown-cap", "alg-none", "empty", "garbage", "spaces",
    ],
)
def test_invalid_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthFailed) as refused:
        auth.user(token)
    assert refused.value.code == "Unauthenticated"


def test_secrets_must_be_long_enough_and_keys_present() -> None:
    with pytest.raises(ValueError):
        Authenticator("key", "short")
    with pytest.raises(ValueError):
        Authenticator("", SECRET)
    with pytest.raises(ValueError):
        mint_token(SECRET, "ann", caps=["root"])
