"""lab.opcount at its smallest size: joins are traced and counted on the loop thread."""

from __future__ import annotations

import functools

import trio

from lab.opcount import TASKS, count


def test_joins_are_traced_and_their_bytecodes_counted() -> None:
    counts = trio.run(count, TASKS)
    # Every traced join runs the decide step once and its handler once, on the loop thread.
    assert counts.calls["actor.py:Actor.decide"] == TASKS
    assert counts.calls["commands.py:join_waiting_list"] == TASKS
    assert counts.bytecodes["commands.py:join_waiting_list"] > 0
    assert sum(counts.bytecodes.values()) > sum(counts.calls.values())


def test_joins_with_request_ids_are_counted_too() -> None:
    counts = trio.run(functools.partial(count, TASKS, request_ids=True))
    assert counts.calls["actor.py:Actor.decide"] == TASKS
    assert counts.calls["engine.py:Engine._request_mark"] == TASKS  # each a session's request
