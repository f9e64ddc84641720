"""Shared set-up for tests that drive a live in-process server over real sockets."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from domain.identity import ADMIN
from engine import Engine
from engine.server import Authenticator, RunningServer, open_server


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


def serving(engine: Engine) -> AbstractAsyncContextManager[RunningServer]:
    """`engine` served on a free 127.0.0.1 port for the block (`open_server`); the engine
    stays open after it."""
    return open_server(engine, authenticator=Authenticator(admin_key="k", jwt_secret="x" * 32))
