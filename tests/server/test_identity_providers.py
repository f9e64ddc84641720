"""Tokens of identity providers (RS256, ES256) verified against keys served on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from domain.identity import Identity
from engine.server.auth import Authenticator, AuthFailed
from engine.server.identity_providers import AuthConfigError, parse_auth_config
from tests.server.identity_provider import LocalProvider, new_private_key

SECRET = "identity-provider-test-secret-32-bytes!"


def _authenticator(config: object) -> Authenticator:
    return Authenticator("admin", SECRET, parse_auth_config(config))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
@pytest.mark.parametrize("oidc", [True, False])
async def test_a_providers_token_gives_its_identity(algorithm: str, oidc: bool) -> None:
    with LocalProvider(algorithm) as idp:
        auth = _authenticator(idp.auth_config(oidc=oidc))
        signed = await auth.authenticate(idp.token("ann", org="org_a", caps=["events:manage"]))
        assert signed.identity == Identity(
            subject="ann",
            org_id="org_a",
            caps=frozenset({"events:manage"}),
            token_identifier=f"{idp.issuer}|ann",
        )
        # The keys are cached: the next token needs no fetch.
        fetched = len(idp.requests)
        await auth.authenticate(idp.token("bo"))
        assert len(idp.requests) == fetched


async def test_clerks_organization_claim_is_read() -> None:
    with LocalProvider() as idp:
        auth = _authenticator(idp.auth_config())
        signed = await auth.authenticate(idp.token("ann", o={"id": "org_clerk", "rol": "admin"}))
        assert signed.identity.org_id == "org_clerk"


async def test_a_data_uri_key_set_needs_no_fetch() -> None:
    with LocalProvider() as idp:
        jwks = base64.b64encode(json.dumps({"keys": idp.published}).encode()).decode()
        config = {
            "providers": [
                {
                    "type": "customJwt",
                    "issuer": idp.issuer,
                    "jwks": f"data:application/json;base64,{jwks}",
                    "algorithm": "RS256",
                    "applicationID": "convex",
                }
            ]
        }
        auth = _authenticator(config)
        assert auth.user(idp.token("ann")).subject == "ann"  # no fetch, not even async
        assert idp.requests == []


async def test_forged_and_wrong_tokens_are_refused() -> None:
    with LocalProvider() as idp:
        auth = _authenticator(idp.auth_config())
        other = new_private_key("RS256")  # published nowhere; signs with the same kid
        public_pem = idp.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        forged_hs256 = _sign_hs256(
            {"iss": idp.issuer, "sub": "ann", "exp": 2**31, "aud": "convex"},
            public_pem,
            kid=idp.kid,
        )
        cases = [
            idp.token("ann", aud="someone-else"),
            idp.token("ann", aud=None),
            idp.token("ann", ttl=-120),
            idp.token("ann", nbf=2**31),
            idp.token("ann", key=other),
            jwt.encode(
                {"iss": "http://127.0.0.1:9", "sub": "ann", "exp": 2**31},
                other,
                algorithm="RS256",
            ),
            jwt.encode(
                {"iss": idp.issuer, "sub": "ann", "exp": 2**31, "aud": "convex"},
                "",
                algorithm="none",
            ),
            forged_hs256,  # the provider's public key used as an HS256 secret
        ]
        for token in cases:
            with pytest.raises(AuthFailed):
                await auth.authenticate(token)


def _sign_hs256(claims: dict[str, object], secret: bytes, *, kid: str) -> str:
    """HS256 by hand: PyJWT refuses to use a PEM public key as an HMAC secret."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{part(signature)}"


def test_a_bad_auth_config_is_refused_naming_the_entry() -> None:
    for config, message in [
        ({}, "providers"),
        ({"providers": [{"domain": "https://x.example"}]}, "needs its applicationID"),
        ({"providers": [{"domain": "ftp://x", "applicationID": "a"}]}, "is not an http"),
        (
            {
                "providers": [
                    {"type": "customJwt", "issuer": "i", "jwks": "data:x", "algorithm": "RS256"}
                ]
            },
            "base64",
        ),
        (
            {
                "providers": [
                    {"type": "customJwt", "issuer": "i", "jwks": "https://k", "algorithm": "HS256"}
                ]
            },
            "algorithm must be one of",
        ),
        (
            {"providers": [{"domain": "https://x", "applicationID": "a", "extra": 1}]},
            "unknown fields",
        ),
    ]:
        with pytest.raises(AuthConfigError, match=message):
            parse_auth_config(config)


async def test_an_oidc_domain_is_matched_exactly_as_written_trailing_slash_and_all() -> None:
    # Auth0's issuer ends in "/", Clerk's does not: each provider's `iss` is its domain as written.
    with LocalProvider() as idp:
        auth = _authenticator(
            {"providers": [{"domain": f"{idp.issuer}/", "applicationID": "convex"}]}
        )
        signed = await auth.authenticate(idp.token("ann", iss=f"{idp.issuer}/"))
        assert signed.identity.token_identifier == f"{idp.issuer}/|ann"
        with pytest.raises(AuthFailed):
            await auth.authenticate(idp.token("ann"))  # no slash: another issuer
