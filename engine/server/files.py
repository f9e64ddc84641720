"""File storage over HTTP: the upload URL's POST and `GET /api/storage/ID`, both streamed.

`engine.server.http` hands a request here once its head is read and before its body is (an
`Exchange`: the connection's h11 state and its reading and writing steps), so that neither an
upload nor a download is ever whole in memory.

Upload (`POST /api/storage/upload?token=ID`, the URL `storage:generateUploadUrl` answered):
1. refused before a byte of the body is read, and the connection closed: an id never issued
   (404), a URL already used or being used (409), one expired (410), a declared
   `Content-Length` above `max_upload_bytes` (413);
2. the upload counts one message against the connection's allowance and one against the
   allowance of the user who asked for the URL (`IdentityAllowance`, shared with that user's
   function calls);
3. a body declared larger than `DIRECT_ABOVE` is read straight from the socket by a worker
   thread (`receive_into`: into one `UPLOAD_CHUNK` buffer, written to `incoming/` and hashed
   as each fills; no byte passes through the event loop or h11, so the connection closes after
   the answer); any other body is read through h11 in pieces of up to `UPLOAD_CHUNK` and
   written about `UPLOAD_CHUNK` at a time by a worker thread, hashed as it goes, while the
   next piece is read (at most `WRITES_AHEAD` chunks wait for the disk). More than
   `max_upload_bytes` is 413, a pause longer than `upload_stall_timeout` between two reads is
   408 and the connection closed, a client gone ends it: in each case the partial file is
   removed (before any answer) and nothing is recorded;
4. the file is made durable (fsync, rename, fsync of the directory), then its record is
   committed through the engine (`domain.storage.store`), and only then is the answer 200
   `{"storageId"}`. A record refused (the URL used meanwhile or expired) removes the bytes
   again. Once the record is offered it is waited for shielded from cancellation, so a file is
   never removed under a record that may commit.

Download (`GET`/`HEAD /api/storage/ID`): `Content-Type` as uploaded, `Content-Length`, a strong
`ETag` (the sha256), `Accept-Ranges: bytes`; `If-None-Match` naming it is 304; one
`Range: bytes=...` is 206 with `Content-Range` (416 if it lies past the end; several ranges are
answered with the whole file). The head, then the bytes from the file by `sendfile`, go to the
socket from a worker thread, in one hop off the event loop (the kernel copies the bytes; the
loop never reads the file), each wait for the socket bounded by `write_timeout`. An id not
stored, or deleted, is 404.
"""

from __future__ import annotations

import http
import logging
import os
import re
import selectors
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

import attrs
import h11
import orjson
import trio

from domain.errors import TurnstileError
from domain.identity import Identity
from domain.ids import is_root_id
from domain.storage import (
    FILE,
    FILE_PATH,
    FILE_PREFIX,
    STORED,
    UPLOAD_PATH,
    FileState,
    StoreArgs,
    store,
    upload_refusal,
)
from engine.files import Incoming
from engine.server.api import CORS_HEADERS, HttpResponse, json_response
from engine.server.context import ServerContext

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("turnstile.storage")

#: What an upload reads from its socket at once, and buffers before a write to disk.
UPLOAD_CHUNK = 1024 * 1024
#: Chunks of an upload read and waiting for the disk (memory: about this many UPLOAD_CHUNKs).
WRITES_AHEAD = 2
#: A body declared larger than this is read straight from the socket by a worker thread
#: (`receive_into`); smaller ones through h11 on the event loop, keeping the connection.
DIRECT_ABOVE = 256 * 1024
#: How long `receive_into` waits for the socket at once (and so how soon it sees a stop).
WAIT_SLICE = 0.1
#: Most a download hands `sendfile` at once.
SEND_CHUNK = 8 * 1024 * 1024
DEFAULT_CONTENT_TYPE = b"application/octet-stream"
NOT_FOUND = {"status": "error", "errorMessage": "Not found."}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_REFUSALS = {
    "unknown": (404, "No such upload URL."),
    "used": (409, "This upload URL has been used."),
    "expired": (410, "This upload URL has expired."),
}


class _Gone(Exception):
    """The client went away or broke the protocol mid-request: close the connection."""


@attrs.frozen(kw_only=True)
class Exchange:
    """One request of a connection, as `engine.server.http` hands it over."""

    ctx: ServerContext
    connection: h11.Connection
    head: h11.Request
    headers: dict[bytes, bytes]
    #: The next h11 event (reading more from the socket as needed).
    next_event: Callable[[], Awaitable[Any]]
    #: Write bytes to the socket within the write timeout (raises to end the connection).
    send: Callable[[bytes | None], Awaitable[None]]
    #: Answer and close, as the connection does a request it will not read.
    refuse: Callable[[int, str], Awaitable[None]]
    #: The connection's allowance (`Throttle.admit`).
    admit: Callable[[int], Awaitable[None]]
    #: The connection's socket, which an upload's body is read from in large pieces.
    stream: trio.SocketStream
    draining: bool = False


def handles(method: bytes, path: str) -> bool:
    """Whether this request is storage's (OPTIONS stays with the API's preflight)."""
    if path == UPLOAD_PATH:
        return method == b"POST"
    return path.startswith(FILE_PATH) and method in (b"GET", b"HEAD")


async def serve(ex: Exchange) -> bool:
    """Answer one storage request; whether the connection may carry another."""
    path = ex.head.target.partition(b"?")[0].decode("ascii", "replace")
    if path == UPLOAD_PATH:
        return await _upload(ex)
    return await _download(ex, path[len(FILE_PATH) :])


def _file(engine: Engine, storage_id: str) -> FileState | None:
    """The committed record of `storage_id`; None for what is not a storage id at all (no
    actor is made for it)."""
    if not is_root_id(storage_id, FILE_PREFIX):
        return None
    state: FileState = engine.committed_state(FILE, storage_id)
    return state


# -- upload -----------------------------------------------------------------------------------


def _token(target: bytes) -> str:
    query = target.partition(b"?")[2].decode("ascii", "replace")
    values = parse_qs(query).get("token", [])
    return values[0] if len(values) == 1 else ""


async def _refuse(
    ex: Exchange, status: int, message: str, outcome: str, releasing: str | None = None
) -> bool:
    """Answer and close. `releasing`: the storage id whose upload ends here, given up before
    the answer (which lingers), so the client may use its URL again at once."""
    if releasing is not None:
        ex.ctx.uploading.discard(releasing)
    ex.ctx.metrics.storage_uploads.labels(outcome).inc()
    ex.ctx.metrics.http_requests.labels("/api/storage/upload", str(status)).inc()
    await ex.refuse(status, message)
    return False


async def _upload(ex: Exchange) -> bool:
    ctx, engine, config = ex.ctx, ex.ctx.engine, ex.ctx.config
    storage_id = _token(ex.head.target)
    if storage_id in ctx.uploading:
        return await _refuse(ex, 409, "This upload URL is being used.", "used")
    state = _file(engine, storage_id) or FILE.initial
    refusal = upload_refusal(state, engine.now_ms())
    if refusal is not None:
        status, message = _REFUSALS[refusal]
        return await _refuse(ex, status, message, refusal)
    declared = ex.headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > config.max_upload_bytes:
        return await _refuse(ex, 413, "The file is larger than the server accepts.", "tooLarge")
    await ex.admit(0)
    if state.user_id is not None:
        await ctx.identities.admit(Identity(subject=state.user_id))
    content_type = ex.headers.get(b"content-type", DEFAULT_CONTENT_TYPE).decode("latin-1")
    ctx.uploading.add(storage_id)
    try:
        return await _receive(ex, engine, storage_id, content_type)
    finally:
        ctx.uploading.discard(storage_id)


async def _receive(ex: Exchange, engine: Engine, storage_id: str, content_type: str) -> bool:
    ctx = ex.ctx
    incoming: Incoming = await trio.to_thread.run_sync(engine.files.begin, storage_id)
    finished = False
    try:
        if ex.connection.they_are_waiting_for_100_continue:
            await ex.send(
                ex.connection.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        declared = _declared_length(ex)
        writer = _Writer(incoming)
        if declared is not None and declared > DIRECT_ABOVE:
            outcome = await _read_body_directly(ex, declared, writer)
        else:
            # The body is read on the event loop while a worker thread writes and hashes what
            # was read before (at most WRITES_AHEAD chunks waiting): network and disk overlap.
            send, receive = trio.open_memory_channel[list[bytes]](WRITES_AHEAD)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer.run, receive)
                async with send:
                    outcome = await _read_body(ex, send)
        if outcome == "gone":
            ctx.metrics.storage_uploads.labels("abandoned").inc()
            return False
        if outcome != "complete" or writer.failed:
            await _abort(incoming)  # before the answer, which lingers
        if outcome == "stalled":
            ctx.metrics.limited.labels("upload_stall").inc()
            return await _refuse(ex, 408, "The upload stalled.", "stalled", storage_id)
        if outcome == "tooLarge":
            message = "The file is larger than the server accepts."
            return await _refuse(ex, 413, message, "tooLarge", storage_id)
        if writer.failed:
            message = "The server could not store the file; nothing was kept."
            return await _refuse(ex, 507, message, "refused", storage_id)
        await trio.to_thread.run_sync(incoming.finish)
        finished = True
        args = StoreArgs(content_type=content_type, sha256=incoming.sha256, size=incoming.size)
        with trio.CancelScope(shield=True):
            try:
                await engine.run_internal(FILE, storage_id, store, args)
            except TurnstileError as error:
                await trio.to_thread.run_sync(engine.files.remove, storage_id)
                status = 409 if error.code == "Conflict" else 503
                return await _refuse(ex, status, error.message, "refused", storage_id)
        ctx.metrics.storage_uploads.labels("stored").inc()
        ctx.metrics.storage_bytes_received.inc(incoming.size)
        ctx.metrics.http_requests.labels("/api/storage/upload", "200").inc()
        await _answer(ex, json_response(200, {"storageId": storage_id}), close=writer.direct)
        return _reusable(ex)
    finally:
        if not finished and not writer.handed_off:
            await _abort(incoming)


class _Writer:
    """Writes (and hashes) an upload's chunks in a worker thread, one chunk at a time. A write
    that fails (a full disk) is logged; what follows is drained unwritten."""

    def __init__(self, incoming: Incoming) -> None:
        self.incoming = incoming
        self.failed = False
        #: The body was read past h11 (`_read_body_directly`): the connection closes after.
        self.direct = False
        #: A worker thread still holds the upload (the request was cancelled under it): it
        #: removes the partial file itself, and nothing else may touch it.
        self.handed_off = False

    async def write(self, pieces: list[bytes | memoryview]) -> None:
        try:
            await trio.to_thread.run_sync(self.incoming.write_all, pieces)
        except OSError:
            log.exception("writing upload %s failed", self.incoming.storage_id)
            self.failed = True

    async def run(self, chunks: trio.MemoryReceiveChannel[list[bytes]]) -> None:
        async with chunks:
            async for pieces in chunks:
                if self.failed:
                    continue
                try:
                    await trio.to_thread.run_sync(self.incoming.write_all, pieces)
                except OSError:
                    log.exception("writing upload %s failed", self.incoming.storage_id)
                    self.failed = True


def _declared_length(ex: Exchange) -> int | None:
    """The body's `Content-Length` when it is the framing (not chunked), else None."""
    if b"chunked" in ex.headers.get(b"transfer-encoding", b"").lower():
        return None
    declared = ex.headers.get(b"content-length", b"")
    return int(declared) if declared.isdigit() else None


async def _read_body_directly(ex: Exchange, declared: int, writer: _Writer) -> str:
    """Read a body of `declared` bytes straight from the socket in a worker thread that
    writes and hashes it as it comes (`receive_into`), after what h11 already holds: no byte
    passes through the event loop. h11 never sees that body, so the connection closes after
    the answer. How it ended, as `_read_body` says; a cancellation (shutdown) is raised once
    the thread is told to stop and remove what it wrote."""
    incoming = writer.incoming
    pieces: list[bytes | memoryview] = []
    while True:  # what arrived with the head
        try:
            event = ex.connection.next_event()
        except h11.RemoteProtocolError:
            return "gone"
        if event is h11.NEED_DATA:
            break
        if isinstance(event, h11.Data):
            pieces.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            if pieces:
                await writer.write(pieces)
            return "complete"
        else:
            return "gone"
    if pieces:
        await writer.write(pieces)
    if writer.failed:
        return "complete"
    writer.direct = True
    stop = threading.Event()
    socket_fd = os.dup(ex.stream.socket.fileno())  # the thread's own: closed by it
    rest = declared - incoming.size
    stall = ex.ctx.config.upload_stall_timeout
    try:
        outcome = await trio.to_thread.run_sync(
            receive_into, socket_fd, incoming, rest, stall, stop, abandon_on_cancel=True
        )
    except trio.Cancelled:
        stop.set()
        writer.handed_off = True
        raise
    if outcome == "failed":
        writer.failed = True
        return "complete"
    return outcome


def receive_into(
    socket_fd: int, incoming: Incoming, count: int, stall: float, stop: threading.Event
) -> str:
    """Read `count` bytes from the (non-blocking) socket into `incoming` in UPLOAD_CHUNKs
    (written and hashed as each fills), no Python object per read: `complete`, `gone` (the
    peer closed early or broke the connection), `stalled` (nothing for `stall` seconds),
    `failed` (a write failed: logged) or `cancelled` (`stop` was set: what was written is
    removed). Closes `socket_fd`. Blocks: run it in a worker thread."""
    buffer = bytearray(min(UPLOAD_CHUNK, max(count, 1)))
    view = memoryview(buffer)
    filled = received = 0
    last = time.monotonic()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(socket_fd, selectors.EVENT_READ)
            while received < count:
                if stop.is_set():
                    return "cancelled"
                room = min(len(buffer) - filled, count - received)
                try:
                    got = os.readv(socket_fd, [view[filled : filled + room]])
                except BlockingIOError:
                    if not selector.select(WAIT_SLICE) and time.monotonic() - last >= stall:
                        return "stalled"
                    continue
                except OSError:
                    return "gone"
                if got == 0:
                    return "gone"
                last = time.monotonic()
                filled += got
                received += got
                if filled == len(buffer) or received == count:
                    try:
                        incoming.write_all([view[:filled]])
                    except OSError:
                        log.exception("writing upload %s failed", incoming.storage_id)
                        return "failed"
                    filled = 0
        return "complete"
    finally:
        view.release()
        os.close(socket_fd)
        if stop.is_set():
            incoming.abort()


async def _next_body_event(ex: Exchange) -> Any:
    """The next h11 event of the upload's body, reading up to UPLOAD_CHUNK at once."""
    while True:
        event = ex.connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        ex.connection.receive_data(await ex.stream.receive_some(UPLOAD_CHUNK))


async def _read_body(ex: Exchange, chunks: trio.MemorySendChannel[list[bytes]]) -> str:
    """Read the body into `chunks` (lists of about UPLOAD_CHUNK bytes); how it ended:
    `complete`, `tooLarge`, `stalled` or `gone` (the client left or broke the protocol)."""
    config = ex.ctx.config
    pieces: list[bytes] = []
    pending = size = 0
    while True:
        with trio.move_on_after(config.upload_stall_timeout) as waiting:
            try:
                event = await _next_body_event(ex)
            except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                return "gone"
        if waiting.cancelled_caught:
            return "stalled"
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > config.max_upload_bytes:
                return "tooLarge"
            pieces.append(event.data)
            pending += len(event.data)
            if pending >= UPLOAD_CHUNK:
                await chunks.send(pieces)
                pieces, pending = [], 0
        elif isinstance(event, h11.EndOfMessage):
            if pieces:
                await chunks.send(pieces)
            return "complete"
        else:
            return "gone"


async def _abort(incoming: Incoming) -> None:
    """Remove a partial upload (before the client hears of its refusal), even when the
    request is being cancelled."""
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(incoming.abort)


# -- download ---------------------------------------------------------------------------------


def _byte_range(header: bytes | None, size: int) -> tuple[int, int] | bool | None:
    """`(first, last)` of a single satisfiable range, None to send the whole file, False if
    the range lies wholly past the end (416)."""
    if header is None:
        return None
    match = _RANGE.match(header.decode("latin-1").strip())
    if match is None:
        return None  # several ranges, or another unit: the whole file
    first, last = match[1], match[2]
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            return False
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        return False
    return start, end


def _matches(if_none_match: bytes | None, etag: bytes) -> bool:
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
    return b"*" in tags or etag in tags


async def _end_of_request(ex: Exchange) -> bool:
    """Read the rest of a GET (its end, and a body if one was sent, dropped), so that the
    connection can carry the next request; False if the client broke off or sent too much."""
    received = 0
    while True:
        try:
            event = await ex.next_event()
        except h11.RemoteProtocolError:
            return False
        if isinstance(event, h11.EndOfMessage):
            return True
        if not isinstance(event, h11.Data):
            return False
        received += len(event.data)
        if received > ex.ctx.config.max_body_bytes:
            return False


async def _download(ex: Exchange, storage_id: str) -> bool:
    ctx, engine = ex.ctx, ex.ctx.engine
    with trio.move_on_after(ex.ctx.config.read_timeout) as reading:
        complete = await _end_of_request(ex)
    if reading.cancelled_caught or not complete:
        return False
    state = _file(engine, storage_id)
    fd = None
    if state is not None and state.status == STORED:
        fd = engine.files.open(storage_id)  # an open reads no data: not worth a thread
    if state is None or fd is None or state.status != STORED:
        if fd is not None:
            os.close(fd)
        return await _plain(ex, json_response(404, NOT_FOUND))
    try:
        etag = b'"' + state.sha256.encode("ascii") + b'"'
        headers = [
            (b"etag", etag),
            (b"accept-ranges", b"bytes"),
            (b"cache-control", b"private, max-age=2592000, immutable"),
        ]
        if _matches(ex.headers.get(b"if-none-match"), etag):
            return await _plain(ex, HttpResponse(304, headers=tuple(headers)))
        size = state.size
        wanted = _byte_range(ex.headers.get(b"range"), size)
        if wanted is False:
            headers.append((b"content-range", f"bytes */{size}".encode()))
            body = orjson.dumps({"status": "error", "errorMessage": "Range Not Satisfiable"})
            return await _plain(ex, HttpResponse(416, body, headers=tuple(headers)))
        status, first, last = 200, 0, size - 1
        if isinstance(wanted, tuple):
            status, (first, last) = 206, wanted
            headers.append((b"content-range", f"bytes {first}-{last}/{size}".encode()))
        length = last - first + 1 if size else 0
        headers += [
            (b"content-length", str(length).encode()),
            (b"content-type", state.content_type.encode("latin-1") or DEFAULT_CONTENT_TYPE),
        ]
        if ex.draining:
            headers.append((b"connection", b"close"))
        ctx.metrics.storage_downloads.labels(str(status)).inc()
        ctx.metrics.http_requests.labels("/api/storage", str(status)).inc()
        response = h11.Response(
            status_code=status, headers=[*CORS_HEADERS, *headers], reason=_reason(status)
        )
        head = ex.connection.send(response)
        if ex.head.method != b"HEAD" and length:
            # h11 counts the body's bytes; a worker thread sends the head, then the body from
            # the file (one hop off the loop for both).
            ex.connection.send_with_data_passthrough(h11.Data(data=cast("bytes", _Body(length))))
            socket_fd = ex.stream.socket.fileno()
            timeout = ex.ctx.config.write_timeout
            sent = await trio.to_thread.run_sync(
                send_file, socket_fd, fd, first, length, timeout, head
            )
            if sent < length:
                raise _Gone  # the file shrank, or the client stopped reading: cut it short
            ctx.metrics.storage_bytes_sent.inc(length)
        else:
            await ex.send(head)
        await ex.send(ex.connection.send(h11.EndOfMessage()))
        return _reusable(ex)
    except _Gone:
        return False
    finally:
        os.close(fd)


class _Body:
    """What h11 is told of a body sent by `send_file`: only its length."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


def send_file(
    socket_fd: int, fd: int, offset: int, length: int, timeout: float, head: bytes = b""
) -> int:
    """Send `head`, then `length` bytes of `fd` from `offset`, to the (non-blocking) socket,
    the file's with `sendfile` (the kernel copying them), waiting at most `timeout` seconds
    each time the socket takes nothing; the file's bytes sent (fewer if the file ended, the
    peer went away or the wait ran out; none if the head could not be sent). Blocks: run it
    in a worker thread, with nothing else writing the socket."""
    sent = 0
    with selectors.DefaultSelector() as selector:
        selector.register(socket_fd, selectors.EVENT_WRITE)
        view = memoryview(head)
        while view:
            try:
                view = view[os.write(socket_fd, view) :]
            except BlockingIOError:
                if not selector.select(timeout):
                    return 0
            except OSError:  # the peer is gone
                return 0
        while sent < length:
            try:
                count = os.sendfile(socket_fd, fd, offset + sent, min(SEND_CHUNK, length - sent))
            except BlockingIOError:
                if not selector.select(timeout):
                    return sent
                continue
            except OSError:  # the peer is gone
                return sent
            if count == 0:  # the file ended early
                return sent
            sent += count
    return sent


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _reusable(ex: Exchange) -> bool:
    return (
        not ex.draining
        and ex.connection.our_state is h11.DONE
        and ex.connection.their_state is h11.DONE
    )


async def _answer(ex: Exchange, response: HttpResponse, *, close: bool = False) -> None:
    headers = response.header_list(close=close or ex.draining)
    if response.status == 304:  # no body, and no Content-Length but the file's own
        headers = [(name, value) for name, value in headers if name != b"content-length"]
    head = h11.Response(
        status_code=response.status,
        headers=headers,
        reason=_reason(response.status),
    )
    out = bytearray(ex.connection.send(head) or b"")
    if response.body and ex.head.method != b"HEAD":
        out += ex.connection.send(h11.Data(data=response.body)) or b""
    out += ex.connection.send(h11.EndOfMessage()) or b""
    await ex.send(bytes(out))


async def _plain(ex: Exchange, response: HttpResponse) -> bool:
    """A download's answer without the file (304, 404, 416): the request has no body to read."""
    if response.status != 304:
        ex.ctx.metrics.storage_downloads.labels(str(response.status)).inc()
    ex.ctx.metrics.http_requests.labels("/api/storage", str(response.status)).inc()
    await _answer(ex, response)
    return _reusable(ex)


__all__ = ["Exchange", "handles", "serve"]
