"""Who is calling: the admin key and user tokens (docs/reference/identity.md).

User tokens are JWTs of two kinds:
- tokens of an identity provider of the auth config (`engine.server.identity_providers`: Clerk,
  Auth0, any OIDC provider, custom JWT issuers), signed RS256 or ES256. Their `iss` picks the
  provider; only that provider's algorithm is accepted (never `none`, never HS256, so a public
  key can never serve as a shared secret); `kid` picks its key; `aud` must hold its
  `applicationID` (when it has one); `exp`, `nbf` and `iat` hold within `LEEWAY_SECONDS`;
- development tokens, HS256 with the server's `--jwt-secret` (when it has one), for an `iss`
  that is none of the providers'.
Claims: `sub` (the user id, required), `exp` (required), the organization from `org_id` or
Clerk's `o.id`, capabilities from `caps` (a list; a capability this server does not know is
refused: a typo in a grant should be loud, not silently grant less). A claim of the wrong type
(`sub` or `org_id` not a string, `o` not an object, `caps` not a list of strings, `exp`, `nbf`
or `iat` not a number) refuses the token. `tokenIdentifier` is
`iss|sub` (`turnstile|sub` for a development token without `iss`).

`authenticate(token)` may fetch a provider's keys (off the event loop, bounded); `user(token)`
never does (a provider key not yet known is refused). A refusal raises `AuthFailed`, never
falls back to another identity; a malformed token of any shape is a refusal, not a traceback.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import jwt

from domain.errors import Unauthenticated
from domain.identity import ADMIN, CAPABILITIES, Identity
from engine.server.identity_providers import KeySet, Provider, ProviderStatus, key_sets
from engine.sync.limits import TOKEN_LEEWAY_SECONDS

ALGORITHM = "HS256"
#: RFC 7518 3.2: an HS256 key is at least as long as the hash (32 bytes).
MIN_SECRET_BYTES = 32
#: Clock skew allowed on `exp`, `nbf` and `iat` (the sync session's too).
LEEWAY_SECONDS = TOKEN_LEEWAY_SECONDS
#: A longer token is refused unread.
MAX_TOKEN_CHARS = 16 * 1024
#: The `iss` part of a development token's `tokenIdentifier` when it names none.
DEV_ISSUER = "turnstile"
#: The most of a token's own value (its `iss`, its `alg`) a refusal quotes.
QUOTED_CHARS = 80


class AuthFailed(Unauthenticated):
    """A credential was presented and is not valid (code `Unauthenticated`)."""


@attrs.frozen
class SignedIn:
    """A verified user token: who it names, and until when (seconds since the epoch)."""

    identity: Identity
    expires_at: float


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
        raise AuthFailed(f"The token names unknown capabilities: {_cut(', '.join(unknown))}.")
    return frozenset(caps)


def _cut(text: str) -> str:
    return text if len(text) <= QUOTED_CHARS else text[: QUOTED_CHARS - 3] + "..."


def _quoted(value: Any) -> str:
    """A token's value as a refusal quotes it: a scalar's repr, else its type, cut short."""
    return _cut(
        repr(value) if isinstance(value, str | int | float | None) else type(value).__name__
    )


def _organization(claims: Mapping[str, Any]) -> str | None:
    org_id = claims.get("org_id")
    if org_id is None:
        clerk = claims.get("o")  # Clerk's session token: {"o": {"id": "org_...", ...}}
        if clerk is not None and not isinstance(clerk, dict):
            raise AuthFailed("The token's o claim must be an object.")
        org_id = clerk.get("id") if clerk is not None else None
    if org_id is not None and (not isinstance(org_id, str) or not org_id):
        raise AuthFailed("The token's organization claim must be a non-empty string.")
    return org_id


class Authenticator:
    """Turns presented credentials into an `Identity`. Holds the server's secrets and its
    identity providers' key sets."""

    def __init__(
        self,
        admin_key: str,
        jwt_secret: str | None,
        providers: Sequence[Provider] = (),
    ) -> None:
        if not admin_key:
            raise ValueError("The admin key must not be empty.")
        self._admin_key = admin_key.encode()
        self._jwt_key = None if jwt_secret is None else _check_secret(jwt_secret)
        self._key_sets = key_sets(providers)

    @property
    def providers(self) -> Mapping[str, ProviderStatus]:
        """Each identity provider's status, by issuer (for `/metrics`)."""
        return {issuer: keys.status for issuer, keys in self._key_sets.items()}

    def admin(self, key: str) -> Identity:
        """`ADMIN` if `key` is the admin key (compared in constant time); else `AuthFailed`."""
        if not hmac.compare_digest(key.encode(), self._admin_key):
            raise AuthFailed("The admin key is not valid.")
        return ADMIN

    def user(self, token: str) -> Identity:
        """The identity a valid user token grants, without fetching any key (a provider's
        key not yet known is refused); `AuthFailed` for any invalid token."""
        provider, kid = self._provider_of(token)
        if provider is None:
            return self._development(token).identity
        return self._verify(token, provider.provider, provider.cached(kid)).identity

    async def authenticate(self, token: str) -> SignedIn:
        """The identity a valid user token grants and its expiry, fetching the provider's
        keys if needed (bounded; see `identity_providers`); `AuthFailed` for any invalid
        token."""
        provider, kid = self._provider_of(token)
        if provider is None:
            return self._development(token)
        return self._verify(token, provider.provider, await provider.key(kid))

    def _provider_of(self, token: str) -> tuple[KeySet | None, str | None]:
        """The key set of the token's issuer (None: a development token) and its `kid`."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise AuthFailed("The token is not valid.")
        try:  # header and claims read in one pass (the signature is checked after)
            unread = jwt.decode_complete(token, options={"verify_signature": False})
        except Exception:  # any malformed token: bad base64, JSON, nesting, types
            raise AuthFailed("The token is not valid.") from None
        header, unverified = unread["header"], unread["payload"]
        issuer = unverified.get("iss")
        keys = self._key_sets.get(issuer) if isinstance(issuer, str) else None
        algorithm, kid = header.get("alg"), header.get("kid")
        if keys is None:
            if algorithm != ALGORITHM or self._jwt_key is None:
                raise AuthFailed(f"No identity provider issues tokens as {_quoted(issuer)}.")
            return None, None
        if algorithm != keys.provider.algorithm:
            raise AuthFailed(
                f"The token is signed with {_quoted(algorithm)}; {issuer} signs with"
                f" {keys.provider.algorithm}."
            )
        if kid is not None and not isinstance(kid, str):
            raise AuthFailed("The token's kid must be a string.")
        return keys, kid

    def _verify(self, token: str, provider: Provider, key: jwt.PyJWK | None) -> SignedIn:
        if key is None:
            raise AuthFailed(f"The token's signing key is not one of {provider.issuer}'s.")
        return self._decode(
            token,
            lambda: jwt.decode(
                token,
                key.key,
                algorithms=[provider.algorithm],
                audience=provider.audience,
                issuer=provider.issuer,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["sub", "exp", "iss"],
                    "verify_aud": provider.audience is not None,
                },
            ),
        )

    def _development(self, token: str) -> SignedIn:
        assert self._jwt_key is not None
        key = self._jwt_key
        return self._decode(
            token,
            lambda: jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"], "verify_aud": False},
            ),
        )

    @staticmethod
    def _decode(token: str, decode: Callable[[], dict[str, Any]]) -> SignedIn:
        try:
            claims = decode()
        except jwt.ExpiredSignatureError:
            raise AuthFailed("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailed("The token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise AuthFailed("The token is not for this application (aud).") from None
        except jwt.InvalidIssuerError:
            raise AuthFailed("The token's issuer does not match its provider.") from None
        except jwt.PyJWTError as exc:
            raise AuthFailed(f"The token is not valid: {exc}") from None
        except Exception:  # a claim of a type PyJWT does not expect, and the like
            raise AuthFailed("The token is not valid.") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthFailed("The token's sub claim must be a non-empty string.")
        for name in ("exp", "nbf", "iat"):  # PyJWT also takes "123" and true for a time
            value = claims.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AuthFailed(f"The token's {name} claim must be a number.")
        expires_at = claims["exp"]
        issuer = claims.get("iss")
        identity = Identity(
            subject=subject,
            org_id=_organization(claims),
            caps=_check_caps(claims.get("caps")),
            token_identifier=f"{issuer if isinstance(issuer, str) else DEV_ISSUER}|{subject}",
        )
        return SignedIn(identity, float(expires_at))


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
        raise ValueError(f"Unknown capabilities: {_cut(', '.join(unknown))}.")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_seconds}
    if org is not None:
        claims["org_id"] = org
    if caps:
        claims["caps"] = caps
    return jwt.encode(claims, _check_secret(secret), algorithm=ALGORITHM)


__all__ = ["AuthFailed", "Authenticator", "SignedIn", "mint_token"]
