"""File storage over HTTP against a live server: the upload URL's POST, the file's GET with its
headers, ranges and validators, deletion, and every refusal leaving nothing behind while
bystanders carry on."""

from __future__ import annotations

import base64
import hashlib
import os

import trio

from engine.server.files import DIRECT_ABOVE, UPLOAD_CHUNK
from tests.server.client import HttpClient, call, read_until_closed
from tests.storage.conftest import CONFIG, Storage, eventually

DATA = os.urandom(200_000)


async def test_upload_then_download_gives_the_same_bytes_type_and_metadata(
    storage: Storage,
) -> None:
    storage_id = await storage.upload(DATA, "image/jpeg", auth=storage.user("u1"))
    assert storage.on_disk() == [storage_id]
    meta = await storage.query("storage:getMetadata", {"storageId": storage_id})
    digest = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert meta["storageId"] == storage_id
    assert (meta["contentType"], meta["size"], meta["sha256"]) == ("image/jpeg", len(DATA), digest)
    assert isinstance(meta["_creationTime"], int | float)
    url = await storage.query("storage:getUrl", {"storageId": storage_id})
    assert url == f"{storage.server.url}/api/storage/{storage_id}"
    got = await storage.request("GET", url)
    assert got.status == 200
    assert got.body == DATA
    assert got.headers[b"content-type"] == b"image/jpeg"
    assert got.headers[b"content-length"] == str(len(DATA)).encode()
    assert got.headers[b"etag"] == f'"{digest}"'.encode()
    assert got.headers[b"accept-ranges"] == b"bytes"
    head = await storage.request("HEAD", url)
    assert (head.status, head.body) == (200, b"")
    assert head.headers[b"content-length"] == str(len(DATA)).encode()


async def test_ranges_and_if_none_match(storage: Storage) -> None:
    storage_id = await storage.upload(DATA)
    path = f"/api/storage/{storage_id}"
    size = len(DATA)
    for header, first, last in (
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, size - 1),
        ("bytes=-50", size - 50, size - 1),
        (f"bytes={size - 5}-{size + 100}", size - 5, size - 1),
    ):
        got = await storage.request("GET", path, range=header)
        assert got.status == 206, header
        assert got.body == DATA[first : last + 1]
        assert got.headers[b"content-range"] == f"bytes {first}-{last}/{size}".encode()
        assert got.headers[b"content-length"] == str(last - first + 1).encode()
    past = await storage.request("GET", path, range=f"bytes={size}-")
    assert past.status == 416
    assert past.headers[b"content-range"] == f"bytes */{size}".encode()
    several = await storage.request("GET", path, range="bytes=0-1,5-6")
    assert (several.status, several.body) == (200, DATA)
    etag = several.headers[b"etag"].decode()
    not_modified = await storage.request("GET", path, if_none_match=etag)
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert not_modified.headers[b"etag"] == etag.encode()
    assert b"content-length" not in not_modified.headers
    not_it = await storage.request("GET", path, if_none_match='"other"')
    assert (not_it.status, not_it.body) == (200, DATA)


async def test_unknown_malformed_and_deleted_files_are_404(storage: Storage) -> None:
    for path in ("/api/storage/kg_aaaaaaaaaaaaaaaa", "/api/storage/nope", "/api/storage/"):
        assert (await storage.request("GET", path)).status == 404, path
    storage_id = await storage.upload(DATA)
    assert await storage.query("storage:getUrl", {"storageId": "kg_aaaaaaaaaaaaaaaa"}) is None
    reply = await call(
        storage.port, "mutation", "storage:delete", {"storageId": storage_id}, storage.admin
    )
    assert reply.status == 200, reply.body
    assert storage.on_disk() == []  # gone from disk when the mutation has returned
    assert (await storage.request("GET", f"/api/storage/{storage_id}")).status == 404
    assert await storage.query("storage:getUrl", {"storageId": storage_id}) is None
    assert await storage.query("storage:getMetadata", {"storageId": storage_id}) is None
    again = await call(
        storage.port, "mutation", "storage:delete", {"storageId": storage_id}, storage.admin
    )
    assert again.status == 560
    assert again.json()["errorData"]["code"] == "NotFound"


async def test_delete_is_refused_to_another_organization(storage: Storage) -> None:
    storage_id = await storage.upload(DATA, auth=storage.user("u1", "org_a"))
    other = await call(
        storage.port,
        "mutation",
        "storage:delete",
        {"storageId": storage_id},
        storage.user("u2", "org_b"),
    )
    assert other.json()["errorData"]["code"] == "NotFound"
    assert storage.on_disk() == [storage_id]


async def test_generating_an_upload_url_needs_a_signed_in_caller(storage: Storage) -> None:
    reply = await call(storage.port, "mutation", "storage:generateUploadUrl", {})
    assert reply.json()["errorData"]["code"] == "Unauthenticated"


async def test_a_used_url_is_refused_and_stores_nothing(storage: Storage) -> None:
    url = await storage.upload_url()
    first = await storage.request("POST", url, DATA)
    assert first.status == 200
    again = await storage.request("POST", url, b"other bytes")
    assert again.status == 409
    assert storage.on_disk() == [first.json()["storageId"]]
    got = await storage.request("GET", f"/api/storage/{first.json()['storageId']}")
    assert got.body == DATA


async def test_an_expired_url_is_refused_and_stores_nothing(storage: Storage) -> None:
    url = await storage.upload_url()
    storage.clock.offset_ms += 60 * 60 * 1000
    reply = await storage.request("POST", url, DATA)
    assert reply.status == 410
    assert storage.on_disk() == []
    fresh = await storage.upload(b"fresh")  # a bystander's new URL works
    assert storage.on_disk() == [fresh]


async def test_an_unknown_token_is_404(storage: Storage) -> None:
    for token in ("kg_aaaaaaaaaaaaaaaa", "nope", ""):
        reply = await storage.request("POST", f"/api/storage/upload?token={token}", DATA)
        assert reply.status == 404, token
    assert storage.on_disk() == []


async def test_too_large_is_413_whether_declared_or_streamed(storage: Storage) -> None:
    big = b"x" * (CONFIG.max_upload_bytes + 1)
    declared = await storage.request("POST", await storage.upload_url(), big)
    assert declared.status == 413
    # Chunked, so the size shows only as the bytes arrive.
    url = await storage.upload_url()
    stream = await trio.open_tcp_stream("127.0.0.1", storage.port)
    head = (
        f"POST {storage.path_of(url)} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"y" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, head + body)
        answer = await read_until_closed(stream)
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 413")
    assert storage.on_disk() == []
    exact = await storage.upload(b"z" * CONFIG.max_upload_bytes)  # the limit itself is fine
    assert storage.on_disk() == [exact]


async def test_a_stalled_upload_is_cut_off_and_leaves_nothing(storage: Storage) -> None:
    url = await storage.upload_url()
    stream = await trio.open_tcp_stream("127.0.0.1", storage.port)
    head = (
        f"POST {storage.path_of(url)} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-length: {len(DATA)}\r\ncontent-type: image/png\r\n\r\n"
    ).encode()
    await stream.send_all(head + DATA[:1000])
    # A bystander uploads and downloads while the first one stalls.
    bystander = await storage.upload(b"bystander")
    assert (await storage.request("GET", f"/api/storage/{bystander}")).body == b"bystander"
    answer = await read_until_closed(stream)  # the server gives up on it
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 408")
    assert storage.on_disk() == [bystander]
    # The URL was never used: it still takes the file.
    assert (await storage.request("POST", url, DATA)).status == 200


async def test_a_client_gone_mid_upload_leaves_nothing(storage: Storage) -> None:
    url = await storage.upload_url()
    stream = await trio.open_tcp_stream("127.0.0.1", storage.port)
    head = (
        f"POST {storage.path_of(url)} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-length: {len(DATA)}\r\n\r\n"
    ).encode()
    await stream.send_all(head + DATA[:5000])
    await stream.aclose()
    # The server has let go of the upload once the URL takes another one.
    with trio.fail_after(10):
        while True:  # polling the server, which has no event to wait on from here
            reply = await storage.request("POST", url, b"next")
            if reply.status != 409:
                break
            await trio.sleep(0.01)
    assert reply.status == 200
    assert storage.on_disk() == [reply.json()["storageId"]]


async def test_keep_alive_carries_uploads_and_downloads(storage: Storage) -> None:
    client = await HttpClient.connect(storage.port)
    try:
        ids = []
        for n in range(3):
            url = await storage.upload_url()
            reply = await client.request("POST", storage.path_of(url), DATA[: 1000 * (n + 1)])
            assert reply.status == 200
            ids.append(reply.json()["storageId"])
        for n, storage_id in enumerate(ids):
            got = await client.request("GET", f"/api/storage/{storage_id}")
            assert got.body == DATA[: 1000 * (n + 1)]
    finally:
        await client.aclose()


async def test_metrics_show_bytes_stored_and_transfers(storage: Storage) -> None:
    storage_id = await storage.upload(DATA)
    await storage.upload(b"abc")
    await storage.request("GET", f"/api/storage/{storage_id}")
    await storage.request("GET", f"/api/storage/{storage_id}", range="bytes=0-0")
    text = (await storage.request("GET", "/metrics")).body.decode()
    assert f"turnstile_storage_stored_bytes {float(len(DATA) + 3)}" in text
    assert "turnstile_storage_stored_files 2.0" in text
    assert 'turnstile_storage_uploads_total{outcome="stored"} 2.0' in text
    assert 'turnstile_storage_downloads_total{status="200"} 1.0' in text
    assert 'turnstile_storage_downloads_total{status="206"} 1.0' in text
    assert f"turnstile_storage_received_bytes_total {float(len(DATA) + 3)}" in text


# -- bodies above DIRECT_ABOVE: read straight from the socket by a worker thread ----------------

BIG = os.urandom(DIRECT_ABOVE + 300_000)


async def send_head(storage: Storage, url: str, size: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", storage.port)
    head = (
        f"POST {storage.path_of(url)} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-length: {size}\r\ncontent-type: image/png\r\n\r\n"
    ).encode()
    await stream.send_all(head)
    return stream


async def test_a_large_upload_is_stored_whole_and_its_connection_closed(
    big_storage: Storage,
) -> None:
    storage = big_storage
    client = await HttpClient.connect(storage.port)
    try:
        url = await storage.upload_url()
        reply = await client.request("POST", storage.path_of(url), BIG, [("content-type", "a/b")])
    finally:
        await client.aclose()
    assert reply.status == 200
    assert reply.headers[b"connection"] == b"close"  # h11 never read that body: no reuse
    storage_id = reply.json()["storageId"]
    got = await storage.request("GET", f"/api/storage/{storage_id}")
    assert (got.body == BIG, got.headers[b"content-type"]) == (True, b"a/b")
    meta = await storage.query("storage:getMetadata", {"storageId": storage_id})
    assert meta["sha256"] == base64.b64encode(hashlib.sha256(BIG).digest()).decode()
    assert storage.on_disk() == [storage_id]


async def test_a_large_upload_that_stalls_or_is_left_leaves_nothing(big_storage: Storage) -> None:
    storage = big_storage
    stalled_url = await storage.upload_url()
    stalled = await send_head(storage, stalled_url, len(BIG))
    await stalled.send_all(BIG[: DIRECT_ABOVE // 2])
    left_url = await storage.upload_url()
    left = await send_head(storage, left_url, len(BIG))
    await left.send_all(BIG[: DIRECT_ABOVE // 3])
    await left.aclose()
    answer = await read_until_closed(stalled)
    await stalled.aclose()
    assert answer.startswith(b"HTTP/1.1 408")
    assert storage.on_disk() == []
    # Neither URL was used: each still takes the whole file.
    for url in (stalled_url, left_url):

        async def stored(url: str = url) -> bool:  # the left one's thread may still be busy
            return (await storage.request("POST", url, BIG)).status != 409

        await eventually(stored)
    assert len(storage.on_disk()) == 2
    assert all(
        (storage.data_dir / "storage" / name).read_bytes() == BIG for name in storage.on_disk()
    )


async def test_a_shutdown_during_a_large_upload_removes_the_partial_file(
    big_storage: Storage,
) -> None:
    storage = big_storage
    body = os.urandom(2 * UPLOAD_CHUNK + 1000)
    stream = await send_head(storage, await storage.upload_url(), len(body))
    await stream.send_all(body[: UPLOAD_CHUNK + 100_000])
    incoming = storage.data_dir / "storage" / "incoming"

    async def writing() -> bool:  # a whole chunk written: by the worker thread reading it
        return any(part.stat().st_size >= UPLOAD_CHUNK for part in incoming.glob("*.part"))

    async def removed() -> bool:  # the thread sees the stop within WAIT_SLICE
        return not storage.on_disk()

    await eventually(writing)
    storage.server.stop(drain=False)  # the request is cancelled under its worker thread
    with trio.fail_after(30):
        await storage.server.wait_stopped()
    await eventually(removed)
    await stream.aclose()
