"""PostgreSQL's side of the workloads: Debian's server on loopback, through psycopg 3.

`running_postgres` finds Debian's binaries (on PATH, else under /usr/lib/postgresql/*/bin, where
the `postgresql` package puts them), runs `initdb` in a temporary directory and starts
`postgres` on 127.0.0.1 at a free port (its Unix socket in that directory too), with
`fsync=on` and `synchronous_commit=on` (so a COMMIT returns only once its WAL record is
flushed), and on leaving, also on error, stops that one process by its pid (fast shutdown,
SIGKILL after 30 s) and deletes the directory. The
server cannot run as root, so under root it runs as the `postgres` user (or `nobody`). It also
gets a parent-death signal, so it cannot outlive a benchmark process that is killed.

The schema is the relational form of the event queue: `events` (one row per event with its
counters), `waiting_list`, `tickets`, and `join_limits` (the per-user join rate limit). Every
command is one transaction, and the clients are `clients` psycopg `AsyncConnection`s on one
asyncio loop (one process, one event loop, as the Turnstile side):

- `for-update` (the default): a client-side READ COMMITTED transaction of several statements; a
  join takes the user's rate-limit row, then locks the event row with `SELECT ... FOR UPDATE`,
  so joins and purchases of one event run one at a time and the seat counts they read are
  current;
- `plpgsql`: the same statements, rules and locks inside the server, as two plpgsql functions
  (`join_waiting_list`, `purchase`, in `FUNCTIONS_SQL`): each command is ONE statement
  (`SELECT * FROM join_waiting_list(%s, %s)`) on an autocommit connection, so it costs one
  round trip, and the event row's lock is held from inside the call through its commit only. A
  refusal raises an exception, which rolls the whole call back (the rate-limit take too, as the
  client-side transaction's rollback does);
- `serializable`: the same statements as `for-update` without `FOR UPDATE` at SERIALIZABLE
  isolation, and a transaction that fails with a serialization failure (or deadlock) is retried
  from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
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

MODES = ("for-update", "plpgsql", "serializable")
#: Where Debian's `postgresql` package puts the server's binaries (one directory per version).
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"

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


# The rules in the server: the statements of `Store.join` and `Store.purchase` below, in the same
# order, with the same locks; a refusal raises (SQLSTATE P0001, its message the error's name).
FUNCTIONS_SQL = f"""
CREATE FUNCTION join_waiting_list(p_event bigint, p_user text,
                                  OUT o_status text, OUT o_waiting_list_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    v_count integer;
    v_event events%ROWTYPE;
    v_offered boolean;
BEGIN
    INSERT INTO join_limits AS l (user_id, window_start, count) VALUES (p_user, v_now, 1)
    ON CONFLICT (user_id) DO UPDATE SET
        count = CASE WHEN l.window_start + {JOIN_WINDOW_MS} <= EXCLUDED.window_start
                     THEN 1 ELSE l.count + 1 END,
        window_start = CASE WHEN l.window_start + {JOIN_WINDOW_MS} <= EXCLUDED.window_start
                            THEN EXCLUDED.window_start ELSE l.window_start END
    RETURNING l.count INTO v_count;
    IF v_count > {JOIN_LIMIT} THEN
        RAISE EXCEPTION 'RateLimited';
    END IF;
    SELECT * INTO v_event FROM events WHERE id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound';
    END IF;
    IF v_event.is_cancelled THEN
        RAISE EXCEPTION 'Conflict';
    END IF;
    IF EXISTS (SELECT 1 FROM waiting_list w
                WHERE w.event_id = p_event AND w.user_id = p_user
                  AND w.status IN ('waiting', 'offered'))
       OR EXISTS (SELECT 1 FROM tickets t
                   WHERE t.event_id = p_event AND t.user_id = p_user
                     AND t.status IN ('valid', 'used')) THEN
        RAISE EXCEPTION 'Conflict';
    END IF;
    -- Free seats and waiting entries never coexist, so a free seat is the newcomer's.
    v_offered := v_event.total_tickets - v_event.purchased_count - v_event.active_offers > 0;
    o_waiting_list_id := 'wl_' || p_event || '_' || v_event.entry_count;
    o_status := CASE WHEN v_offered THEN '{OFFERED}' ELSE '{WAITING}' END;
    INSERT INTO waiting_list (id, event_id, user_id, number, status, joined_at, offer_expires_at)
    VALUES (o_waiting_list_id, p_event, p_user, v_event.entry_count, o_status, v_now,
            CASE WHEN v_offered THEN v_now + {OFFER_MS} END);
    UPDATE events SET entry_count = entry_count + 1,
                      active_offers = active_offers + v_offered::integer
     WHERE id = p_event;
END
$$;

CREATE FUNCTION purchase(p_event bigint, p_user text, p_waiting_list_id text,
                         p_payment_intent text, p_amount integer)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    v_cancelled boolean;
    v_ticket text;
    v_owner text;
    v_entry waiting_list%ROWTYPE;
BEGIN
    SELECT is_cancelled INTO v_cancelled FROM events WHERE id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound';
    END IF;
    SELECT t.id, t.user_id INTO v_ticket, v_owner FROM tickets t
     WHERE t.event_id = p_event AND t.payment_intent_id = p_payment_intent;
    IF FOUND THEN  -- the same payment intent again: the first purchase's ticket
        IF v_owner <> p_user THEN
            RAISE EXCEPTION 'Conflict';
        END IF;
        RETURN v_ticket;
    END IF;
    IF v_cancelled THEN
        RAISE EXCEPTION 'Conflict';
    END IF;
    SELECT * INTO v_entry FROM waiting_list w
     WHERE w.id = p_waiting_list_id AND w.event_id = p_event;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound';
    END IF;
    IF v_entry.user_id <> p_user THEN
        RAISE EXCEPTION 'Forbidden';
    END IF;
    IF v_entry.status <> '{OFFERED}' OR v_now >= v_entry.offer_expires_at THEN
        RAISE EXCEPTION 'Conflict';
    END IF;
    v_ticket := 'tk_' || p_waiting_list_id;
    INSERT INTO tickets (id, event_id, user_id, waiting_list_id, status, payment_intent_id,
                         amount, purchased_at)
    VALUES (v_ticket, p_event, p_user, p_waiting_list_id, 'valid', p_payment_intent, p_amount,
            v_now);
    UPDATE waiting_list SET status = '{PURCHASED}' WHERE id = p_waiting_list_id;
    UPDATE events SET purchased_count = purchased_count + 1, active_offers = active_offers - 1
     WHERE id = p_event;
    RETURN v_ticket;
END
$$;
"""


class Unavailable(Exception):
    """PostgreSQL or psycopg is not installed here."""


class Refused(Exception):
    """A command the rules refuse (the name of Turnstile's error code in `code`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def find_binaries() -> tuple[str, str]:
    """(initdb, postgres): on PATH, else in the newest version's directory under
    DEBIAN_BINARIES; Unavailable if neither has both."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb is not None and postgres is not None:
        return initdb, postgres

    def major(directory: str) -> int:
        number = Path(directory).parent.name
        return int(number) if number.isdigit() else -1

    for directory in sorted(glob.glob(DEBIAN_BINARIES), key=major, reverse=True):
        found = [Path(directory) / name for name in ("initdb", "postgres")]
        if all(os.access(path, os.X_OK) for path in found):
            return str(found[0]), str(found[1])
    raise Unavailable(
        f"PostgreSQL not found (no initdb and postgres on PATH or in {DEBIAN_BINARIES}; "
        "Debian's package: apt-get install postgresql)"
    )


def require_available() -> None:
    """Raise Unavailable unless the server binaries and psycopg are there."""
    find_binaries()
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

    initdb, postgres = find_binaries()
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


class FunctionStore:
    """The same commands as `Store`, each ONE call of a plpgsql function (`FUNCTIONS_SQL`) on an
    autocommit connection: the call is its own transaction, committed when it returns."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def _call(self, query: str, args: tuple[Any, ...]) -> Any:
        from psycopg import errors

        try:
            cur = await self.conn.execute(query, args)
        except errors.RaiseException as exc:
            raise Refused(exc.diag.message_primary or "RaiseException") from None
        return await cur.fetchone()

    async def join(self, event: int, user: str) -> tuple[str, str]:
        row = await self._call("SELECT * FROM join_waiting_list(%s, %s)", (event, user))
        return str(row[0]), str(row[1])

    async def purchase(
        self, event: int, user: str, waiting_list_id: str, payment_intent_id: str, amount: int
    ) -> str:
        row = await self._call(
            "SELECT purchase(%s, %s, %s, %s, %s)",
            (event, user, waiting_list_id, payment_intent_id, amount),
        )
        return str(row[0])


async def open_connection(conninfo: str, mode: str) -> Any:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=mode == "plpgsql")
    if mode == "serializable":
        await conn.set_isolation_level(psycopg.IsolationLevel.SERIALIZABLE)
    return conn


# -- the run --------------------------------------------------------------------------------------


async def _workload(server: Server, sizes: Sizes, mode: str) -> dict[str, Any]:
    import psycopg
    from psycopg import errors

    retryable: tuple[type[Exception], ...] = (errors.SerializationFailure, errors.DeadlockDetected)
    if mode == "serializable":
        # Two joins that read the same entry_count both insert that number; the loser's unique
        # violation is a concurrency failure like a serialization failure, and is retried too.
        retryable += (errors.UniqueViolation,)
    event_ids = list(range(1, sizes.events + 1))  # event number i is row id i + 1
    async with await psycopg.AsyncConnection.connect(server.conninfo, autocommit=True) as admin:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                await admin.execute(statement.encode())
        if mode == "plpgsql":
            await admin.execute(FUNCTIONS_SQL.encode())
        async with admin.cursor() as cur:
            await cur.executemany(
                "INSERT INTO events (id, name, total_tickets, price) VALUES (%s, %s, %s, %s)",
                [(i, f"Event {i}", sizes.tickets, PRICE) for i in event_ids],
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
        store: Store | FunctionStore = (
            FunctionStore(conn) if mode == "plpgsql" else Store(conn, mode)
        )
        for user in users:
            event = event_ids[users.event_of(user)]
            try:
                status, wid = await call(store.join, event, user)
                replies.joined[user] = status
                if status == OFFERED:
                    replies.purchased[user] = await call(
                        store.purchase, event, user, wid, payment_intent(user), PRICE
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
    finals = await read_final_state(server, event_ids)
    lock = {
        "for-update": "a client-side transaction of several statements, SELECT ... FOR UPDATE "
        "on the event row",
        "plpgsql": "one plpgsql function call per command (autocommit), SELECT ... FOR UPDATE "
        "on the event row inside it",
        "serializable": "a client-side SERIALIZABLE transaction, retried on conflicts",
    }[mode]
    lock_name = {"for-update": "FOR UPDATE", "plpgsql": "plpgsql", "serializable": "SERIALIZABLE"}
    return summarize(
        f"PostgreSQL {server.version.split()[0]} {lock_name[mode]}, {sizes.clients} conns",
        sizes,
        replies,
        finals,
        seconds,
        not users.hit_deadline,
        durability=", ".join(f"{k}={v}" for k, v in settings.items()),
        concurrency=f"{sizes.clients} psycopg AsyncConnections on one asyncio loop; {lock}",
        server_version=server.version,
        psycopg_version=psycopg.__version__,
        mode=mode,
    )


async def read_final_state(server: Server, event_ids: list[int]) -> list[FinalState]:
    """Every event's committed state, read back from the server, in the order of `event_ids`."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(server.conninfo) as conn:
        cur = await conn.execute("SELECT id, total_tickets, purchased_count FROM events")
        counters = {int(i): (int(t), int(p)) for i, t, p in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT event_id, user_id, status FROM waiting_list ORDER BY event_id, number"
        )
        entries: dict[int, dict[str, list[str]]] = {}
        for event_id, user_id, status in await cur.fetchall():
            entries.setdefault(int(event_id), {}).setdefault(user_id, []).append(status)
        cur = await conn.execute(
            "SELECT event_id, user_id, waiting_list_id FROM tickets"
            " WHERE status IN ('valid', 'used')"
        )
        tickets: dict[int, list[tuple[str, str]]] = {}
        for event_id, u, w in await cur.fetchall():
            tickets.setdefault(int(event_id), []).append((str(u), str(w)))
    return [
        FinalState(
            total_tickets=counters[i][0],
            purchased_count=counters[i][1],
            entries=entries.get(i, {}),
            tickets=tickets.get(i, []),
        )
        for i in event_ids
    ]


def run(sizes: Sizes, mode: str = "for-update") -> dict[str, Any]:
    """One round on a fresh server (Unavailable if PostgreSQL or psycopg is not
    installed); the server is stopped and its directory deleted before this returns."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    with running_postgres() as server:
        return asyncio.run(_workload(server, sizes, mode))
