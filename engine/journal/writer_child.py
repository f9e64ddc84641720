"""The journal's writer process, the child's side (engine/journal/writer_process.py has the plan
and the parent's side): the frames both sides speak, and the child's loop. Imports no more than
the SQLite journal needs, so that a child starts fast.

Frames are a 4-byte little-endian length and a `marshal` body: a batch as the sequence number it
must follow (`after_seq`, the group commit's), the journal position it must follow (`Position`,
the parent's count) and its rows', records' and takes' values in one flat list each (built at C
speed on the parent's loop), an answer as None or `(class name, errno, message)`.

A position is where the journal ends: its last seq, the rid of its last idempotency record and
the rid of its last take. Every append that writes anything moves it (a batch of records or
takes only moves no seq, but it moves a rid), by exactly the batch's rows, records and takes.
The child writes a batch only if the journal ends exactly at that position and at `after_seq`:
so of two batches in flight, the second is refused when the first was not written (it was
decided on top of it). It reads the position as it starts and moves its own copy after each
append it makes (the only writer). A batch with nothing to write (commands that wrote no event,
no record and no take) moves nothing: where it follows is checked as for any, but then there is
no transaction to make, so it cannot fail, and so never leaves the batch behind it (which
follows the same position) to be written on top of a failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import marshal
import os
import signal
import sqlite3
import struct
import sys
from pathlib import Path
from typing import Any

from engine.journal.interface import Batch, RequestRecord, Row, Take
from engine.journal.sqlite import SqliteJournal

HEADER = struct.Struct("<I")
#: Where the journal ends: (last seq, last idempotency record's rid, last take's rid).
Position = tuple[int, int, int]
#: Rows appended between two reads of the index's positions.
POSITIONS_EVERY = 20_000
_PR_SET_PDEATHSIG = 1
_chain = itertools.chain.from_iterable


class AppendFailed(Exception):
    """An append failed in the child with an error the parent has no class for, or the child
    ended without committing the batch."""


def position_of(journal: SqliteJournal) -> Position:
    """Where `journal` ends (see the module docstring)."""
    return journal.last_seq(), journal.last_request_rid(), journal.last_take_rid()


def position_after(position: Position, batch: Batch) -> Position:
    """Where the journal ends once `batch` is appended to a journal that ends at `position`."""
    seq, request_rid, take_rid = position
    if batch.rows:
        seq = batch.rows[-1].seq
    return seq, request_rid + len(batch.requests), take_rid + len(batch.takes)


def encode_batch(batch: Batch, after_seq: int, follows: Position) -> bytes:
    """The frame of `batch`, to be written only if the journal then ends at `after_seq` and at
    `follows`."""
    body = marshal.dumps(
        (
            after_seq,
            follows,
            list(_chain(batch.rows)),
            list(_chain(batch.requests)),
            list(_chain(batch.takes)),
        )
    )
    return HEADER.pack(len(body)) + body


def decode_batch(body: bytes) -> tuple[int, Position, Batch]:
    after_seq, follows, flat_rows, flat_requests, flat_takes = marshal.loads(body)
    rows = [Row._make(flat_rows[i : i + 8]) for i in range(0, len(flat_rows), 8)]
    requests = [
        RequestRecord._make(flat_requests[i : i + 5]) for i in range(0, len(flat_requests), 5)
    ]
    takes = [Take._make(flat_takes[i : i + 6]) for i in range(0, len(flat_takes), 6)]
    return after_seq, follows, Batch(rows=rows, requests=requests, takes=takes)


def encode_answer(error: BaseException | None) -> bytes:
    if error is None:
        body = marshal.dumps(None)
    else:
        code = error.errno if isinstance(error, OSError) else None
        body = marshal.dumps((type(error).__name__, code, str(error)))
    return HEADER.pack(len(body)) + body


def error_of(answer: Any) -> BaseException | None:
    """The exception an answer carries (None: the batch committed), as its own class where
    that is SQLite's or an `OSError`."""
    if answer is None:
        return None
    name, code, message = answer
    if code is not None:
        text = message.split("] ", 1)[-1] if message.startswith("[Errno") else message
        return OSError(code, text)
    cls = getattr(sqlite3, name, None)
    if isinstance(cls, type) and issubclass(cls, sqlite3.Error):
        return cls(message)
    return AppendFailed(f"{name}: {message}")


# -- the child's side -------------------------------------------------------------------------


def _end_with_parent() -> None:
    """Linux: be killed when the parent ends (its pipe's end would tell us too, but only once
    the append in progress is done)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(data_dir: Path, synchronous: str, lock: int, inp: int = 0, out: int = 1) -> None:
    """The child's loop: append each batch read from `inp`, answer on `out`, until `inp`
    ends. `lock` is the data dir's lock, held by the parent and kept open here."""
    journal = SqliteJournal._open(data_dir, synchronous)
    ends_at = position_of(journal)
    rows_since = 0
    try:
        while True:
            head = _read_exactly(inp, HEADER.size)
            if head is None:
                return
            (size,) = HEADER.unpack(head)
            body = _read_exactly(inp, size)
            if body is None:
                return
            after_seq, follows, batch = decode_batch(body)
            error: BaseException | None = None
            if follows != ends_at or after_seq != ends_at[0]:
                # Decided on top of a batch that was not written.
                error = AppendFailed(
                    f"it follows {_text(follows)} (seq {after_seq}) and the journal ends at"
                    f" {_text(ends_at)}: a batch before it was not written, so it is not either"
                )
            elif batch.rows or batch.requests or batch.takes:  # (else nothing to write)
                try:
                    journal.append(batch)
                    ends_at = position_after(ends_at, batch)
                except Exception as exc:
                    error = exc
            rows_since += len(batch.rows)
            if rows_since >= POSITIONS_EVERY:
                rows_since = 0
                journal.note_index_positions()
            answer = encode_answer(error)
            while answer:
                answer = answer[os.write(out, answer) :]
    finally:
        journal.close()
        os.close(lock)


def _text(position: Position) -> str:
    seq, request_rid, take_rid = position
    return f"seq {seq}, record {request_rid}, take {take_rid}"


def main(argv: list[str]) -> None:
    """The child process: `data_dir synchronous lock_fd parent_pid`."""
    logging.basicConfig(level=logging.WARNING, format="journal writer: %(message)s")
    _end_with_parent()
    data_dir, synchronous, lock, parent = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    if os.getppid() != parent:  # it ended before we could ask to end with it
        sys.exit(1)
    with contextlib.suppress(BrokenPipeError):  # the parent is gone: nobody to answer
        serve(data_dir, synchronous, lock)
