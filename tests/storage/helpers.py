"""Storing a file as the upload path does, without HTTP: for tests on an engine alone."""

from __future__ import annotations

from domain.identity import Identity
from domain.storage import FILE, StoreArgs, store
from engine.engine import Engine


async def store_file(
    engine: Engine, data: bytes, identity: Identity, content_type: str = "image/png"
) -> str:
    """Ask for an upload URL as `identity`, write `data` durably and record it (the steps of
    engine/server/files.py, chunk for chunk); the storage id."""
    url = (await engine.mutation("storage:generateUploadUrl", {}, identity)).value
    storage_id: str = url.rpartition("token=")[2]
    incoming = engine.files.begin(storage_id)
    incoming.write(data)
    incoming.finish()
    args = StoreArgs(content_type=content_type, sha256=incoming.sha256, size=incoming.size)
    await engine.run_internal(FILE, storage_id, store, args)
    return storage_id
