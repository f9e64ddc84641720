"""Every domain module the engine serves by default."""

from __future__ import annotations

from domain.model import Module
from domain.ticketing import TICKETING

MODULES: tuple[Module, ...] = (TICKETING,)
