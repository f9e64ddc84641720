"""Turnstile's engine: actors, the durable journal, read models, timers and live queries.

The public face is `open_engine(data_dir)`; see `engine.engine` for its guarantees.

The names below are imported when first used (PEP 562), so that importing a part that needs
none of the engine, such as the client (`engine.client`) or the wire (`engine.wire`), does not
load the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.engine import Engine, EngineConfig, Outcome, RecoveryReport, open_engine, tune_gc
    from engine.registry import Registry

#: Where each public name is defined.
_HOMES = {
    "Clock": "engine.clock",
    "Engine": "engine.engine",
    "EngineConfig": "engine.engine",
    "Outcome": "engine.engine",
    "RecoveryReport": "engine.engine",
    "Registry": "engine.registry",
    "open_engine": "engine.engine",
    "tune_gc": "engine.engine",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "Clock",
    "Engine",
    "EngineConfig",
    "Outcome",
    "RecoveryReport",
    "Registry",
    "open_engine",
    "tune_gc",
]
