"""Development keys and tokens of a custom JWT issuer, and an example auth config
(docs/identity-providers.md).

A development issuer is a private key in a PEM file, its public half published to the server
as a customJwt provider whose `jwks` is a `data:` URI (so the server fetches nothing), and
tokens signed with it. The algorithm follows the key: an RSA key signs RS256, a P-256 key
ES256 (the two `engine.server.identity_providers.ALGORITHMS`).

- `new_private_key(algorithm)` makes a key; `write_private_key(path, key)` writes it as
  unencrypted PKCS#8 PEM, creating the file with mode 0600 and never replacing one that exists;
  `load_private_key(path)` reads one back (`DevKeyError` naming the fault).
- `dev_auth_config(key, ...)` is the auth config that accepts the key's tokens;
  `mint_dev_token(key, ...)` is such a token.
- `EXAMPLE_AUTH_CONFIG` is an auth config with one entry of each kind, with placeholders.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from domain.identity import CAPABILITIES

#: What a development token's header names its key by, and its `iss` and `aud`, by default.
DEFAULT_KID = "dev"
DEFAULT_ISSUER = "https://dev-idp.turnstile.invalid"
DEFAULT_AUDIENCE = "convex"
RSA_KEY_BITS = 2048

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

EXAMPLE_AUTH_CONFIG: dict[str, Any] = {
    "providers": [
        # Clerk: the Frontend API URL; a JWT template named "convex" sets aud.
        {"domain": "https://YOUR-FRONTEND-API.clerk.accounts.dev", "applicationID": "convex"},
        # Auth0: the tenant's domain with its trailing "/", exactly as Auth0's tokens' iss.
        {"domain": "https://YOUR-TENANT.us.auth0.com/", "applicationID": "YOUR-AUTH0-CLIENT-ID"},
        # Any OIDC provider: its issuer, whose /.well-known/openid-configuration names jwks_uri.
        {"domain": "https://idp.example.com", "applicationID": "turnstile"},
        # A custom issuer: its key set's URL (or a data: URI, as `turnstile token --new-key`).
        {
            "type": "customJwt",
            "issuer": "https://auth.example.com",
            "jwks": "https://auth.example.com/.well-known/jwks.json",
            "algorithm": "ES256",
            "applicationID": "turnstile",
        },
    ]
}


class DevKeyError(ValueError):
    """A development key cannot be made, read or used; the message says why."""


def new_private_key(algorithm: str) -> PrivateKey:
    """A fresh key for `algorithm` (RS256: RSA 2048 bits; ES256: P-256)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise DevKeyError(f"the algorithm must be RS256 or ES256, not {algorithm!r}")


def algorithm_of(key: PrivateKey) -> str:
    """The algorithm `key` signs with: RS256 for RSA, ES256 for P-256."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise DevKeyError(f"an EC key must be on P-256 for ES256, not {key.curve.name}")


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write `key` to `path` as unencrypted PKCS#8 PEM. The file is created with mode 0600
    (whatever the umask); an existing file is left as it is (`DevKeyError`)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DevKeyError(f"{path} exists; a new key is never written over a file") from None
    except OSError as exc:
        raise DevKeyError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)
        file.write(pem)


def load_private_key(path: Path) -> PrivateKey:
    """The private key in the PEM file `path` (RSA or P-256, unencrypted)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DevKeyError(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DevKeyError(f"{path} is an encrypted key; give an unencrypted one") from None
    except ValueError:
        raise DevKeyError(f"{path} holds no PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise DevKeyError(f"{path} holds a {type(key).__name__}; give an RSA or P-256 key")
    algorithm_of(key)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < RSA_KEY_BITS:
        raise DevKeyError(f"{path} holds an RSA key of {key.key_size} bits; use {RSA_KEY_BITS}+")
    return key


def public_jwks(key: PrivateKey, kid: str) -> dict[str, Any]:
    """The JWKS (`{"keys": [...]}`) that publishes the public half of `key` as `kid`."""
    algorithm = algorithm_of(key)
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": algorithm, "use": "sig"}]}


def dev_auth_config(
    key: PrivateKey,
    *,
    kid: str = DEFAULT_KID,
    issuer: str = DEFAULT_ISSUER,
    audience: str | None = DEFAULT_AUDIENCE,
) -> dict[str, Any]:
    """The auth config whose one customJwt provider accepts `mint_dev_token(key, ...)` tokens
    of the same `kid`, `issuer` and `audience`; its key set is a `data:` URI."""
    data = base64.b64encode(json.dumps(public_jwks(key, kid)).encode()).decode()
    entry: dict[str, Any] = {
        "type": "customJwt",
        "issuer": issuer,
        "jwks": f"data:application/json;base64,{data}",
        "algorithm": algorithm_of(key),
    }
    if audience is not None:
        entry["applicationID"] = audience
    return {"providers": [entry]}


def mint_dev_token(
    key: PrivateKey,
    sub: str,
    *,
    org: str | None = None,
    caps: Iterable[str] = (),
    ttl_seconds: int = 3600,
    kid: str = DEFAULT_KID,
    issuer: str = DEFAULT_ISSUER,
    audience: str | None = DEFAULT_AUDIENCE,
    algorithm: str | None = None,
) -> str:
    """A token signed with `key` (claims `iss`, `sub`, `aud`, `iat`, `exp`, and `org_id` and
    `caps` when given) that `dev_auth_config(key, ...)` of the same `kid`, `issuer` and
    `audience` accepts for `ttl_seconds`. `algorithm`, when given, must be the key's."""
    actual = algorithm_of(key)
    if algorithm is not None and algorithm != actual:
        raise DevKeyError(f"the key signs {actual}, not {algorithm}")
    if not sub:
        raise DevKeyError("the user id (sub) must not be empty")
    if ttl_seconds <= 0:
        raise DevKeyError("the lifetime must be a positive number of seconds")
    caps = list(caps)
    unknown = sorted(set(caps) - CAPABILITIES)
    if unknown:
        raise DevKeyError(f"unknown capabilities: {', '.join(unknown)}")
    now = int(time.time())
    claims: dict[str, Any] = {"iss": issuer, "sub": sub, "iat": now, "exp": now + ttl_seconds}
    if audience is not None:
        claims["aud"] = audience
    if org is not None:
        claims["org_id"] = org
    if caps:
        claims["caps"] = caps
    return jwt.encode(claims, key, algorithm=actual, headers={"kid": kid})


__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "DEFAULT_KID",
    "EXAMPLE_AUTH_CONFIG",
    "DevKeyError",
    "PrivateKey",
    "algorithm_of",
    "dev_auth_config",
    "load_private_key",
    "mint_dev_token",
    "new_private_key",
    "public_jwks",
    "write_private_key",
]
