"""Every domain module the engine serves by default."""

from __future__ import annotations

from domain.customers import CUSTOMERS
from domain.model import Module
from domain.notifications import NOTIFICATIONS
from domain.ticketing import TICKETING
from domain.venue import VENUE

MODULES: tuple[Module, ...] = (TICKETING, NOTIFICATIONS, CUSTOMERS, VENUE)
