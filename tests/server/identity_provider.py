"""A local identity provider for tests: keys made in the test, an OIDC discovery document and a
JWKS served on 127.0.0.1 (a thread running `http.server`), and tokens signed with those keys.

    with LocalProvider() as idp:                 # RS256 by default; ES256 with algorithm=
        config = idp.auth_config(application_id="convex")   # {"providers": [...]}
        token = idp.token("ann", org="org_a")
        idp.rotate()                             # a new key published (kid changes)
        idp.down = True                          # answers 503 until set back
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_RSA_KEY_BITS = 2048


def new_private_key(algorithm: str) -> Any:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_KEY_BITS)


def public_jwk(private_key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    algo = jwt.algorithms.ECAlgorithm if algorithm == "ES256" else jwt.algorithms.RSAAlgorithm
    jwk: dict[str, Any] = json.loads(algo.to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


class LocalProvider:
    def __init__(self, algorithm: str = "RS256", *, max_age: int | None = None) -> None:
        self.algorithm = algorithm
        self.max_age = max_age
        self.down = False
        self.requests: list[str] = []
        self._generation = 0
        self.private_key = new_private_key(algorithm)
        self.kid = "key-0"
        self.published: list[dict[str, Any]] = [public_jwk(self.private_key, self.kid, algorithm)]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def auth_config(self, application_id: str | None = "convex", *, oidc: bool = True) -> Any:
        if oidc:
            entry: dict[str, Any] = {"domain": self.issuer, "applicationID": application_id}
            if self.algorithm != "RS256":
                entry["algorithm"] = self.algorithm
        else:
            entry = {
                "type": "customJwt",
                "issuer": self.issuer,
                "jwks": f"{self.issuer}/jwks.json",
                "algorithm": self.algorithm,
            }
            if application_id is not None:
                entry["applicationID"] = application_id
        return {"providers": [entry]}

    def token(
        self,
        sub: str,
        *,
        org: str | None = None,
        caps: list[str] | None = None,
        aud: str | None = "convex",
        ttl: int = 600,
        key: Any = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.issuer, "sub": sub, "iat": now, "exp": now + ttl}
        if aud is not None:
            body["aud"] = aud
        if org is not None:
            body["org_id"] = org
        if caps is not None:
            body["caps"] = caps
        body.update(claims)
        return jwt.encode(
            body,
            key if key is not None else self.private_key,
            algorithm=self.algorithm,
            headers={"kid": kid or self.kid},
        )

    def rotate(self, *, keep_old: bool = False) -> None:
        """Publish a new signing key (and sign with it from now on)."""
        self._generation += 1
        self.private_key = new_private_key(self.algorithm)
        self.kid = f"key-{self._generation}"
        fresh = public_jwk(self.private_key, self.kid, self.algorithm)
        self.published = [*self.published, fresh] if keep_old else [fresh]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests.append(self.path)
                if provider.down:
                    self._answer(503, {"error": "down"})
                elif self.path == "/.well-known/openid-configuration":
                    self._answer(
                        200, {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks.json"}
                    )
                elif self.path == "/jwks.json":
                    self._answer(200, {"keys": provider.published})
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if provider.max_age is not None:
                    self.send_header("Cache-Control", f"max-age={provider.max_age}")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
