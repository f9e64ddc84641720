"""A small app for the `turnstile codegen` tests: notes on a board.

It declares what the generated `api` has to get right beyond the built-in app: module paths
with `/` (`notes/board:add` is `api.notes.board.add`) and with `.` (`notes.v2:count` is
`api["notes.v2"].count`), args with defaults and a `Literal`, a `TypedDict` result from the
handler's annotation and one from `returns`, and an alias (`board:add`).
`turnstile serve --app tests.interop.codegen_app` serves it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import attrs

from domain.app import App
from domain.identity import Identity
from domain.model import Aggregate, Decision, Event, MutationSpec, QuerySpec, View

Color = Literal["red", "green", "blue"]


class NoteEvent(Event):
    namespace = "notes"


@attrs.frozen(kw_only=True)
class NoteAdded(NoteEvent):
    text: str
    tags: tuple[str, ...]
    color: Color | None


@attrs.frozen(kw_only=True)
class NotePinned(NoteEvent):
    pinned: bool


@attrs.frozen(kw_only=True)
class Note:
    text: str = ""
    tags: tuple[str, ...] = ()
    color: Color | None = None
    pinned: bool = False


def evolve(note: Note, event: Event) -> Note:
    if isinstance(event, NoteAdded):
        return Note(text=event.text, tags=event.tags, color=event.color)
    if isinstance(event, NotePinned):
        return attrs.evolve(note, pinned=event.pinned)
    raise TypeError(f"{type(event).__name__} is not a note event")


NOTE = Aggregate(kind="note", id_prefix="nt", state_type=Note, initial=Note(), evolve=evolve)


@attrs.frozen(kw_only=True)
class AddNoteArgs:
    text: str
    tags: tuple[str, ...] = ()
    color: Color | None = None


@attrs.frozen(kw_only=True)
class PinArgs:
    note_id: str
    pinned: bool


@attrs.frozen(kw_only=True)
class NoteIdArgs:
    note_id: str


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


class NoteDoc(TypedDict):
    _id: str
    text: str
    tags: list[str]
    color: Color | None
    pinned: bool


class CountDoc(TypedDict):
    notes: int


def add(d: Decision[Note], args: AddNoteArgs) -> str:
    d.emit(NoteAdded, text=args.text, tags=args.tags, color=args.color)
    return d.aggregate_id


def pin(d: Decision[Note], args: PinArgs) -> None:
    d.emit(NotePinned, pinned=args.pinned)


def get(view: View, args: NoteIdArgs, identity: Identity) -> NoteDoc | None:
    note = view.aggregate(NOTE, args.note_id)
    if note is None:
        return None
    return {
        "_id": args.note_id,
        "text": note.text,
        "tags": list(note.tags),
        "color": note.color,
        "pinned": note.pinned,
    }


def count(view: View, args: NoArgs, identity: Identity) -> dict[str, Any]:
    """How many notes there are: none are listed anywhere, so this one is always 0."""
    return {"notes": 0}


app = App(
    name="notes",
    aggregates=(NOTE,),
    mutations=(
        MutationSpec(
            name="notes/board:add", args_type=AddNoteArgs, aggregate=NOTE, route=None, handle=add
        ),
        MutationSpec(
            name="notes/board:pin",
            args_type=PinArgs,
            aggregate=NOTE,
            route=lambda args: args.note_id,
            handle=pin,
        ),
    ),
    queries=(
        QuerySpec(name="notes/board:get", args_type=NoteIdArgs, evaluate=get),
        QuerySpec(name="notes.v2:count", args_type=NoArgs, evaluate=count, returns=CountDoc),
    ),
    aliases=(("board:add", "notes/board:add"),),
)
