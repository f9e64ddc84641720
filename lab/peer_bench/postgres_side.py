"""PostgreSQL's side of the `onsale` workload: Debian's server on loopback, through psycopg 3.

`running_postgres` runs `initdb` in a temporary directory and starts `postgres` on 127.0.0.1 at a
free port (its Unix socket in that directory too), with `fsync=on` and `synchronous_commit=on`
(so a COMMIT returns only once its WAL record is flushed), and on leaving, also on error, stops
that one process by its pid (fast shutdown, SIGKILL after 30 s) and deletes the directory. The
server cannot run as root, so under root it runs as the `postgres` user (or `nobody`). It also
gets a parent-death signal, so it cannot outlive a benchmark process that is killed.

The schema is the relational form of the event queue: `events` (one row per event with its
counters), `waiting_list`, `tickets`, and `join_limits` (the per-user join rate limit). Every
command is one transaction, and the clients are `clients` psycopg `AsyncConnection`s on one
asyncio loop (one process, one event loop, as the Turnstile side):

- `for-update` (the default): READ COMMITTED; a join takes the user's rate-limit row, then locks
  the event row with `SELECT ... FOR UPDATE`, so joins and purchases of one event run one at a
  time and the seat counts they read are current;
- `serializable`: the same statements without `FOR UPDATE` at SERIALIZABLE isolation, and a
  transaction that fails with a serialization failure (or deadlock) is retried from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from lab.peer_bench.workload import (
    JOIN_LIMIT,
    JOIN_WINDOW_MS,
    OFFER_MS,
    OFFERED,
    PRICE,
    PURCHASED,
    WAITING,
    FinalState,
    Replies,
    Sizes,
    Users,
    now_ms,
    payment_intent,
    summarize,
)

MODES = ("for-update", "serializable")
EVENT_ID = 1

SCHEMA = """
CREATE TABLE events (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    total_tickets integer NOT NULL CHECK (total_tickets >= 0),
    price integer NOT NULL,
    is_cancelled boolean NOT NULL DEFAULT false,
    entry_count integer NOT NULL DEFAULT 0,
    purchased_count integer NOT NULL DEFAULT 0,
    active_offers integer NOT NULL DEFAULT 0
);
CREATE TABLE waiting_list (
    id text PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES events (id),
    user_id text NOT NULL,
    number integer NOT NULL,
    status text NOT NULL CHECK (status IN ('waiting', 'offered', 'purchased', 'expired')),
    joined_at bigint NOT NULL,
    offer_expires_at bigint,
    UNIQUE (event_id, number)
);
CREATE INDEX waiting_list_by_user ON waiting_list (event_id, user_id);
CREATE TABLE tickets (
    id text PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES events (id),
    user_id text NOT NULL,
    waiting_list_id text NOT NULL REFERENCES waiting_list (id),
    status text NOT NULL CHECK (status IN ('valid', 'used', 'refunded', 'cancelled')),
    payment_intent_id text NOT NULL,
    amount integer NOT NULL,
    purchased_at bigint NOT NULL,
    UNIQUE (event_id, payment_intent_id)
);
CREATE INDEX tickets_by_user ON tickets (event_id, user_id);
CREATE TABLE join_limits (
    user_id text PRIMARY KEY,
    window_start bigint NOT NULL,
    count integer NOT NULL
);
"""

TAKE_JOIN_LIMIT = """
INSERT INTO join_limits AS l (user_id, window_start, count) VALUES (%(user)s, %(now)s, 1)
ON CONFLICT (user_id) DO UPDATE SET
    count = CASE WHEN l.window_start + %(window)s <= EXCLUDED.window_start
                 THEN 1 ELSE l.count + 1 END,
    window_start = CASE WHEN l.window_start + %(window)s <= EXCLUDED.window_start
                        THEN EXCLUDED.window_start ELSE l.window_start END
RETURNING count
"""
OPEN_POSITION = """
SELECT 'entry' FROM waiting_list
 WHERE event_id = %(event)s AND user_id = %(user)s AND status IN ('waiting', 'offered')
UNION ALL
SELECT 'ticket' FROM tickets
 WHERE event_id = %(event)s AND user_id = %(user)s AND status IN ('valid', 'used')
LIMIT 1
"""
READ_EVENT = (
    "SELECT total_tickets, purchased_count, active_offers, entry_count, is_cancelled"
    " FROM events WHERE id = %(event)s"
)


class Unavailable(Exception):
    """PostgreSQL or psycopg is not installed here."""


class Refused(Exception):
    """A command the rules refuse (the name of Turnstile's error code in `code`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def require_available() -> None:
    """Raise Unavailable unless the server binaries and psycopg are there."""
    missing = [b for b in ("initdb", "postgres") if shutil.which(b) is None]
    if missing:
        raise Unavailable("PostgreSQL not found")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg not installed (pip install -e '.[peers]')") from None


# -- the server ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Server:
    pid: int
    port: int
    conninfo: str
    version: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root, which postgres refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise Unavailable("running as root, and no 'postgres' or 'nobody' user to run the server")


def _die_with_parent() -> None:
    """In the server's process, after its uid is set: SIGQUIT (immediate shutdown) when the
    process that started it dies, so a killed benchmark leaves no server behind."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGQUIT)


@contextlib.contextmanager
def running_postgres() -> Iterator[Server]:
    """A fresh PostgreSQL on 127.0.0.1 for the duration of the block (see the module docstring);
    Unavailable if it is not installed."""
    require_available()
    import psycopg

    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    assert initdb is not None and postgres is not None
    user = _server_user()
    # A directory of its own in /tmp, which any user can pass through (a caller's scratch dir
    # may sit below directories that the server's user cannot enter).
    root = Path(tempfile.mkdtemp(prefix="turnstile-peers-postgres-", dir="/tmp"))
    data = root / "data"
    log_path = root / "server.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        as_user: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [initdb, "-D", str(data), "-U", "bench", "-A", "trust", "-E", "UTF8", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **as_user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-2000:]}")
        port = free_port()
        command = [postgres, "-D", str(data), "-k", str(root), "-h", "127.0.0.1", "-p", str(port)]
        for setting in ("fsync=on", "synchronous_commit=on", "max_connections=200"):
            command += ["-c", setting]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                **as_user,
            )
        conninfo = f"host=127.0.0.1 port={port} user=bench dbname=postgres"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {log_path.read_text()[-2000:]}")
            try:
                with psycopg.connect(conninfo, connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                assert row is not None
                version = str(row[0])
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Server(pid=proc.pid, port=port, conninfo=conninfo, version=version)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown of the server we started (by its pid), SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


# -- the commands ---------------------------------------------------------------------------------


class Store:
    """The event queue's rules as SQL transactions on one connection."""

    def __init__(self, conn: Any, mode: str) -> None:
        # psycopg opens a transaction at a connection's first statement (autocommit off): at
        # the isolation level the connection was set to (see `open_store`).
        self.conn = conn
        self.lock = "" if mode == "serializable" else " FOR UPDATE"

    async def join(self, event: int, user: str) -> tuple[str, str]:
        """-> (status, waiting-list id); RateLimited, NotFound, Conflict as Refused."""
        now = now_ms()
        async with self.conn.cursor() as cur:
            try:
                args = {"user": user, "now": now, "window": JOIN_WINDOW_MS, "event": event}
                await cur.execute(TAKE_JOIN_LIMIT, args)
                (count,) = await cur.fetchone()
                if count > JOIN_LIMIT:
                    raise Refused("RateLimited")
                await cur.execute(READ_EVENT + self.lock, args)
                row = await cur.fetchone()
                if row is None:
                    raise Refused("NotFound")
                total, purchased, offers, entries, cancelled = row
                if cancelled:
                    raise Refused("Conflict")
                await cur.execute(OPEN_POSITION, args)
                if await cur.fetchone() is not None:
                    raise Refused("Conflict")
                # Free seats and waiting entries never coexist (every freed seat is offered to
                # the head of the line at once), so a free seat is the newcomer's.
                offered = total - purchased - offers > 0
                wid = f"wl_{event}_{entries}"
                await cur.execute(
                    "INSERT INTO waiting_list (id, event_id, user_id, number, status, joined_at,"
                    " offer_expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        wid,
                        event,
                        user,
                        entries,
                        OFFERED if offered else WAITING,
                        now,
                        now + OFFER_MS if offered else None,
                    ),
                )
                await cur.execute(
                    "UPDATE events SET entry_count = entry_count + 1,"
                    " active_offers = active_offers + %s WHERE id = %s",
                    (int(offered), event),
                )
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()
        return (OFFERED if offered else WAITING), wid

    async def purchase(
        self, event: int, user: str, waiting_list_id: str, payment_intent_id: str, amount: int
    ) -> str:
        """-> ticket id; the same payment intent twice returns the first ticket."""
        now = now_ms()
        async with self.conn.cursor() as cur:
            try:
                await cur.execute(
                    "SELECT is_cancelled FROM events WHERE id = %s" + self.lock, (event,)
                )
                row = await cur.fetchone()
                if row is None:
                    raise Refused("NotFound")
                await cur.execute(
                    "SELECT id, user_id FROM tickets"
                    " WHERE event_id = %s AND payment_intent_id = %s",
                    (event, payment_intent_id),
                )
                earlier = await cur.fetchone()
                if earlier is not None:
                    if earlier[1] != user:
                        raise Refused("Conflict")
                    await self.conn.rollback()
                    return str(earlier[0])
                if row[0]:
                    raise Refused("Conflict")
                await cur.execute(
                    "SELECT user_id, status, offer_expires_at FROM waiting_list"
                    " WHERE id = %s AND event_id = %s",
                    (waiting_list_id, event),
                )
                entry = await cur.fetchone()
                if entry is None:
                    raise Refused("NotFound")
                owner, status, expires = entry
                if owner != user:
                    raise Refused("Forbidden")
                if status != OFFERED or now >= expires:
                    raise Refused("Conflict")
                ticket = f"tk_{waiting_list_id}"
                await cur.execute(
                    "INSERT INTO tickets (id, event_id, user_id, waiting_list_id, status,"
                    " payment_intent_id, amount, purchased_at)"
                    " VALUES (%s, %s, %s, %s, 'valid', %s, %s, %s)",
                    (ticket, event, user, waiting_list_id, payment_intent_id, amount, now),
                )
                await cur.execute(
                    "UPDATE waiting_list SET status = %s WHERE id = %s",
                    (PURCHASED, waiting_list_id),
                )
                await cur.execute(
                    "UPDATE events SET purchased_count = purchased_count + 1,"
                    " active_offers = active_offers - 1 WHERE id = %s",
                    (event,),
                )
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()
        return ticket


async def open_connection(conninfo: str, mode: str) -> Any:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(conninfo)
    if mode == "serializable":
        await conn.set_isolation_level(psycopg.IsolationLevel.SERIALIZABLE)
    return conn


# -- the run --------------------------------------------------------------------------------------


async def _onsale(server: Server, sizes: Sizes, mode: str) -> dict[str, Any]:
    import psycopg
    from psycopg import errors

    retryable: tuple[type[Exception], ...] = (errors.SerializationFailure, errors.DeadlockDetected)
    if mode == "serializable":
        # Two joins that read the same entry_count both insert that number; the loser's unique
        # violation is a concurrency failure like a serialization failure, and is retried too.
        retryable += (errors.UniqueViolation,)
    async with await psycopg.AsyncConnection.connect(server.conninfo, autocommit=True) as admin:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                await admin.execute(statement.encode())
        await admin.execute(
            "INSERT INTO events (id, name, total_tickets, price) VALUES (%s, %s, %s, %s)",
            (EVENT_ID, "Onsale", sizes.tickets, PRICE),
        )
        settings: dict[str, str] = {}
        for name in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes"):
            cur = await admin.execute(f"SHOW {name}".encode())
            row = await cur.fetchone()
            assert row is not None
            settings[name] = str(row[0])
    replies = Replies()
    users = Users(sizes)
    perf = time.perf_counter

    async def call(op: Any, *args: Any) -> Any:
        while True:
            t0 = perf()
            try:
                result = await op(*args)
            except retryable:
                replies.retries += 1
                continue
            replies.latencies.append(perf() - t0)
            return result

    async def client(conn: Any) -> None:
        store = Store(conn, mode)
        for user in users:
            try:
                status, wid = await call(store.join, EVENT_ID, user)
                replies.joined[user] = status
                if status == OFFERED:
                    replies.purchased[user] = await call(
                        store.purchase, EVENT_ID, user, wid, payment_intent(user), PRICE
                    )
            except Refused as exc:
                replies.errors[exc.code] += 1

    conns = [await open_connection(server.conninfo, mode) for _ in range(sizes.clients)]
    try:
        started = perf()
        async with asyncio.TaskGroup() as group:  # one client failing cancels the others
            for conn in conns:
                group.create_task(client(conn))
        seconds = perf() - started
    finally:
        for conn in conns:
            await conn.close()
    async with await psycopg.AsyncConnection.connect(server.conninfo) as conn:
        cur = await conn.execute(
            "SELECT total_tickets, purchased_count FROM events WHERE id = %s", (EVENT_ID,)
        )
        row = await cur.fetchone()
        assert row is not None  # the event row is made before the run
        total, purchased = row
        cur = await conn.execute(
            "SELECT user_id, status FROM waiting_list WHERE event_id = %s ORDER BY number",
            (EVENT_ID,),
        )
        entries: dict[str, list[str]] = {}
        for user_id, status in await cur.fetchall():
            entries.setdefault(user_id, []).append(status)
        cur = await conn.execute(
            "SELECT user_id, waiting_list_id FROM tickets"
            " WHERE event_id = %s AND status IN ('valid', 'used')",
            (EVENT_ID,),
        )
        tickets = [(str(u), str(w)) for u, w in await cur.fetchall()]
    final = FinalState(
        total_tickets=total, purchased_count=purchased, entries=entries, tickets=tickets
    )
    lock = "SELECT ... FOR UPDATE on the event row" if mode == "for-update" else "SERIALIZABLE"
    lock_name = "FOR UPDATE" if mode == "for-update" else "SERIALIZABLE"
    return summarize(
        f"PostgreSQL {server.version.split()[0]} {lock_name}, {sizes.clients} conns",
        sizes,
        replies,
        final,
        seconds,
        not users.hit_deadline,
        durability=", ".join(f"{k}={v}" for k, v in settings.items()),
        concurrency=f"{sizes.clients} psycopg AsyncConnections on one asyncio loop; {lock}",
        server_version=server.version,
        psycopg_version=psycopg.__version__,
    )


def run(sizes: Sizes, mode: str = "for-update") -> dict[str, Any]:
    """One round on a fresh server (Unavailable if PostgreSQL or psycopg is not
    installed); the server is stopped and its directory deleted before this returns."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    with running_postgres() as server:
        return asyncio.run(_onsale(server, sizes, mode))
