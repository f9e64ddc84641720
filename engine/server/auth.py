"""Who is calling: the admin key and user tokens (docs/reference/identity.md).

User tokens are HS256 JWTs signed with the server's secret, with claims `sub` (the user id,
required), `exp` (required), `org_id` (optional) and `caps` (optional list of capabilities).
Only HS256 is accepted: a token with `alg: none` or any other algorithm is refused, as is one
that is expired, wrongly signed or malformed. A token naming a capability this server does not
know is refused too (fail closed): a typo in a grant should be loud, not silently grant less.

A refusal raises `AuthFailed`, never falls back to another identity.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import Any

import jwt

from domain.errors import Unauthenticated
from domain.identity import ADMIN, CAPABILITIES, Identity

ALGORITHM = "HS256"
#: RFC 7518 3.2: an HS256 key is at least as long as the hash (32 bytes).
MIN_SECRET_BYTES = 32


class AuthFailed(Unauthenticated):
    """A credential was presented and is not valid (code `Unauthenticated`)."""


def _check_secret(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"The JWT secret must be at least {MIN_SECRET_BYTES} bytes long.")
    return key


def _check_caps(caps: Any) -> frozenset[str]:
    if caps is None:
        return frozenset()
    if not isinstance(caps, list) or not all(isinstance(cap, str) for cap in caps):
        raise AuthFailed("The token's caps claim must be a list of strings.")
    unknown = sorted(set(caps) - CAPABILITIES)
    if unknown:
        raise AuthFailed(f"The token names unknown capabilities: {', '.join(unknown)}.")
    return frozenset(caps)


class Authenticator:
    """Turns presented credentials into an `Identity`. Holds the server's secrets."""

    def __init__(self, admin_key: str, jwt_secret: str) -> None:
        if not admin_key:
            raise ValueError("The admin key must not be empty.")
        self._admin_key = admin_key.encode()
        self._jwt_key = _check_secret(jwt_secret)

    def admin(self, key: str) -> Identity:
        """`ADMIN` if `key` is the admin key (compared in constant time); else `AuthFailed`."""
        if not hmac.compare_digest(key.encode(), self._admin_key):
            raise AuthFailed("The admin key is not valid.")
        return ADMIN

    def user(self, token: str) -> Identity:
        """The identity a valid user token grants; `AuthFailed` for any invalid token."""
        try:
            claims = jwt.decode(
                token,
                self._jwt_key,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("The token has expired.") from None
        except jwt.PyJWTError as exc:
            raise AuthFailed(f"The token is not valid: {exc}") from None
        except (ValueError, TypeError):
            raise AuthFailed("The token is not valid.") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthFailed("The token's sub claim must be a non-empty string.")
        org_id = claims.get("org_id")
        if org_id is not None and (not isinstance(org_id, str) or not org_id):
            raise AuthFailed("The token's org_id claim must be a non-empty string.")
        return Identity(subject=subject, org_id=org_id, caps=_check_caps(claims.get("caps")))


def mint_token(
    secret: str,
    sub: str,
    org: str | None = None,
    caps: Iterable[str] = (),
    ttl_seconds: int = 3600,
) -> str:
    """A user token that `Authenticator(..., secret).user` accepts for `ttl_seconds`."""
    caps = list(caps)
    unknown = sorted(set(caps) - CAPABILITIES)
    if unknown:
        raise ValueError(f"Unknown capabilities: {', '.join(unknown)}.")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_seconds}
    if org is not None:
        claims["org_id"] = org
    if caps:
        claims["caps"] = caps
    return jwt.encode(claims, _check_secret(secret), algorithm=ALGORITHM)


__all__ = ["AuthFailed", "Authenticator", "mint_token"]
