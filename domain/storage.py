"""File storage's records: upload URLs, stored files and their deletion (Convex's storage API).

The bytes of a file live on disk beside the journal (`engine.files`); this module is what the
journal knows of them, pure like the rest of `domain/`:

- `storage:generateUploadUrl` (any signed-in caller or admin) creates a `file` aggregate with
  `UploadUrlIssued`: its id is the storage id to be, its `expires_at` one hour on. The URL
  names that id; it is good for one upload (`store` refuses an aggregate that is not waiting
  for its bytes) until it expires.
- `store` (run by the server once the bytes are durable on disk, not client-callable) records
  `FileStored` with the file's content type, size and sha256 (base64, as Convex reports it).
- A file belongs to the organization of the caller who asked for its URL (or, for a caller of
  no organization, to that caller; for the admin key, to no one): only they (and admin) delete
  it or refer to it in a record, and one of no one is anyone's to refer to.
- `storage:delete` records `FileDeleted`; the engine removes the bytes when that event is
  committed, before the mutation is answered. `erase_file` is the same, for a domain command
  that erases a record holding a file (a customer's photo), decided within that command.
- `storage:getUrl` and `storage:getMetadata` read a file's committed state: a file not stored
  yet, deleted or never issued is None.
- `STORED_FILES` folds every file's record (id -> size, sha256) for the engine: what must be on
  disk, what `replay --verify` checks, what a point-in-time copy takes.

The URLs' origin (`http://HOST:PORT`) is journaled too (`StorageOriginSet`, by the server as it
starts), so a query that answers a URL is a function of the journal like every other query.

For domain code and apps: `require_file(decision, storage_id)` refuses an id that is not a
stored file the caller may refer to, and decides on it within the command (so it cannot be
deleted before the command commits); `file_url(view, storage_id)` is the URL to put in a
document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import immutables

from domain.core import Aggregate, Decision, Event, Projection, View
from domain.errors import Conflict, InvalidArgs, NotFound
from domain.identity import Identity, require_authenticated
from domain.ids import is_root_id
from domain.model import Module, MutationSpec, QuerySpec

#: A file's bytes are served at `ORIGIN + FILE_PATH + storage_id`.
FILE_PATH = "/api/storage/"
#: An upload URL is `ORIGIN + UPLOAD_PATH + "?token=" + storage_id`.
UPLOAD_PATH = "/api/storage/upload"
#: How long an upload URL may be used (Convex: one hour).
UPLOAD_URL_MS = 60 * 60 * 1000
FILE_PREFIX = "kg"

ISSUED = "issued"
STORED = "stored"
DELETED = "deleted"


@attrs.frozen(kw_only=True)
class FileState:
    """One file's record. `status` "" (no events), `issued` (waiting for its bytes),
    `stored`, or `deleted`; `org_id` the uploader's organization (None for admin or a caller
    outside any organization)."""

    status: str = ""
    org_id: str | None = None
    user_id: str | None = None
    expires_at: int = 0
    content_type: str = ""
    sha256: str = ""
    size: int = 0
    stored_at: int = 0


@attrs.frozen(kw_only=True)
class UploadUrlIssued(Event):
    org_id: str | None
    user_id: str | None
    expires_at: int


@attrs.frozen(kw_only=True)
class FileStored(Event):
    content_type: str
    #: The sha256 of the bytes, base64.
    sha256: str
    size: int


@attrs.frozen(kw_only=True)
class FileDeleted(Event):
    """The file's bytes are removed from disk once this is committed."""


FILE_TRANSITIONS: dict[str, dict[type[Event], str]] = {
    "": {UploadUrlIssued: ISSUED},
    ISSUED: {FileStored: STORED},
    STORED: {FileDeleted: DELETED},
    DELETED: {},
}
"""The file lifecycle as data: status -> event type -> next status."""


def evolve(state: FileState, event: Event) -> FileState:
    status = FILE_TRANSITIONS[state.status].get(type(event))
    if status is None:
        raise TypeError(f"{type(event).__name__} does not apply to a file {state.status!r}")
    if isinstance(event, UploadUrlIssued):
        return FileState(
            status=status, org_id=event.org_id, user_id=event.user_id, expires_at=event.expires_at
        )
    if isinstance(event, FileStored):
        return attrs.evolve(
            state,
            status=status,
            content_type=event.content_type,
            sha256=event.sha256,
            size=event.size,
            stored_at=event.at,
        )
    return attrs.evolve(state, status=status)


FILE: Aggregate[FileState] = Aggregate(
    kind="file", id_prefix=FILE_PREFIX, state_type=FileState, initial=FileState(), evolve=evolve
)


@attrs.frozen(kw_only=True)
class OriginState:
    origin: str = ""


@attrs.frozen(kw_only=True)
class StorageOriginSet(Event):
    """The server's base URL (`http://HOST:PORT`), for the URLs storage answers."""

    origin: str


def _evolve_origin(state: OriginState, event: Event) -> OriginState:
    if not isinstance(event, StorageOriginSet):
        raise TypeError(f"not a storage origin event: {type(event).__name__}")
    return OriginState(origin=event.origin)


ORIGIN: Aggregate[OriginState] = Aggregate(
    kind="storageorigin",
    id_prefix="so",
    state_type=OriginState,
    initial=OriginState(),
    evolve=_evolve_origin,
)
ORIGIN_ID = "so_origin"


def set_origin(d: Decision[OriginState], origin: str) -> None:
    """Record `origin` if it is not the one recorded (a restart on the same address writes
    nothing)."""
    if d.state.origin != origin:
        d.emit(StorageOriginSet, origin=origin)


def _origin(view: View) -> str:
    state = view.aggregate(ORIGIN, ORIGIN_ID)
    return "" if state is None else state.origin


# -- args -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


@attrs.frozen(kw_only=True)
class StorageIdArgs:
    storage_id: str


@attrs.frozen(kw_only=True)
class StoreArgs:
    """What the server measured of an upload's bytes, durable on disk."""

    content_type: str
    sha256: str
    size: int


# -- commands ---------------------------------------------------------------------------------


def generate_upload_url(d: Decision[FileState], args: NoArgs) -> str:
    identity = d.identity
    require_authenticated(identity)
    d.emit(
        UploadUrlIssued,
        org_id=None if identity.is_admin else identity.org_id,
        user_id=identity.subject,
        expires_at=d.now + UPLOAD_URL_MS,
    )
    return f"{_origin(d.committed_view())}{UPLOAD_PATH}?token={d.aggregate_id}"


def upload_refusal(state: FileState, now: int) -> str | None:
    """Why an upload to this file's URL is refused now (`unknown`, `used`, `expired`), or
    None if it may store its bytes."""
    if state.status == "":
        return "unknown"
    if state.status != ISSUED:
        return "used"
    if now >= state.expires_at:
        return "expired"
    return None


def store(d: Decision[FileState], args: StoreArgs) -> str:
    """Record the uploaded file; its storage id. `Conflict` if the URL was used or expired,
    `NotFound` if it was never issued."""
    refusal = upload_refusal(d.state, d.now)
    if refusal == "unknown":
        raise NotFound("No such upload URL.")
    if refusal is not None:
        raise Conflict(f"This upload URL is {refusal}.", reason=refusal)
    d.emit(FileStored, content_type=args.content_type, sha256=args.sha256, size=args.size)
    return d.aggregate_id


def _owns(identity: Identity, state: FileState) -> bool:
    """Whether the caller may refer to the file or delete it: admin always; a file of an
    organization, its members; one of a user outside any organization, that user."""
    if identity.is_admin:
        return True
    if state.org_id is not None:
        return identity.org_id == state.org_id
    return state.user_id is not None and identity.subject == state.user_id


def _may_refer(identity: Identity, state: FileState) -> bool:
    """As `_owns`, and a file the admin key uploaded (of no one) is anyone's to refer to."""
    return _owns(identity, state) or (state.org_id is None and state.user_id is None)


def delete(d: Decision[FileState], args: StorageIdArgs) -> None:
    require_authenticated(d.identity)
    if d.state.status != STORED or not _owns(d.identity, d.state):
        raise NotFound(f"No stored file {args.storage_id!r}.", storageId=args.storage_id)
    d.emit(FileDeleted)


def require_file(d: Decision[Any], storage_id: str, *, path: str = "storageId") -> FileState:
    """The stored file `storage_id`, decided on within `d`'s command (so it cannot be deleted
    between the check and the commit). `InvalidArgs` naming `path` if the id is malformed,
    or is no stored file of the caller's organization."""
    if not is_root_id(storage_id, FILE_PREFIX):
        raise InvalidArgs(f"{storage_id!r} is not a storage id.", path=path)
    state: FileState = d.co_decide(FILE, storage_id).state
    if state.status != STORED or not _may_refer(d.identity, state):
        raise InvalidArgs(f"No stored file {storage_id!r}.", path=path)
    return state


def erase_file(d: Decision[Any], storage_id: str) -> None:
    """Delete `storage_id`'s bytes within `d`'s command, if it is a stored file (a record
    being erased may refer to a file already deleted)."""
    if not is_root_id(storage_id, FILE_PREFIX):
        return
    part: Decision[FileState] = d.co_decide(FILE, storage_id)
    if part.state.status == STORED:
        part.emit(FileDeleted)


# -- queries ----------------------------------------------------------------------------------


def _stored(view: View, storage_id: str) -> FileState | None:
    if not is_root_id(storage_id, FILE_PREFIX):
        return None
    state = view.aggregate(FILE, storage_id)
    return state if state is not None and state.status == STORED else None


def file_url(view: View, storage_id: str | None) -> str | None:
    """The URL of a stored file's bytes, or None (no id, not stored, deleted)."""
    if storage_id is None or _stored(view, storage_id) is None:
        return None
    return f"{_origin(view)}{FILE_PATH}{storage_id}"


def get_url(view: View, args: StorageIdArgs, identity: Identity) -> str | None:
    return file_url(view, args.storage_id)


def get_metadata(view: View, args: StorageIdArgs, identity: Identity) -> dict[str, Any] | None:
    state = _stored(view, args.storage_id)
    if state is None:
        return None
    return {
        "storageId": args.storage_id,
        "contentType": state.content_type,
        "sha256": state.sha256,
        "size": state.size,
        "_creationTime": state.stored_at,
    }


# -- the read model of stored files -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StoredFile:
    size: int
    sha256: str


def _apply(files: immutables.Map[str, StoredFile], event: Event) -> immutables.Map[str, StoredFile]:
    storage_id = event.stream.partition("/")[2]
    if isinstance(event, FileStored):
        return files.set(storage_id, StoredFile(size=event.size, sha256=event.sha256))
    if isinstance(event, FileDeleted):
        return files.delete(storage_id) if storage_id in files else files
    return files


def _keys(event: Event) -> Iterable[str]:
    return ("files",)


STORED_FILES: Projection[immutables.Map[str, StoredFile]] = Projection(
    name="storedFiles",
    state_type=immutables.Map[str, StoredFile],
    initial=immutables.Map(),
    apply=_apply,
    keys=_keys,
    event_types=(FileStored, FileDeleted),
)


STORAGE = Module(
    aggregates=(FILE, ORIGIN),
    projections=(STORED_FILES,),
    mutations=(
        MutationSpec(
            name="storage:generateUploadUrl",
            args_type=NoArgs,
            aggregate=FILE,
            route=None,
            handle=generate_upload_url,
        ),
        MutationSpec(
            name="storage:delete",
            args_type=StorageIdArgs,
            aggregate=FILE,
            route=lambda args: args.storage_id,
            handle=delete,
        ),
    ),
    queries=(
        QuerySpec(name="storage:getUrl", args_type=StorageIdArgs, evaluate=get_url),
        QuerySpec(name="storage:getMetadata", args_type=StorageIdArgs, evaluate=get_metadata),
    ),
)

__all__ = [
    "FILE",
    "FILE_PATH",
    "ORIGIN",
    "ORIGIN_ID",
    "STORAGE",
    "STORED_FILES",
    "UPLOAD_PATH",
    "FileDeleted",
    "FileState",
    "FileStored",
    "StoreArgs",
    "StoredFile",
    "UploadUrlIssued",
    "erase_file",
    "file_url",
    "require_file",
    "set_origin",
    "store",
    "upload_refusal",
]
