"""The server under attack: a live in-process server on 127.0.0.1 (a free port) over an engine on
a data dir, serving the built-in app and `lab.hostile.app` (an action and HTTP routes), with
Stripe's webhook route on, and every error the server logs captured, so that a hostile input
that makes the server fail internally (a logged traceback) is found even when the client saw a
tidy answer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from domain.identity import ADMIN, ANONYMOUS
from engine import Engine, EngineConfig, open_engine
from engine.apps import load_apps
from engine.server import (
    Authenticator,
    Metrics,
    RunningServer,
    ServerConfig,
    mint_token,
    open_server,
)

ADMIN_KEY = "hostile-admin-key"
JWT_SECRET = "hostile-jwt-secret-that-is-long-enough-for-hs256"
#: Stripe's webhook secret: `POST /stripe/webhook` is served (and no case can sign for it).
STRIPE_SECRET = "whsec_hostile_never_given_to_a_case"
#: The app served beside the built-in one: an action and routes to attack (lab.hostile.app).
APP = "lab.hostile.app"


class ErrorLog(logging.Handler):
    """Keeps every record at ERROR or above, and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def take(self) -> list[str]:
        """The captured records as text (with their tracebacks), and forget them."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        texts = [formatter.format(record) for record in self.records]
        self.records.clear()
        return texts


class Server(Protocol):
    """What the bystanders and the floods need of a server, in-process or not."""

    @property
    def port(self) -> int: ...

    @property
    def admin_key(self) -> str: ...

    def user_token(self, sub: str, org: str | None = None, caps: Sequence[str] = ()) -> str: ...

    async def admin_mutation(self, name: str, args: Any) -> Any:
        """Run a mutation as the admin; its value."""

    async def read(self, name: str, args: Any) -> Any:
        """What a query answers an anonymous caller now."""


@attrs.define
class Target:
    server: RunningServer
    errors: ErrorLog

    @property
    def engine(self) -> Engine:
        return self.server.engine

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def metrics(self) -> Metrics:
        return self.server.metrics

    @property
    def config(self) -> ServerConfig:
        return self.server.config

    @property
    def admin_key(self) -> str:
        return ADMIN_KEY

    def user_token(self, sub: str, org: str | None = None, caps: Sequence[str] = ()) -> str:
        return mint_token(JWT_SECRET, sub, org, caps)

    async def admin_mutation(self, name: str, args: Any) -> Any:
        return (await self.engine.mutation(name, args, ADMIN)).value

    async def read(self, name: str, args: Any) -> Any:
        return (await self.engine.query(name, args, ANONYMOUS)).value

    def gauge(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        return 0.0 if value is None else value

    def assert_no_errors(self, context: str = "") -> None:
        logged = self.errors.take()
        if logged:
            raise AssertionError(f"the server logged failures{context}:\n" + "\n".join(logged))


@asynccontextmanager
async def open_target(
    data_dir: Path,
    config: ServerConfig | None = None,
    *,
    offload_io: bool = True,
    writer_process: bool = True,
) -> AsyncIterator[Target]:
    """A live server for the block; on leaving, a graceful stop and a check that it stopped.
    `writer_process` off: appends go through `engine.journal.append` in a worker thread (for a
    test that holds them there)."""
    config = config or ServerConfig()
    errors = ErrorLog()
    logger = logging.getLogger("turnstile")
    logger.addHandler(errors)
    try:
        async with (
            open_engine(
                data_dir,
                modules=load_apps([APP]),
                config=EngineConfig(offload_io=offload_io, writer_process=writer_process),
            ) as engine,
            open_server(
                engine,
                authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
                config=config,
                stripe_webhook_secret=STRIPE_SECRET,
            ) as server,
        ):
            try:
                yield Target(server, errors)
            finally:
                server.stop()
                with trio.fail_after(config.drain_seconds + 10):
                    await server.wait_stopped()
    finally:
        logger.removeHandler(errors)


__all__ = ["ADMIN_KEY", "JWT_SECRET", "ErrorLog", "Server", "Target", "open_target"]
