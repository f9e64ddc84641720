"""Identity providers: the issuers whose tokens Turnstile accepts (docs/reference/identity.md).

`load_auth_config(path)` reads a JSON file with the fields of Convex's `auth.config.ts`:

    {"providers": [
      {"domain": "https://clerk.example.com", "applicationID": "convex"},
      {"type": "customJwt", "issuer": "https://auth.example.com", "algorithm": "RS256",
       "jwks": "https://auth.example.com/jwks.json", "applicationID": "turnstile"}]}

Plan:
- One `Provider` per entry: its issuer (an OIDC provider's `domain`), the one algorithm its
  tokens are signed with (customJwt: `algorithm`, RS256 or ES256; OIDC: RS256, or `algorithm`
  when given), its audience (`applicationID`; required for OIDC, optional for customJwt) and
  where its keys are: OIDC: `jwks_uri` of `{domain}/.well-known/openid-configuration`;
  customJwt: `jwks`, an http(s) URL or a `data:application/json;base64,...` URI (read once, at
  load: it never changes).
- A `KeySet` per provider caches its keys by `kid`. Fetches are asynchronous (httpx on trio),
  in a system task of their own, one at a time per provider: a caller that needs keys while a
  fetch runs waits for that fetch. The fetch is the provider's, not the caller's: a caller
  that goes away (its connection closed) does not cancel it for the others. Each document (an
  OIDC discovery, a JWKS) is at most `MAX_DOCUMENT_BYTES`, and its whole exchange, from
  connecting to the body's last byte, at most `FETCH_TIMEOUT` (real seconds: a provider that
  drips its answer, headers included, fails the fetch that long after it began). Any fault of
  the provider's answer (its status, malformed HTTP, a body that is no JSON key set) is a
  failed fetch, never an exception out of the key set; a key that cannot be used is skipped
  (and logged), the others kept.
- When a fetch happens: at first use; once the cache lifetime has passed (the answer's
  Cache-Control max-age, clamped to [MIN_CACHE_SECONDS, MAX_CACHE_SECONDS]; DEFAULT_CACHE_SECONDS
  without one), in the background while the known keys keep answering; and when a token names
  a `kid` the cache does not hold, at most once per `REFRESH_SECONDS` per provider. Times are
  `trio.current_time()`.
- A successful fetch replaces the whole key set (a key the provider removed stops working); a
  failed one keeps the keys already known (a provider that is down never stops tokens signed by
  them), is logged and counted (`ProviderStatus`), and is not retried before `REFRESH_SECONDS`.
  A token whose `kid` is unknown while its provider is down is refused at once. The first
  success after a failure is logged too.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import attrs
import httpx
import jwt
import trio

log = logging.getLogger("turnstile.auth")

#: Seconds for the whole exchange of one document (an OIDC discovery, a JWKS), in real time.
FETCH_TIMEOUT = 3.0
#: Bytes asked of the socket per read of a document.
READ_BYTES = 64 * 1024
#: The largest discovery document or JWKS read.
MAX_DOCUMENT_BYTES = 1 << 20
#: At most one fetch per provider this often, for an unknown `kid` or after a failure.
REFRESH_SECONDS = 30.0
MIN_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 24 * 3600.0
DEFAULT_CACHE_SECONDS = 3600.0
#: The algorithms a provider may sign with (asymmetric only: a public key is never a secret).
ALGORITHMS = ("RS256", "ES256")


class AuthConfigError(ValueError):
    """The auth config cannot be used; the message says which entry and why."""


@attrs.frozen(kw_only=True)
class Provider:
    """One identity provider of the auth config (see the module's docstring)."""

    issuer: str
    algorithm: str
    audience: str | None
    #: OIDC: the discovery document's URL; None for customJwt.
    discovery_url: str | None = None
    #: customJwt: the JWKS URL (None when the keys came in a `data:` URI).
    jwks_url: str | None = None
    #: customJwt with a `data:` URI: the key set itself.
    jwks: Mapping[str, Any] | None = None

    @property
    def kind(self) -> str:
        return "oidc" if self.discovery_url else "customJwt"


def load_auth_config(path: Path) -> tuple[Provider, ...]:
    """The providers of an auth config file; `AuthConfigError` naming the fault."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthConfigError(f"cannot read the auth config {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise AuthConfigError(f"the auth config {path} is not JSON: {exc}") from None
    return parse_auth_config(document)


def parse_auth_config(document: Any) -> tuple[Provider, ...]:
    if not isinstance(document, dict) or not isinstance(document.get("providers"), list):
        raise AuthConfigError('the auth config must be {"providers": [...]}')
    providers = tuple(_provider(entry, index) for index, entry in enumerate(document["providers"]))
    issuers = [p.issuer for p in providers]
    for issuer in issuers:
        if issuers.count(issuer) > 1:
            raise AuthConfigError(f"two providers have the issuer {issuer!r}")
    return providers


def _provider(entry: Any, index: int) -> Provider:
    where = f"providers[{index}]"
    if not isinstance(entry, dict):
        raise AuthConfigError(f"{where} must be an object")
    known = {"type", "domain", "issuer", "jwks", "algorithm", "applicationID"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise AuthConfigError(f"{where} has unknown fields: {', '.join(unknown)}")
    audience = _text(entry, "applicationID", where, required=False)
    kind = entry.get("type", "oidc")
    algorithm = entry.get("algorithm", "RS256")
    if algorithm not in ALGORITHMS:
        raise AuthConfigError(f"{where}.algorithm must be one of {', '.join(ALGORITHMS)}")
    if kind == "customJwt":
        issuer = _text(entry, "issuer", where)
        jwks = _text(entry, "jwks", where)
        if jwks.startswith("data:"):
            return Provider(
                issuer=issuer, algorithm=algorithm, audience=audience, jwks=_data_uri(jwks, where)
            )
        return Provider(
            issuer=issuer, algorithm=algorithm, audience=audience, jwks_url=_url(jwks, where)
        )
    if kind != "oidc":
        raise AuthConfigError(f"{where}.type must be 'customJwt' (or absent, for OIDC)")
    # The issuer is the domain exactly as written, as Convex matches it: Clerk's has no
    # trailing slash, Auth0's has one (`https://tenant.auth0.com/`).
    domain = _url(_text(entry, "domain", where), where)
    if audience is None:
        raise AuthConfigError(f"{where}: an OIDC provider needs its applicationID")
    return Provider(
        issuer=domain,
        algorithm=algorithm,
        audience=audience,
        discovery_url=f"{domain.rstrip('/')}/.well-known/openid-configuration",
    )


def _text(entry: dict[str, Any], key: str, where: str, *, required: bool = True) -> Any:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise AuthConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _url(value: str, where: str) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise AuthConfigError(f"{where}: {value!r} is not an http(s) URL")
    return value


def _data_uri(value: str, where: str) -> Mapping[str, Any]:
    head, sep, data = value.partition(",")
    if not sep or not head.endswith(";base64"):
        raise AuthConfigError(f"{where}.jwks: a data: URI must be base64 (data:...;base64,...)")
    try:
        document = json.loads(base64.b64decode(data, validate=True))
    except ValueError as exc:
        raise AuthConfigError(f"{where}.jwks: the data: URI holds no JSON key set: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise AuthConfigError(f"{where}.jwks: the data: URI holds no JSON key set")
    return document


# -- keys -----------------------------------------------------------------------------------------


class FetchFailed(Exception):
    """A provider's discovery document or key set could not be fetched or read."""


@attrs.define
class ProviderStatus:
    """What `/metrics` and the log say of one provider."""

    fetches: int = 0
    failures: int = 0
    keys: int = 0
    last_error: str = ""
    #: Whether the last fetch (if any) succeeded.
    up: bool = True


class KeySet:
    """One provider's keys by `kid` (see the module's docstring for when it fetches)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.status = ProviderStatus()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fresh_until = -float("inf")
        self._last_attempt = -float("inf")
        self._fetching: trio.Event | None = None
        if provider.jwks is not None:  # a data: URI: the keys are known for good
            self._install(provider.jwks, fresh_until=float("inf"))

    def cached(self, kid: str | None) -> jwt.PyJWK | None:
        """The key `kid` if it is already known (no fetch, no clock)."""
        return self._keys.get(kid)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The provider's key `kid`; None if the provider has no such key (or cannot be
        reached and it was not known). A known key is answered at once, also once the cache
        has expired: the refresh then runs in the background. An unknown one waits for a
        fetch (within the rate limit; bounded as the module's docstring says)."""
        now = trio.current_time()
        found = self._keys.get(kid)
        if found is not None:
            if now >= self._fresh_until and self._may_fetch(now):
                self._start_fetch()
            return found
        if self._may_fetch(now):
            await self._start_fetch().wait()
        return self._keys.get(kid)

    def _may_fetch(self, now: float) -> bool:
        if self.provider.jwks is not None:
            return False
        return self._fetching is not None or now - self._last_attempt >= REFRESH_SECONDS

    def _start_fetch(self) -> trio.Event:
        """The running fetch's completion; starts one if none runs. The fetch is a system
        task, so no caller's cancellation cuts it short for the others."""
        if self._fetching is None:
            self._fetching = trio.Event()
            self._last_attempt = trio.current_time()
            trio.lowlevel.spawn_system_task(self._fetch, self._fetching)
        return self._fetching

    async def _fetch(self, done: trio.Event) -> None:
        self.status.fetches += 1
        try:
            document, max_age = await _fetch_keys(self.provider)
            self._install(document, fresh_until=trio.current_time() + max_age)
        except FetchFailed as exc:
            self._failed(str(exc))
        except Exception as exc:  # a system task must not raise: any other fault is a failure
            self._failed(f"{type(exc).__name__}: {exc}")
        else:
            if not self.status.up:
                log.info(
                    "identity provider %s: reachable again (%d keys known)",
                    self.provider.issuer,
                    len(self._keys),
                )
            self.status.up = True
            self.status.last_error = ""
        finally:
            self._fetching = None
            done.set()

    def _failed(self, error: str) -> None:
        self.status.failures += 1
        self.status.up = False
        self.status.last_error = error
        log.warning(
            "identity provider %s: cannot fetch its keys: %s (keeping %d known keys; a token"
            " of another kid is refused; next attempt in %g s at the earliest)",
            self.provider.issuer,
            error,
            len(self._keys),
            REFRESH_SECONDS,
        )

    def _install(self, document: Mapping[str, Any], *, fresh_until: float) -> None:
        keys: dict[str | None, jwt.PyJWK] = {}
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise FetchFailed("the key set has no keys list")
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry, algorithm=self.provider.algorithm)
            except Exception as exc:  # any fault of one key's material skips that key only
                log.warning("identity provider %s: unusable key: %s", self.provider.issuer, exc)
                continue
            keys[entry.get("kid")] = key
        self._keys = keys
        self.status.keys = len(keys)
        self._fresh_until = fresh_until


async def _fetch_keys(provider: Provider) -> tuple[Mapping[str, Any], float]:
    """The provider's key set and how long it may be cached."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=FETCH_TIMEOUT) as client:
        url = provider.jwks_url
        if provider.discovery_url is not None:
            discovery, _ = await _fetch_json(client, provider.discovery_url)
            url = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
            scheme = urllib.parse.urlsplit(url).scheme if isinstance(url, str) else ""
            if scheme not in ("http", "https"):
                raise FetchFailed("the discovery document names no http(s) jwks_uri")
        assert url is not None
        document, max_age = await _fetch_json(client, url)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise FetchFailed(f"{url} is not a JSON key set")
    return document, max_age


async def _fetch_json(client: httpx.AsyncClient, url: str) -> tuple[Any, float]:
    """One document: its JSON and its cache lifetime. The whole exchange, from connecting to
    the body's last byte, is bounded by `FETCH_TIMEOUT` (a provider dripping its answer, even
    its headers, a byte at a time is cut off), the body by `MAX_DOCUMENT_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    try:
        with trio.fail_after(FETCH_TIMEOUT):
            headers = {"Accept": "application/json"}
            async with client.stream("GET", url, headers=headers) as answer:
                if not 200 <= answer.status_code < 300:
                    raise FetchFailed(f"{url}: HTTP {answer.status_code}")
                cache_control = answer.headers.get("cache-control", "")
                reading = cast(AsyncGenerator[bytes, None], answer.aiter_bytes(READ_BYTES))
                async with aclosing(reading) as body:
                    async for chunk in body:
                        size += len(chunk)
                        if size > MAX_DOCUMENT_BYTES:
                            raise FetchFailed(f"{url}: more than {MAX_DOCUMENT_BYTES} bytes")
                        chunks.append(chunk)
    except trio.TooSlowError:
        raise FetchFailed(f"{url}: timed out (not read within {FETCH_TIMEOUT:g} s)") from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise FetchFailed(f"{url}: {exc or type(exc).__name__}") from None
    try:
        return json.loads(b"".join(chunks)), _max_age(cache_control)
    except (ValueError, RecursionError):
        raise FetchFailed(f"{url}: not JSON") from None


def _max_age(cache_control: str) -> float:
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return min(max(float(value), MIN_CACHE_SECONDS), MAX_CACHE_SECONDS)
    return DEFAULT_CACHE_SECONDS


def key_sets(providers: Sequence[Provider]) -> dict[str, KeySet]:
    """A key set per provider, by issuer."""
    return {provider.issuer: KeySet(provider) for provider in providers}


__all__ = [
    "AuthConfigError",
    "KeySet",
    "Provider",
    "ProviderStatus",
    "key_sets",
    "load_auth_config",
    "parse_auth_config",
]
