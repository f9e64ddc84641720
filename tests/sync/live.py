"""Shared set-up for tests that drive a live in-process server over real sockets."""

from __future__ import annotations

from typing import Any

import trio

from domain.identity import ADMIN
from engine import Engine
from engine.server.auth import Authenticator
from engine.server.http import serve


async def create_rush(engine: Engine, tickets: int) -> str:
    """An event with `tickets` seats, created by the admin."""
    outcome = await engine.mutation(
        "events:create",
        {
            "name": "Rush",
            "description": "",
            "location": "Arena",
            "eventDate": 1_900_000_000_000,
            "price": 100,
            "totalTickets": tickets,
            "orgId": "org_a",
        },
        ADMIN,
    )
    return str(outcome.value)


async def start_server(nursery: trio.Nursery, engine: Engine, stop: trio.Event) -> int:
    """Serve `engine` on a free 127.0.0.1 port until `stop` is set; return the port."""

    async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await serve(
            engine,
            port=0,
            authenticator=Authenticator(admin_key="k", jwt_secret="x" * 32),
            stop=stop,
            task_status=task_status,
        )

    port: int = await nursery.start(run)
    return port
