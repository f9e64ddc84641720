"""`engine.tune_gc()`: automatic collection off and what recovery built frozen out of the
collector's reach once the engine has recovered (engine/engine.py, engine/collector.py); and no
cyclic garbage from a refused command or query, which collecting only at rest counts on."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import trio
import trio.testing

import engine.engine as engine_module
from domain.errors import Conflict, Forbidden
from domain.identity import Identity
from engine import EngineConfig, open_engine, tune_gc
from tests.engine.counters import COUNTERS


async def test_tune_gc_freezes_what_recovery_built_and_turns_collection_off(
    tmp_path: Path,
) -> None:
    engine_module._tuned = False  # as in a process that never tuned
    gc.unfreeze()
    config = EngineConfig(snapshot_every=0, offload_io=False)
    try:
        async with open_engine(tmp_path / "data", modules=(COUNTERS,), config=config):
            assert gc.get_freeze_count() == 0  # not tuned: nothing frozen
            assert gc.isenabled()
        tune_gc()
        assert not gc.isenabled()
        async with open_engine(tmp_path / "data", modules=(COUNTERS,), config=config) as e:
            assert gc.get_freeze_count() > 0
            assert await e.mutation("counters:create", {"label": "a"})  # works as usual
    finally:
        gc.unfreeze()
        gc.enable()
        engine_module._tuned = False


async def test_a_refused_mutation_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    """What `tune_gc`'s collector counts on: a command's objects, a refused one's too, die by
    reference counting. The refusal a caller gets is a copy of the stored one (its type,
    message and details), so no traceback of it holds the reply that holds it."""
    config = EngineConfig(snapshot_every=0, offload_io=False)
    async with open_engine(tmp_path / "data", modules=(COUNTERS,), config=config) as engine:
        created = await engine.mutation("counters:create", {"label": "a"})
        counter = {"counterId": created.value, "amount": -5}
        for _ in range(2):  # warm: the first refusal builds what every one reuses
            with pytest.raises(Conflict) as raised:
                await engine.mutation("counters:add", counter)
            assert raised.value.details == {"total": 0}
            del raised
        gc.collect()
        gc.disable()
        try:
            with pytest.raises(Conflict):
                await engine.mutation("counters:add", counter)
            pending = engine.begin_mutation("counters:add", counter)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(Conflict, match="Not enough"):
                await pending.outcome()
            with pytest.raises(Conflict):
                pending.result()
            del pending
            assert gc.collect() == 0
        finally:
            gc.enable()


async def test_a_refused_query_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    config = EngineConfig(snapshot_every=0, offload_io=False)
    async with open_engine(tmp_path / "data", config=config) as engine:  # the booking domain
        args, someone_else = {"userId": "someone"}, Identity(subject="other")
        for _ in range(2):  # warm
            with pytest.raises(Forbidden):
                await engine.query("events:getUserTickets", args, someone_else)
        gc.collect()
        gc.disable()
        try:
            with pytest.raises(Forbidden):
                await engine.query("events:getUserTickets", args, someone_else)
            assert gc.collect() == 0
        finally:
            gc.enable()
