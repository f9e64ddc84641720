"""An app whose event type has no namespace (refused by `load_apps`): its journal name would be
bare, where the built-in events live."""

from __future__ import annotations

import attrs

from domain import App, Event


@attrs.frozen(kw_only=True)
class LooseThingHappened(Event):
    what: str


app = App(name="loose")
