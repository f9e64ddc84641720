"""An app that defines an event type in another app's namespace (refused by `load_apps`)."""

from __future__ import annotations

import attrs

from domain import App
from tests.apps.giftcards import GiftCardEvent


@attrs.frozen(kw_only=True)
class GiftCardForged(GiftCardEvent):
    """In the `giftcards` namespace, though this app is `forger`."""

    amount: int


app = App(name="forger")
