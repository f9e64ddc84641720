"""The built-in app, `booking`: every domain module the engine serves by default.

A package of its own, above every area: it imports them all, while the areas import the root
modules of `domain` (`domain.model`, `domain.errors`, ...), so the root imports none of them."""

from __future__ import annotations

from domain.app import BUILTIN_APP, App
from domain.catalog.aliases import SEED_ALIASES
from domain.catalog.erasure import with_erasure_everywhere
from domain.model import Module
from domain.notifications import NOTIFICATIONS
from domain.releases import RELEASES
from domain.ticketing import TICKETING
from domain.venue import VENUE

MODULES: tuple[Module, ...] = (
    TICKETING,
    NOTIFICATIONS,
    with_erasure_everywhere(),
    VENUE,
    RELEASES,
)

#: The built-in booking domain as one app, loaded like any other (`engine.apps.load_apps`).
BOOKING = App.combining(BUILTIN_APP, MODULES, aliases=SEED_ALIASES)
