"""A local identity provider for tests: keys made in the test, an OIDC discovery document and a
JWKS served on 127.0.0.1 (a thread running `http.server`), and tokens signed with those keys.

    with LocalProvider() as idp:                 # RS256 by default; ES256 with algorithm=
        config = idp.auth_config(application_id="convex")   # {"providers": [...]}
        token = idp.token("ann", org="org_a")
        idp.rotate()                             # a new key published (kid changes)
        idp.down = True                          # answers 503 until set back
        idp.hold()                               # requests wait (unanswered) until release()

and a live server trusting it (`serve_trusting`, serving the `signins` test app beside the
built-in one) with a small sync client (`open_sync`, `signed_in`, `refused`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import orjson
import trio
import trio.testing
import trio_websocket
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client.parser import text_string_to_metric_families

from engine.apps import load_apps
from engine.engine import EngineConfig, open_engine
from engine.server import Authenticator, RunningServer, open_server
from engine.server.identity_providers import parse_auth_config
from tests.server.client import HttpClient, Reply, call
from tests.server.conftest import ADMIN_KEY, CONFIG, JWT_SECRET

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
        #: Answer with bytes that are not HTTP at all.
        self.garbled = False
        #: Send the answer's head a byte at a time, one every `drip` seconds (for at most 20 s).
        self.drip: float | None = None
        #: When set, the JWKS answer's body as is (200), instead of the published keys.
        self.jwks_body: bytes | None = None
        self.requests: list[str] = []
        self._arrived = threading.Condition()
        #: Cleared by `hold()`: requests then wait for `release()` (or the server's end).
        self._open = threading.Event()
        self._open.set()
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
        self._open.set()
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

    def hold(self) -> None:
        """From now on a request is seen (in `requests`) but not answered until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block (a thread, not the event loop) until `count` requests were seen."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._arrived:
                    provider.requests.append(self.path)
                    provider._arrived.notify_all()
                provider._open.wait(timeout=30)
                if provider.drip is not None:
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 50
                    stop = time.monotonic() + 20
                    for byte in head:
                        if time.monotonic() > stop or not provider._open.is_set():
                            break
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:  # the client gave up: as it should
                            break
                        time.sleep(provider.drip)
                elif provider.garbled:
                    self.wfile.write(b"this is not HTTP\r\n\r\n")
                elif provider.down:
                    self._answer(503, {"error": "down"})
                elif self.path == "/jwks.json" and provider.jwks_body is not None:
                    self._answer(200, raw=provider.jwks_body)
                elif self.path == "/.well-known/openid-configuration":
                    self._answer(
                        200, {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks.json"}
                    )
                elif self.path == "/jwks.json":
                    self._answer(200, {"keys": provider.published})
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, body: Any = None, *, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(body).encode()
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


# -- a live server trusting the provider -----------------------------------------------------------

#: How long a client waits for an answer before the test fails (real seconds).
ANSWER_SECONDS = 10


@asynccontextmanager
async def serve_trusting(
    idp: LocalProvider, data_dir: Path, config: Any = None
) -> AsyncIterator[tuple[RunningServer, Authenticator]]:
    """A server (and its authenticator) that trusts `idp`'s tokens (OIDC, `aud` "convex"), or
    the providers of the auth `config` given."""
    providers = parse_auth_config(config if config is not None else idp.auth_config())
    auth = Authenticator(ADMIN_KEY, JWT_SECRET, providers)
    engine_config = EngineConfig(offload_io=True, run_jobs=False)
    modules = load_apps(["tests.apps.signins"])
    async with (
        open_engine(data_dir, modules=modules, config=engine_config) as engine,
        open_server(engine, authenticator=auth, config=CONFIG) as server,
    ):
        yield server, auth


async def http_call(
    server: RunningServer, kind: str, path: str, args: dict[str, Any], token: str | None = None
) -> Reply:
    with trio.fail_after(ANSWER_SECONDS):
        return await call(
            server.port, kind, path, args, None if token is None else f"Bearer {token}"
        )


async def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` as {(sample name, sorted labels): value}."""
    client = await HttpClient.connect(server.port)
    try:
        reply = await client.request("GET", "/metrics")
    finally:
        await client.aclose()
    assert reply.status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
    }


def ws_sessions(server: RunningServer) -> float:
    value = server.metrics.registry.get_sample_value("turnstile_websocket_sessions")
    assert value is not None
    return value


class SyncClient:
    """One sync session as the Convex client drives it: Connect, Authenticate, queries."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.query_set = 0
        self.identity = 0
        self.requests = 0
        #: The latest value of each query, by query id.
        self.values: dict[int, Any] = {}

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_message(orjson.dumps(message).decode())

    async def connect(self) -> None:
        await self.send({"type": "Connect", "sessionId": "s", "connectionCount": 0, "clientTs": 0})

    async def authenticate(self, token: str) -> None:
        await self.send(
            {
                "type": "Authenticate",
                "tokenType": "User",
                "value": token,
                "baseVersion": self.identity,
            }
        )

    async def subscribe(self, query_id: int, path: str, args: dict[str, Any]) -> None:
        add = {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}
        await self.send(
            {
                "type": "ModifyQuerySet",
                "baseVersion": self.query_set,
                "newVersion": self.query_set + 1,
                "modifications": [add],
            }
        )
        self.query_set += 1

    async def mutation(self, path: str, args: dict[str, Any]) -> dict[str, Any]:
        request_id = self.requests
        self.requests += 1
        await self.send(
            {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}
        )
        while True:
            message = await self.next()
            if message["type"] == "MutationResponse" and message["requestId"] == request_id:
                return message

    async def next(self) -> dict[str, Any]:
        with trio.fail_after(ANSWER_SECONDS):
            message: dict[str, Any] = orjson.loads(await self.ws.get_message())
        if message["type"] == "Transition":
            self.identity = message["endVersion"]["identity"]
            for change in message["modifications"]:
                if change["type"] == "QueryUpdated":
                    self.values[change["queryId"]] = change["value"]
        return message

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message["type"] == kind:
                return message

    async def value_of(self, query_id: int, expected: Any) -> None:
        """Read until query `query_id`'s value is `expected` (fails after ANSWER_SECONDS)."""
        with trio.fail_after(ANSWER_SECONDS):
            while self.values.get(query_id, ...) != expected:
                await self.next()

    async def closed(self) -> bool:
        """Whether the server closed the connection (read on until it does)."""
        try:
            with trio.fail_after(ANSWER_SECONDS):
                while True:
                    await self.ws.get_message()
        except trio_websocket.ConnectionClosed:
            return True


@asynccontextmanager
async def open_sync(server: RunningServer) -> AsyncIterator[SyncClient]:
    """A connected sync session (Connect sent); closed when the block is left."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", "/api/1.17.0/sync"
            )
            try:
                client = SyncClient(ws)
                await client.connect()
                yield client
            finally:
                with trio.move_on_after(5):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


async def signed_in(client: SyncClient, token: str, subject: str) -> None:
    """Authenticate `client` and wait until `signins:whoami` (query 0) names `subject`."""
    if 0 not in client.values:
        await client.subscribe(0, "signins:whoami", {})
    await client.authenticate(token)
    with trio.fail_after(ANSWER_SECONDS):
        while (client.values.get(0) or {}).get("subject") != subject:
            message = await client.next()
            assert message["type"] != "AuthError", message


async def refused(client: SyncClient, token: str) -> str:
    """Authenticate `client` with `token`, expect AuthError and the session's end; no answer
    on the way names a signed-in user. Returns the error's text."""
    if 0 not in client.values:
        await client.subscribe(0, "signins:whoami", {})
    await client.authenticate(token)
    while True:
        message = await client.next()
        if message["type"] == "AuthError":
            break
        assert message["type"] == "Transition", message
        assert client.values.get(0) is None, message
    assert await client.closed()
    error: str = message["error"]
    return error


async def wait_for_requests(idp: LocalProvider, count: int) -> None:
    assert await trio.to_thread.run_sync(idp.wait_for_requests, count), idp.requests


async def open_sessions(server: RunningServer) -> float:
    """The sync sessions the server counts once every task has settled."""
    await trio.testing.wait_all_tasks_blocked()
    return ws_sessions(server)
