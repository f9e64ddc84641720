"""An app whose answers are who signed in: what queries and mutations see of the caller.

`signins:whoami` answers the caller's `subject`, `tokenIdentifier` (Convex's `iss|sub`) and
organization; `signins:write` records a note as its author, with the `tokenIdentifier` the
mutation saw, and `signins:note` shows a note to its author only. The identity-provider tests
serve it beside the built-in app to check a token's identity reaches the handlers.
"""

from __future__ import annotations

import attrs

from domain import (
    Aggregate,
    App,
    Decision,
    Event,
    Identity,
    InvalidArgs,
    MutationSpec,
    QuerySpec,
    View,
    require_authenticated,
)

#: The longest note `signins:write` takes.
MAX_NOTE_CHARS = 200


class SignInEvent(Event):
    namespace = "signins"


@attrs.frozen(kw_only=True)
class NoteWritten(SignInEvent):
    personal_fields = ("text",)

    author: str
    token_identifier: str
    text: str


@attrs.frozen(kw_only=True)
class Note:
    author: str = ""
    token_identifier: str = ""
    text: str = ""


def evolve(note: Note, event: Event) -> Note:
    if isinstance(event, NoteWritten):
        return Note(author=event.author, token_identifier=event.token_identifier, text=event.text)
    raise TypeError(f"{type(event).__name__} is not a note event")


NOTE = Aggregate(kind="note", id_prefix="nt", state_type=Note, initial=Note(), evolve=evolve)


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


@attrs.frozen(kw_only=True)
class WriteArgs:
    text: str


@attrs.frozen(kw_only=True)
class NoteIdArgs:
    note_id: str


def whoami(view: View, args: NoArgs, identity: Identity) -> dict[str, object] | None:
    """signins:whoami -> the caller as the query sees it; null for an anonymous caller."""
    if identity.is_anonymous:
        return None
    return {
        "subject": identity.subject,
        "tokenIdentifier": identity.token_identifier,
        "orgId": identity.org_id,
        "isAdmin": identity.is_admin,
    }


def write(d: Decision[Note], args: WriteArgs) -> dict[str, object]:
    """signins:write -> the new note's id and the `tokenIdentifier` the mutation saw."""
    require_authenticated(d.identity)
    if d.identity.subject is None or d.identity.token_identifier is None:
        raise InvalidArgs("Only a signed-in user writes notes.", path="")
    if len(args.text) > MAX_NOTE_CHARS:
        raise InvalidArgs(f"A note is at most {MAX_NOTE_CHARS} characters.", path="text")
    d.emit(
        NoteWritten,
        author=d.identity.subject,
        token_identifier=d.identity.token_identifier,
        text=args.text,
    )
    return {"_id": d.aggregate_id, "tokenIdentifier": d.identity.token_identifier}


def note(view: View, args: NoteIdArgs, identity: Identity) -> dict[str, object] | None:
    """signins:note -> the note, for its author only (null for anyone else)."""
    found = view.aggregate(NOTE, args.note_id)
    if found is None or identity.subject is None or found.author != identity.subject:
        return None
    return {"_id": args.note_id, "text": found.text, "tokenIdentifier": found.token_identifier}


app = App(
    name="signins",
    aggregates=(NOTE,),
    mutations=(
        MutationSpec(
            name="signins:write", args_type=WriteArgs, aggregate=NOTE, route=None, handle=write
        ),
    ),
    queries=(
        QuerySpec(name="signins:whoami", args_type=NoArgs, evaluate=whoami),
        QuerySpec(name="signins:note", args_type=NoteIdArgs, evaluate=note),
    ),
)
