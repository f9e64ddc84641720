"""Every domain module the engine serves by default."""

from __future__ import annotations

from domain.model import Module
from domain.notifications import NOTIFICATIONS
from domain.ticketing import TICKETING

MODULES: tuple[Module, ...] = (TICKETING, NOTIFICATIONS)
