"""What every test may rely on: a process whose garbage collector is as Python's, whatever an
earlier test ran in-process (a lab tool's `main` calls `engine.tune_gc()`, as a server does,
which turns automatic collection off and has every engine opened afterwards run the
collector of engine/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import engine.engine as engine_module


@pytest.fixture(autouse=True)
def untuned_gc() -> Iterator[None]:
    yield
    if engine_module._tuned or not gc.isenabled():
        engine_module._tuned = False
        gc.unfreeze()
        gc.enable()
