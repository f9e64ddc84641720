"""Of one actor's submissions in one batch only the last one's state becomes the committed
state; the states before it are released when the batch is prepared (engine/group_commit.py),
and what is committed, queried and recovered is the same as if every state had been kept."""

from __future__ import annotations

from pathlib import Path

from engine.actor import SUPERSEDED, Submission
from engine.testing.harness import open_harness
from tests.engine.conftest import CONFIG
from tests.engine.counters import COUNTERS


async def test_only_the_last_state_of_an_actor_in_a_batch_is_kept(tmp_path: Path) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        first = await h.mutation("counters:create", {"label": "a"})
        second = await h.mutation("counters:create", {"label": "b"})
        submitted: list[Submission] = []
        submit = h.engine._commit.submit

        def recording(submission: Submission) -> None:
            submitted.append(submission)
            submit(submission)

        h.engine._commit.submit = recording  # type: ignore[method-assign]
        # One synchronous burst: all of it is queued before the commit task takes a batch.
        pending = [
            h.engine.begin_mutation("counters:add", {"counterId": cid, "amount": n}, h.admin)
            for n, cid in [(1, first), (2, second), (3, first), (4, first), (5, second)]
        ]
        for p in pending:
            await p.outcome()
        assert [p.result().value for p in pending] == [1, 2, 4, 8, 7]
        by_actor: dict[str, list[object]] = {}
        for submission in submitted:
            by_actor.setdefault(submission.actor.stream, []).append(submission.state)
        for states in by_actor.values():
            assert all(state is SUPERSEDED for state in states[:-1])
            assert states[-1] is not SUPERSEDED
        assert (await h.query("counters:get", {"counterId": first}))["total"] == 8
        assert (await h.query("counters:get", {"counterId": second}))["total"] == 7
        await h.restart()
        assert (await h.query("counters:get", {"counterId": first}))["total"] == 8
        assert (await h.query("counters:get", {"counterId": second}))["total"] == 7
