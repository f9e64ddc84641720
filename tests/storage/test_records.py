"""The file records of `domain.storage`, pure: the lifecycle table (issued -> stored ->
deleted), an upload URL good once and for an hour, deletion within the file's organization, and
a refusal that decides nothing."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import Conflict, NotFound, Unauthenticated
from domain.identity import ADMIN, ANONYMOUS, Identity
from domain.model import decide
from domain.storage import (
    FILE,
    UPLOAD_URL_MS,
    FileDeleted,
    FileState,
    FileStored,
    StorageIdArgs,
    StoreArgs,
    UploadUrlIssued,
    delete,
    evolve,
    generate_upload_url,
    store,
)

ID = "kg_abcdefabcdef"
STREAM = FILE.stream_of(ID)
T0 = 1_800_000_000_000
ANN = Identity(subject="ann", org_id="org_a")
ARGS = StoreArgs(content_type="image/png", sha256="c2hh", size=3)


class NoOrigin:
    """A committed view with nothing in it: no server has journaled its URL's origin."""

    def aggregate(self, aggregate: Any, aggregate_id: str) -> Any:
        return None

    def projection(self, projection: Any, key: str) -> Any:
        return projection.initial


def run(state: FileState, version: int, handle: Any, args: Any, who: Identity, now: int) -> Any:
    return decide(
        FILE,
        STREAM,
        state,
        version,
        handle,
        args,
        identity=who,
        now=now,
        tokens=lambda: "t",
        committed=NoOrigin,
    )


def issued(who: Identity = ANN) -> FileState:
    decided = run(FILE.initial, 0, generate_upload_url, None, who, T0)
    (event,) = decided.decision.events
    assert isinstance(event, UploadUrlIssued)
    assert event.expires_at == T0 + UPLOAD_URL_MS
    assert decided.value.endswith(f"/api/storage/upload?token={ID}")
    state: FileState = decided.decision.state
    return state


def test_an_upload_url_is_for_signed_in_callers_and_records_their_organization() -> None:
    with pytest.raises(Unauthenticated):
        run(FILE.initial, 0, generate_upload_url, None, ANONYMOUS, T0)
    assert issued().org_id == "org_a"
    assert issued(ADMIN).org_id is None


def test_a_url_stores_one_file_within_its_hour() -> None:
    state = issued()
    with pytest.raises(Conflict) as late:
        run(state, 1, store, ARGS, ADMIN, T0 + UPLOAD_URL_MS)
    assert late.value.data()["reason"] == "expired"
    decided = run(state, 1, store, ARGS, ADMIN, T0 + UPLOAD_URL_MS - 1)
    assert decided.value == ID
    assert [type(e) for e in decided.decision.events] == [FileStored]
    stored = decided.decision.state
    assert (stored.status, stored.size, stored.content_type) == ("stored", 3, "image/png")
    with pytest.raises(Conflict) as again:
        run(stored, 2, store, ARGS, ADMIN, T0 + 1)
    assert again.value.data()["reason"] == "used"
    with pytest.raises(NotFound):
        run(FILE.initial, 0, store, ARGS, ADMIN, T0)


def test_only_the_files_organization_deletes_it_once() -> None:
    stored = run(issued(), 1, store, ARGS, ADMIN, T0 + 1).decision.state
    rival = Identity(subject="bob", org_id="org_b")
    with pytest.raises(NotFound):
        run(stored, 2, delete, StorageIdArgs(storage_id=ID), rival, T0 + 2)
    with pytest.raises(Unauthenticated):
        run(stored, 2, delete, StorageIdArgs(storage_id=ID), ANONYMOUS, T0 + 2)
    decided = run(stored, 2, delete, StorageIdArgs(storage_id=ID), ANN, T0 + 2)
    assert [type(e) for e in decided.decision.events] == [FileDeleted]
    with pytest.raises(NotFound):
        run(decided.decision.state, 3, delete, StorageIdArgs(storage_id=ID), ANN, T0 + 3)


def test_a_file_of_a_user_outside_any_organization_is_that_users() -> None:
    buyer = Identity(subject="buyer-1")
    stored = run(issued(buyer), 1, store, ARGS, ADMIN, T0 + 1).decision.state
    other = Identity(subject="buyer-2")
    with pytest.raises(NotFound):
        run(stored, 2, delete, StorageIdArgs(storage_id=ID), other, T0 + 2)
    for who in (buyer, ADMIN):
        decided = run(stored, 2, delete, StorageIdArgs(storage_id=ID), who, T0 + 2)
        assert [type(e) for e in decided.decision.events] == [FileDeleted]


def test_the_lifecycle_table_refuses_every_other_step() -> None:
    deleted = FileDeleted(stream=STREAM, version=1, at=T0)
    stored = FileStored(stream=STREAM, version=1, at=T0, content_type="", sha256="", size=0)
    with pytest.raises(TypeError):
        evolve(FILE.initial, deleted)
    with pytest.raises(TypeError):
        evolve(FILE.initial, stored)
    with pytest.raises(TypeError):
        evolve(issued(), deleted)
