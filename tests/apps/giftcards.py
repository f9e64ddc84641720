"""Gift cards: the worked example of docs/apps.md, an app served beside the built-in one.

`turnstile serve --app tests.apps.giftcards` serves it. A gift card is an aggregate because its
balance is a serial invariant (two redemptions racing for the last 10 pounds: one wins); the
organization's list of cards is a read model; a daily cron job expires the cards past their
date.
"""

from __future__ import annotations

import attrs
import immutables

from domain import (
    Aggregate,
    App,
    Conflict,
    CronJob,
    DailyAt,
    Decision,
    Event,
    Identity,
    InvalidArgs,
    JobCommand,
    MutationSpec,
    NotFound,
    PaginationOpts,
    Projection,
    QuerySpec,
    View,
    org_for_new_record,
    paginate,
    require_cap,
    require_org,
    scope_of,
)

DAY_MS = 24 * 60 * 60 * 1000
#: Who may issue and redeem cards (a capability Turnstile knows: docs/reference/identity.md).
MANAGE = "orders:manage"


# -- events: the journal's vocabulary, all in the app's namespace ----------------------------------


class GiftCardEvent(Event):
    """Every event of this app: its journal type is `giftcards.<ClassName>`."""

    namespace = "giftcards"


@attrs.frozen(kw_only=True)
class GiftCardIssued(GiftCardEvent):
    personal_fields = ("recipient",)

    org_id: str
    amount: int
    recipient: str
    expires_at: int


@attrs.frozen(kw_only=True)
class GiftCardRedeemed(GiftCardEvent):
    amount: int


@attrs.frozen(kw_only=True)
class GiftCardExpired(GiftCardEvent):
    org_id: str


# -- the aggregate ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GiftCard:
    org_id: str = ""
    balance: int = 0
    recipient: str = ""
    expires_at: int = 0
    expired: bool = False


def evolve(card: GiftCard, event: Event) -> GiftCard:
    match event:
        case GiftCardIssued():
            return GiftCard(
                org_id=event.org_id,
                balance=event.amount,
                recipient=event.recipient,
                expires_at=event.expires_at,
            )
        case GiftCardRedeemed(amount=amount):
            return attrs.evolve(card, balance=card.balance - amount)
        case GiftCardExpired():
            return attrs.evolve(card, balance=0, expired=True)
    raise TypeError(f"{type(event).__name__} is not a gift card event")


def check_invariants(card: GiftCard) -> None:
    assert card.balance >= 0, "a gift card's balance went negative"


GIFT_CARD = Aggregate(
    kind="giftcard",
    id_prefix="gc",
    state_type=GiftCard,
    initial=GiftCard(),
    evolve=evolve,
    check_invariants=check_invariants,
)


# -- mutations -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IssueArgs:
    amount: int
    recipient: str
    valid_days: int = 365
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class RedeemArgs:
    gift_card_id: str
    amount: int


@attrs.frozen(kw_only=True)
class GiftCardIdArgs:
    gift_card_id: str


def issue(d: Decision[GiftCard], args: IssueArgs) -> str:
    """giftcards:issue -> the new card's id."""
    require_cap(d.identity, MANAGE)
    org_id = org_for_new_record(d.identity, args.org_id)
    if not 1 <= args.amount <= 1_000_000:
        raise InvalidArgs("amount must be between 1 and 1000000 (minor units).", path="amount")
    if not 1 <= args.valid_days <= 3650:
        raise InvalidArgs("validDays must be between 1 and 3650.", path="validDays")
    d.emit(
        GiftCardIssued,
        org_id=org_id,
        amount=args.amount,
        recipient=args.recipient,
        expires_at=d.now + args.valid_days * DAY_MS,
    )
    return d.aggregate_id


def _card(d: Decision[GiftCard]) -> GiftCard:
    card = d.state
    require_org(d.identity, card.org_id or None, "Gift card")
    return card


def redeem(d: Decision[GiftCard], args: RedeemArgs) -> int:
    """giftcards:redeem -> the balance left. Conflict when the card holds less than `amount`
    or has expired: serial per card, so two redemptions never spend one balance twice."""
    require_cap(d.identity, MANAGE)
    card = _card(d)
    if args.amount < 1:
        raise InvalidArgs("amount must be at least 1.", path="amount")
    if card.expired or d.now >= card.expires_at:
        raise Conflict("This gift card has expired.")
    if card.balance < args.amount:
        raise Conflict("Not enough left on this gift card.", balance=card.balance)
    d.emit(GiftCardRedeemed, amount=args.amount)
    return d.state.balance


def expire(d: Decision[GiftCard], args: GiftCardIdArgs) -> None:
    """giftcards:expire: the cron job's command; also an operator's (admin only)."""
    if not d.identity.is_admin:
        raise NotFound("Gift card not found.")
    card = d.state
    if card.org_id and not card.expired and d.now >= card.expires_at:
        d.emit(GiftCardExpired, org_id=card.org_id)


# -- the read model and the queries ----------------------------------------------------------------

#: Per organization, its cards: id -> (issued_at, expires_at, expired).
Cards = immutables.Map[str, immutables.Map[str, tuple[int, int, bool]]]


def apply_cards(cards: Cards, event: Event) -> Cards:
    card_id = event.stream.partition("/")[2]
    entries = cards.get(getattr(event, "org_id", ""), immutables.Map())
    if isinstance(event, GiftCardIssued):
        entry = (event.at, event.expires_at, False)
    elif isinstance(event, GiftCardExpired):
        entry = (*entries[card_id][:2], True)
    else:
        return cards
    return cards.set(event.org_id, entries.set(card_id, entry))


def _cards_keys(event: Event) -> tuple[str, ...]:
    # A subscription to one organization's list is re-run only when that list changes.
    return (event.org_id,) if isinstance(event, GiftCardIssued | GiftCardExpired) else ()


CARDS = Projection(
    name="giftcards.cards",
    state_type=Cards,
    initial=immutables.Map(),
    apply=apply_cards,
    keys=_cards_keys,
    event_types=(GiftCardIssued, GiftCardExpired),
)


@attrs.frozen(kw_only=True)
class ListArgs:
    org_id: str | None = None
    #: Convex's `paginationOpts` (`usePaginatedQuery`): a page instead of the whole list.
    pagination_opts: PaginationOpts | None = None


def _doc(card_id: str, card: GiftCard) -> dict[str, object]:
    return {
        "_id": card_id,
        "balance": card.balance,
        "recipient": card.recipient,
        "expiresAt": card.expires_at,
        "expired": card.expired,
    }


def get(view: View, args: GiftCardIdArgs, identity: Identity) -> dict[str, object] | None:
    """giftcards:get -> the card, or null (also for another organization's card)."""
    require_cap(identity, MANAGE)
    card = view.aggregate(GIFT_CARD, args.gift_card_id)
    if card is None or not (identity.is_admin or card.org_id == identity.org_id):
        return None
    return _doc(args.gift_card_id, card)


def list_cards(
    view: View, args: ListArgs, identity: Identity
) -> list[dict[str, object]] | dict[str, object]:
    """giftcards:list -> the organization's cards, oldest first; with `paginationOpts`, a page
    of them (keyed by issue time and id, so pages never skip or repeat a card)."""
    require_cap(identity, MANAGE)
    org_id = org_for_new_record(identity, args.org_id)
    entries = view.projection(CARDS, org_id).get(org_id, immutables.Map())
    ordered = sorted((issued_at, card_id) for card_id, (issued_at, _, _) in entries.items())

    def doc(key: tuple[int, str]) -> dict[str, object]:
        card = view.aggregate(GIFT_CARD, key[1])
        assert card is not None, "a listed card has events"
        return _doc(key[1], card)

    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=lambda k: k,
            opts=args.pagination_opts,
            scope=scope_of("giftcards:list", args),
        )
        return page.doc(doc)
    return [doc(key) for key in ordered]


# -- the cron job ----------------------------------------------------------------------------------


def plan_expiry(view: View, now: int) -> list[JobCommand]:
    """Every card past its date and not yet expired, once a day."""
    commands = []
    for entries in view.projection(CARDS, "").values():
        for card_id, (_, expires_at, expired) in entries.items():
            if not expired and expires_at <= now:
                commands.append(
                    JobCommand(
                        mutation="giftcards:expire", args={"giftCardId": card_id}, key=card_id
                    )
                )
    return commands


app = App(
    name="giftcards",
    aggregates=(GIFT_CARD,),
    projections=(CARDS,),
    mutations=(
        MutationSpec(
            name="giftcards:issue",
            args_type=IssueArgs,
            aggregate=GIFT_CARD,
            route=None,
            handle=issue,
        ),
        MutationSpec(
            name="giftcards:redeem",
            args_type=RedeemArgs,
            aggregate=GIFT_CARD,
            route=lambda args: args.gift_card_id,
            handle=redeem,
        ),
        MutationSpec(
            name="giftcards:expire",
            args_type=GiftCardIdArgs,
            aggregate=GIFT_CARD,
            route=lambda args: args.gift_card_id,
            handle=expire,
        ),
    ),
    queries=(
        QuerySpec(name="giftcards:get", args_type=GiftCardIdArgs, evaluate=get),
        QuerySpec(name="giftcards:list", args_type=ListArgs, evaluate=list_cards),
    ),
    jobs=(CronJob(name="giftcards.expire", schedule=DailyAt(hour=3), plan=plan_expiry),),
)
