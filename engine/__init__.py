"""Turnstile's engine: actors, the durable journal, read models, timers and live queries.

The public face is `open_engine(data_dir)`; see `engine.engine` for its guarantees.
"""

from engine.clock import Clock
from engine.engine import Engine, EngineConfig, Outcome, RecoveryReport, open_engine, tune_gc
from engine.registry import Registry

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
