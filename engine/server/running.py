"""A server running in-process for the duration of a block: `open_server`.

    async with open_server(data_dir, authenticator=Authenticator(key, secret)) as server:
        ...  # server.url, server.port, server.engine

Plan: one nursery runs `serve` with a stop event; the block is entered once `serve` reports
its bound port (the listener accepts from then on). Leaving the block sets the stop event and
the nursery waits for `serve` to return; an engine the server opened itself (from a data dir)
is closed after that, so every command it decided is committed before the block is left. The
command line, the tests and the lab all run their servers through it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

from engine.engine import Engine, EngineConfig, open_engine
from engine.server.auth import Authenticator
from engine.server.http import serve
from engine.server.metrics import Metrics
from engine.sync.limits import ServerConfig


@attrs.define(eq=False)
class RunningServer:
    """A server `open_server` started. `host` and `port` are where it listens (the bound port,
    also when port 0 asked for a free one)."""

    engine: Engine
    host: str
    port: int
    metrics: Metrics
    config: ServerConfig
    _stop: trio.Event = attrs.field(alias="stop_event")
    _stopped: trio.Event = attrs.field(alias="stopped_event")
    _serving: trio.CancelScope = attrs.field(alias="serving")

    @property
    def url(self) -> str:
        """The server's base URL, as a client is given it (`http://127.0.0.1:PORT`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stopping(self) -> bool:
        """`stop()` was called (or the block was left)."""
        return self._stop.is_set()

    @property
    def stopped(self) -> bool:
        """The listener is closed and every connection is over."""
        return self._stopped.is_set()

    def stop(self, *, drain: bool = True) -> None:
        """Begin stopping now, without waiting: the listener closes at once, idle connections
        and sync sessions are closed, and requests in flight get `config.drain_seconds` to be
        answered. With `drain=False` (or a second call with it) they are cut at once instead.
        Idempotent; the engine stays open until the block is left."""
        self._stop.set()
        if not drain:
            self._serving.cancel()

    async def wait_stopped(self) -> None:
        """Return once the server has stopped (after `stop()`, or a failure of the server)."""
        await self._stopped.wait()


@asynccontextmanager
async def open_server(
    engine: Engine | str | os.PathLike[str],
    *,
    authenticator: Authenticator,
    config: ServerConfig | None = None,
    engine_config: EngineConfig | None = None,
    metrics: Metrics | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    public_url: str | None = None,
    stripe_webhook_secret: str | None = None,
) -> AsyncIterator[RunningServer]:
    """Serve HTTP and the sync WebSocket on `host:port` (port 0: a free one) for the block.

    `engine` is a running engine, or a data dir for the server to recover and run an engine of
    its own (with `engine_config`). `public_url` begins the URLs file storage answers
    (default: `server.url`); `stripe_webhook_secret` serves `POST /stripe/webhook`.
    Guarantees:

    - When the block starts, the listener is bound and accepting connections at `server.url`.
    - Leaving the block stops the server gracefully (as `stop()` does) and returns once it has
      stopped: the listener closed and every connection over. Leaving it by an exception or a
      cancellation cuts the connections at once instead.
    - An engine opened from a data dir is closed after the server has stopped, so everything
      it decided is committed when the block is left; an engine passed in stays open (its
      opener closes it).
    - A failure of the server itself, or of the block, propagates out of the block in an
      exception group, as from any trio nursery.
    """
    async with AsyncExitStack() as stack:
        if isinstance(engine, Engine):
            running = engine
        else:
            running = await stack.enter_async_context(open_engine(engine, config=engine_config))
        nursery = await stack.enter_async_context(trio.open_nursery())
        server = RunningServer(
            engine=running,
            host=host,
            port=port,
            metrics=metrics or Metrics(),
            config=config or ServerConfig(),
            stop_event=trio.Event(),
            stopped_event=trio.Event(),
            serving=trio.CancelScope(),
        )

        async def run(task_status: trio.TaskStatus[int]) -> None:
            try:
                with server._serving:
                    await serve(
                        running,
                        host=host,
                        port=port,
                        authenticator=authenticator,
                        config=server.config,
                        metrics=server.metrics,
                        stop=server._stop,
                        public_url=public_url,
                        stripe_webhook_secret=stripe_webhook_secret,
                        task_status=task_status,
                    )
            finally:
                server._stopped.set()

        server.port = await nursery.start(run)
        try:
            yield server
        finally:
            # A graceful stop; the nursery's exit waits for it (or, when the block raised,
            # cancels it: the connections are cut).
            server.stop()


__all__ = ["RunningServer", "open_server"]
