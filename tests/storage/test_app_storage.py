"""An app using file storage through the app API (`domain.require_file`, `domain.file_url`,
`domain.erase_file`; tests/storage/gallery.py), beside the built-in app, in virtual time."""

from __future__ import annotations

import pytest
import trio.testing

from domain.errors import InvalidArgs
from engine.testing import EngineHarness, staff
from tests.storage.helpers import store_file

CURATOR = staff("curator-1", "org_gallery", "events:manage")
RIVAL = staff("curator-2", "org_rival", "events:manage")


@pytest.fixture
def turnstile_apps() -> list[str]:
    return ["tests.storage.gallery"]


async def test_an_app_refers_to_a_stored_file_and_removes_it(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    image = await store_file(t.engine, b"\x89PNG a painting", CURATOR)
    artwork = await t.mutation("gallery:hang", {"title": "Dusk", "imageStorageId": image}, CURATOR)
    doc = await t.query("gallery:get", {"artworkId": artwork}, CURATOR)
    assert doc["imageSize"] == len(b"\x89PNG a painting")
    assert doc["imageUrl"].endswith(f"/api/storage/{image}")
    await t.mutation("gallery:remove", {"artworkId": artwork}, CURATOR)
    assert await t.query("storage:getUrl", {"storageId": image}, CURATOR) is None
    assert not (t.data_dir / "storage" / image).exists()


async def test_an_app_refuses_a_missing_or_foreign_file_and_writes_nothing(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    theirs = await store_file(t.engine, b"their picture", RIVAL)
    seq = t.engine.committed_seq
    for storage_id in (theirs, "kg_neverissuedxx", "not-an-id"):
        with pytest.raises(InvalidArgs) as refused:
            await t.mutation(
                "gallery:hang", {"title": "Stolen", "imageStorageId": storage_id}, CURATOR
            )
        assert refused.value.data()["path"] == "imageStorageId"
    assert t.engine.committed_seq == seq
