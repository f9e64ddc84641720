"""`engine.tune_gc()`: thresholds for a long-lived server, and what recovery built frozen out of
the collector's reach once the engine has recovered (engine/engine.py)."""

from __future__ import annotations

import gc
from pathlib import Path

import engine.engine as engine_module
from engine import EngineConfig, open_engine, tune_gc
from tests.engine.counters import COUNTERS


async def test_tune_gc_freezes_what_recovery_built(tmp_path: Path) -> None:
    thresholds = gc.get_threshold()
    engine_module._freeze_after_recovery = False  # as in a process that never tuned
    gc.unfreeze()
    config = EngineConfig(snapshot_every=0, offload_io=False)
    try:
        async with open_engine(tmp_path / "data", modules=(COUNTERS,), config=config):
            assert gc.get_freeze_count() == 0  # not tuned: nothing frozen
        tune_gc()
        assert gc.get_threshold() == engine_module.GC_THRESHOLDS
        async with open_engine(tmp_path / "data", modules=(COUNTERS,), config=config) as e:
            assert gc.get_freeze_count() > 0
            assert await e.mutation("counters:create", {"label": "a"})  # works as usual
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        engine_module._freeze_after_recovery = False
