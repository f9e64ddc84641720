"""Test support for apps built on Turnstile: an in-process engine on a temporary data dir with
a virtual clock. Enabled automatically as the pytest plugin `turnstile` (see `plugin`)."""

from engine.testing.harness import EngineHarness, open_harness, staff, user

__all__ = ["EngineHarness", "open_harness", "staff", "user"]
