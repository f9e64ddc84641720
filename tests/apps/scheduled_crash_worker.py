"""The process the SIGKILL test of scheduled functions kills (tests/apps/test_scheduled.py).

`python -m tests.apps.scheduled_crash_worker DATA_DIR POINT` opens an engine on DATA_DIR with
the reminders app, on the real clock, makes one reminder due at once, and parks the run of
its schedule at POINT: `before` (the schedule is durably running, its function not run) or
`after` (the function's commit is durable, its outcome not recorded). It prints
`{"reached": POINT, "reminderId": ...}` there and waits to be killed (a minute at most).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import trio

from engine import open_engine
from engine.actor import RequestKey
from engine.apps import load_apps
from engine.scheduled import Dispatch
from engine.testing import staff


class Park:
    """The engine's own dispatch, stopped for good at `point`."""

    def __init__(self, inner: Dispatch, point: str) -> None:
        self.inner = inner
        self.point = point
        self.reminder_id = ""

    def check(self, function: str, args: Mapping[str, Any]) -> str:
        return self.inner.check(function, args)

    async def run(self, function: str, args: dict[str, Any], request: RequestKey) -> Any:
        if self.point == "after":
            await self.inner.run(function, args, request)
        print(json.dumps({"reached": self.point, "reminderId": args["reminderId"]}), flush=True)
        await trio.sleep_forever()  # until the SIGKILL


async def main(data_dir: str, point: str) -> None:
    # Bounded: a worker that is not killed within a minute gives up (and so ends its output).
    with trio.move_on_after(60):
        async with open_engine(data_dir, modules=load_apps(["tests.apps.reminders"])) as engine:
            engine.scheduled.dispatch = Park(engine.scheduled.dispatch, point)
            await engine.mutation(
                "reminders:create", {"text": "call", "delayMs": 0}, staff("anna", "org_a")
            )
            await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
