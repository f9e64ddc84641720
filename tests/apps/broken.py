"""Apps that cannot be served, one per attribute, each refused by `load_apps` before anything
starts (tests/apps/test_loading.py). They define no event types of their own."""

from __future__ import annotations

import attrs

from domain import Aggregate, App, Decision, Identity, MutationSpec, QuerySpec, View
from tests.apps import giftcards


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


def _nothing(view: View, args: NoArgs, identity: Identity) -> None:
    return None


def _query(name: str) -> QuerySpec[NoArgs]:
    return QuerySpec(name=name, args_type=NoArgs, evaluate=_nothing)


def _reply(d: Decision[giftcards.GiftCard], args: NoArgs) -> None:
    return None


TWICE = App(name="twice", queries=(_query("things:get"), _query("things:get")))
TAKES_A_BUILTIN_NAME = App(name="squatter", queries=(_query("events:list"),))
SYSTEM_NAME = App(name="system_like", queries=(_query("_system:listTables"),))
STORAGE_NAME = App(name="storage_like", queries=(_query("storage:getUrl"),))
BOOKING = App(name="booking", queries=(_query("mine:get"),))
ALIAS_TO_NOTHING = App(
    name="aliased", queries=(_query("things:get"),), aliases=(("stuff:get", "things:gone"),)
)
ALIAS_HIDING_A_FUNCTION = App(
    name="hider", queries=(_query("things:get"),), aliases=(("events:list", "things:get"),)
)
SAME_KIND = App(
    name="copycat",
    aggregates=(giftcards.GIFT_CARD,),
    mutations=(
        MutationSpec(
            name="copies:make",
            args_type=NoArgs,
            aggregate=giftcards.GIFT_CARD,
            route=None,
            handle=_reply,
        ),
    ),
)
SECOND_GIFTCARDS = App(name="giftcards", queries=(_query("other:get"),))
NOT_AN_APP = {"name": "dict"}
ENGINE_PREFIX = App(
    name="squatter",
    aggregates=(
        Aggregate(
            kind="limits",
            id_prefix="rl",
            state_type=NoArgs,
            initial=NoArgs(),
            evolve=lambda s, e: s,
        ),
    ),
)
