"""The SQLite journal's stream index (engine/journal/sqlite.py): reads of a stream are the same
whether its rows are indexed or still in the unindexed tail; the index is derived data, rebuilt
when it is missing, damaged or describes another journal, and never trusted over the journal;
a format-1 journal (unique `(stream, version)` index on `events`) is converted when opened.
The same of the take index (each limiter's latest take) and of a format-3 journal (no
`takes`), which a reader reads as one without takes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.journal import Batch, DamagedRow, JournalLocked, RequestRecord, Row, Take, checksum
from engine.journal import sqlite as sqlite_journal
from engine.journal.sqlite import INDEX_FILE, JOURNAL_FILE, SqliteJournal, open_reader
from tests.journal.backends import OLD_EVENTS_TABLE, damage_index


def row(seq: int, stream: str, version: int) -> Row:
    payload = f'{{"n":{seq}}}'.encode()
    return Row(seq, stream, version, "Noted", 1, payload, 1_000 + seq, checksum(payload))


def fill(journal: SqliteJournal, start: int, count: int, streams: int = 7) -> list[Row]:
    """`count` rows from seq `start`, round-robin over `streams` streams, one batch each 10."""
    rows: list[Row] = []
    versions = {f"counter/c_{k}": 0 for k in range(streams)}
    for stream in versions:
        held = journal.read_stream(stream)
        versions[stream] = held[-1].version if held else 0
    for seq in range(start, start + count):
        stream = f"counter/c_{seq % streams}"
        versions[stream] += 1
        rows.append(row(seq, stream, versions[stream]))
    for i in range(0, len(rows), 10):
        journal.append(Batch(rows=rows[i : i + 10], requests=()))
    return rows


def by_stream(rows: list[Row], stream: str, after: int = 0) -> list[Row]:
    return [r for r in rows if r.stream == stream and r.version > after]


def test_reads_agree_whether_rows_are_indexed_or_in_the_tail(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    try:
        rows = fill(journal, 1, 100)
        assert journal.unindexed() == 100
        tail_reads = [journal.read_stream(f"counter/c_{k}", 3) for k in range(7)]
        assert journal.index_tail(max_rows=60) == 60  # part indexed, part still in the tail
        assert journal.unindexed() == 40
        half_reads = [journal.read_stream(f"counter/c_{k}", 3) for k in range(7)]
        while journal.index_tail():
            pass
        assert journal.unindexed() == 0
        indexed_reads = [journal.read_stream(f"counter/c_{k}", 3) for k in range(7)]
        expected = [by_stream(rows, f"counter/c_{k}", 3) for k in range(7)]
        assert tail_reads == half_reads == indexed_reads == expected
        assert sorted(journal.streams()) == sorted({r.stream for r in rows})
    finally:
        journal.close()


def test_a_version_written_twice_is_refused_also_once_indexed(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    try:
        fill(journal, 1, 20)
        while journal.index_tail():
            pass
        top = journal.read_stream("counter/c_0")[-1].version
        for version in (1, top):
            with pytest.raises(sqlite3.IntegrityError):
                journal.append(Batch(rows=[row(21, "counter/c_0", version)], requests=()))
        with pytest.raises(sqlite3.IntegrityError):  # out of order within one batch
            journal.append(
                Batch(rows=[row(21, "counter/c_9", 2), row(22, "counter/c_9", 1)], requests=())
            )
        assert journal.last_seq() == 20
        journal.append(Batch(rows=[row(21, "counter/c_0", top + 1)], requests=()))
        assert journal.read_stream("counter/c_0")[-1].version == top + 1
    finally:
        journal.close()


@pytest.mark.parametrize("damage", ["deleted", "garbage", "other-journal"])
def test_a_missing_or_wrong_index_is_rebuilt_at_open(tmp_path: Path, damage: str) -> None:
    journal = SqliteJournal.open(tmp_path)
    rows = fill(journal, 1, 50)
    while journal.index_tail():
        pass
    journal.close()
    conn = damage_index(tmp_path, damage)
    if conn is not None:  # an index of another journal: same streams, other seqs
        conn.execute("UPDATE stream_index SET seq = seq + 1000")
        conn.commit()
        conn.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed() == 0
        for k in range(7):
            assert journal.read_stream(f"counter/c_{k}") == by_stream(rows, f"counter/c_{k}")
    finally:
        journal.close()


def test_an_index_that_lies_is_not_believed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Damage after the open-time check: a read finds rows of another stream through the index
    and reads the journal instead."""
    journal = SqliteJournal.open(tmp_path)
    try:
        rows = fill(journal, 1, 30)
        while journal.index_tail():
            pass
        conn = sqlite3.connect(tmp_path / INDEX_FILE)
        conn.execute("UPDATE stream_index SET seq = seq + 1 WHERE stream = 'counter/c_2'")
        conn.commit()
        conn.close()
        assert journal.read_stream("counter/c_2") == by_stream(rows, "counter/c_2")
        assert "disagrees" in caplog.text
    finally:
        journal.close()


def test_a_reader_without_an_index_scans(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    rows = fill(journal, 1, 30)
    journal.close()
    for path in tmp_path.iterdir():
        if path.name.startswith(INDEX_FILE):
            path.unlink()
    reader = open_reader(tmp_path)
    try:
        assert reader.read_stream("counter/c_3") == by_stream(rows, "counter/c_3")
        assert sorted(reader.streams()) == sorted({r.stream for r in rows})
    finally:
        reader.close()
    assert not (tmp_path / INDEX_FILE).exists()  # a reader writes nothing


def test_a_format_1_journal_is_converted_when_opened(tmp_path: Path) -> None:
    """Format 1 kept a unique (stream, version) index on `events`; opening one for writing
    builds the stream index, drops that index and records format 4; every read agrees."""
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(OLD_EVENTS_TABLE)
    conn.execute("CREATE UNIQUE INDEX idx_events_stream_version ON events (stream, version)")
    conn.execute(
        "CREATE TABLE requests (session_id TEXT, request_id INTEGER, result BLOB NOT NULL,"
        " seq INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (session_id, request_id))"
    )
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', '1')")
    rows = [row(seq, f"counter/c_{seq % 3}", (seq - 1) // 3 + 1) for seq in range(1, 31)]
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed() == 0
        for k in range(3):
            assert journal.read_stream(f"counter/c_{k}") == by_stream(rows, f"counter/c_{k}")
        journal.append(Batch(rows=[row(31, "counter/c_1", 11)], requests=()))
    finally:
        journal.close()
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("4",)
        indexes = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        ]
        assert "idx_events_stream_version" not in indexes
    finally:
        conn.close()


@pytest.mark.parametrize("prune_every", [1, None])
def test_a_version_written_twice_is_refused_from_the_tail_and_across_a_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prune_every: int | None
) -> None:
    """The tail's highest versions are the writer's own (`_tops`): they must refuse a repeat
    before the index holds the stream, while it catches up part way, and after a reopen;
    also when the writer forgets the indexed ones at every append (`prune_every` 1)."""
    if prune_every is not None:
        monkeypatch.setattr(sqlite_journal, "_PRUNE_EVERY", prune_every)
    journal = SqliteJournal.open(tmp_path)
    try:
        fill(journal, 1, 30, streams=3)  # counter/c_0..2 at version 10 each, all in the tail
        assert journal.unindexed() == 30
        with pytest.raises(sqlite3.IntegrityError, match="already written"):
            journal.append(Batch(rows=[row(31, "counter/c_1", 10)], requests=()))
        assert journal.index_tail(max_rows=14) == 14  # c_0..2 partly indexed, partly not
        for stream in ("counter/c_0", "counter/c_1", "counter/c_2"):
            with pytest.raises(sqlite3.IntegrityError, match="already written"):
                journal.append(Batch(rows=[row(31, stream, 9)], requests=()))
        journal.append(Batch(rows=[row(31, "counter/c_1", 11)], requests=()))
    finally:
        journal.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed() == 0
        with pytest.raises(sqlite3.IntegrityError, match="at 11"):
            journal.append(Batch(rows=[row(32, "counter/c_1", 11)], requests=()))
        journal.append(Batch(rows=[row(32, "counter/c_1", 12), row(33, "new/n_1", 1)], requests=()))
        assert [r.version for r in journal.read_stream("counter/c_1")][-2:] == [11, 12]
    finally:
        journal.close()


def test_a_data_dir_has_one_writer_at_a_time(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    try:
        with pytest.raises(JournalLocked, match="in use"):
            SqliteJournal.open(tmp_path)
        reader = open_reader(tmp_path)  # readers are not writers: never refused
        reader.close()
    finally:
        journal.close()
    SqliteJournal.open(tmp_path).close()  # closing released it


@given(st.integers(min_value=0, max_value=20_000), st.sampled_from([1, 2, 512, 2_048]))
def test_multi_row_statements_come_in_few_sizes(count: int, largest: int) -> None:
    """`_pieces` covers the rows in order with power-of-two sizes up to `largest`, so a
    connection prepares at most log2(largest) + 1 sizes of each statement."""
    pieces = list(sqlite_journal._pieces(count, largest))
    starts = [0]
    for _, size in pieces:
        starts.append(starts[-1] + size)
    assert [start for start, _ in pieces] == starts[:-1] and starts[-1] == count
    assert all(size & (size - 1) == 0 and size <= largest for _, size in pieces)
    assert len({size for _, size in pieces}) <= largest.bit_length()


# -- the take index -------------------------------------------------------------------------


def take(seq: int, limiter: str, count: int) -> Take:
    return Take(seq, limiter, 1_000 + seq, 1_000, count, 5_000 - count)


def fill_takes(journal: SqliteJournal, start: int, count: int, limiters: int = 7) -> list[Take]:
    """`count` takes from the `start`-th on, round-robin over `limiters` limiters (counting up
    per limiter from what the journal holds), in batches of ten: one row and ten takes at its
    seq, then ten takes only (at the last seq), in turn."""
    takes: list[Take] = []
    seq = journal.last_seq()
    counts: dict[str, int] = {}
    for first in range(start, start + count, 10):
        with_row = (first // 10) % 2 == 0
        seq += with_row
        part: list[Take] = []
        for k in range(first, min(first + 10, start + count)):
            limiter = f"ratelimit/rl_{k % limiters}"
            if limiter not in counts:
                held = journal.read_take(limiter)
                counts[limiter] = held.count if held else 0
            counts[limiter] += 1
            part.append(take(seq, limiter, counts[limiter]))
        rows = [row(seq, f"counter/t_{seq}", 1)] if with_row else []
        journal.append(Batch(rows=rows, requests=[], takes=part))
        takes += part
    return takes


def take_reads(reader: sqlite_journal.SqliteReader, limiters: int = 9) -> object:
    return (
        [reader.read_take(f"ratelimit/rl_{k}") for k in range(limiters)],
        list(reader.takes(chunk=7)),
        sorted(reader.limiters()),
    )


def expected_takes(takes: list[Take], limiters: int = 9) -> object:
    latest = {t.limiter: t for t in takes}
    return (
        [latest.get(f"ratelimit/rl_{k}") for k in range(limiters)],
        takes,
        sorted(latest),
    )


def index_all(journal: SqliteJournal) -> None:
    while journal.index_tail():
        pass


def test_take_reads_agree_whether_takes_are_indexed_or_in_the_tail(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    try:
        takes = fill_takes(journal, 0, 100)  # 5 rows
        assert journal.unindexed_takes() == 100
        in_tail = take_reads(journal)
        assert journal.index_tail(max_rows=3) == 3 + 3  # 3 seqs and 3 takes
        assert journal.index_tail(max_rows=60) == 2 + 60
        assert journal.unindexed_takes() == 37
        half = take_reads(journal)  # rl_0..6 in the index, and again in the tail
        assert journal.index_tail() == 37
        assert journal.index_tail() == 0  # up to date
        indexed = take_reads(journal)
        assert in_tail == half == indexed == expected_takes(takes)
        takes += fill_takes(journal, 100, 13, limiters=9)  # a tail after the indexed ones
        both = take_reads(journal)
        reader = journal.reader()
        try:
            from_reader = take_reads(reader)
        finally:
            reader.close()
        assert both == from_reader == expected_takes(takes)
    finally:
        journal.close()
    journal = SqliteJournal.open(tmp_path)  # the tail indexed at open
    try:
        assert journal.unindexed_takes() == 0
        assert take_reads(journal) == expected_takes(takes)
    finally:
        journal.close()


def test_takes_go_in_pieces_of_few_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of many takes is written in multi-row statements of power-of-two sizes."""
    monkeypatch.setattr(sqlite_journal, "_TAKES_PER_INSERT", 8)
    monkeypatch.setattr(sqlite_journal, "_INSERT_SQL", {})  # (other tests' statements)
    journal = SqliteJournal.open(tmp_path)
    try:
        takes = [take(0, f"ratelimit/rl_{k % 5}", k) for k in range(37)]
        journal.append(Batch(rows=[], requests=[], takes=takes))
        assert list(journal.takes(after_seq=-1)) == takes  # (at seq 0: nothing durable yet)
        assert journal.last_take_rid() == 37
        sizes = {n for (table, n) in sqlite_journal._INSERT_SQL if table == "takes"}
        assert sizes <= {1, 2, 4, 8} and 8 in sizes
    finally:
        journal.close()


@pytest.mark.parametrize("damage", ["other-limiter", "missing", "tail"])
def test_a_take_index_that_lies_is_not_believed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """Damage after the open-time check: the index names a take of another limiter, one that
    is not there, or one past its own position (another limiter's, in the tail): `read_take`
    reads the journal instead, and answers as if the index were sound."""
    journal = SqliteJournal.open(tmp_path)
    try:
        takes = fill_takes(journal, 0, 40)
        index_all(journal)
        if damage == "tail":
            takes += fill_takes(journal, 40, 5)  # rl_5, rl_6, rl_0, rl_1, rl_2 in the tail
        conn = sqlite3.connect(tmp_path / INDEX_FILE)
        if damage == "other-limiter":
            conn.execute("UPDATE take_index SET rid = rid - 1 WHERE limiter = 'ratelimit/rl_2'")
        elif damage == "missing":
            conn.execute("UPDATE take_index SET rid = 1000 WHERE limiter = 'ratelimit/rl_2'")
        else:
            conn.execute("UPDATE take_index SET rid = 43 WHERE limiter = 'ratelimit/rl_3'")
        conn.commit()
        conn.close()
        assert take_reads(journal) == expected_takes(takes)
        assert "take index disagrees" in caplog.text
    finally:
        journal.close()


def test_a_stored_take_of_the_wrong_type_is_damaged(tmp_path: Path) -> None:
    """A column holding a value of another type (SQLite stores what it is given) fails the
    checksum as changed bytes do."""
    journal = SqliteJournal.open(tmp_path)
    try:
        takes = fill_takes(journal, 0, 10)  # rids 1..10: rl_0..rl_6, then rl_0..rl_2 again
        conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
        conn.execute("UPDATE takes SET milli_tokens = 'many' WHERE rid = 10")
        conn.commit()
        conn.close()
        with pytest.raises(DamagedRow, match="take checksum mismatch"):
            journal.read_take("ratelimit/rl_2")
        conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
        conn.execute("UPDATE takes SET milli_tokens = ? WHERE rid = 10", (takes[9].milli_tokens,))
        conn.execute("UPDATE takes SET limiter = CAST(limiter AS BLOB) WHERE rid = 5")
        conn.commit()
        conn.close()
        assert journal.read_take("ratelimit/rl_2") == takes[9]
        with pytest.raises(DamagedRow, match="take checksum mismatch"):
            list(journal.takes())
    finally:
        journal.close()


@pytest.mark.parametrize("damage", ["deleted", "format-3", "other-journal", "garbage"])
def test_a_missing_or_wrong_take_index_is_rebuilt_at_open(tmp_path: Path, damage: str) -> None:
    journal = SqliteJournal.open(tmp_path)
    takes = fill_takes(journal, 0, 50)
    index_all(journal)
    journal.close()
    conn = damage_index(tmp_path, damage)
    if conn is not None:
        if damage == "format-3":  # a stream index and a request index, no take index
            conn.execute("DROP TABLE take_index")
            conn.execute("DROP TABLE takes_indexed")
        else:  # an index of another journal: same limiters, other takes
            conn.execute("UPDATE take_index SET rid = rid + 1")
        conn.commit()
        conn.close()
    reader = open_reader(tmp_path)  # before the writer rebuilds it: it scans instead
    try:
        assert take_reads(reader) == expected_takes(takes)
    finally:
        reader.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed_takes() == 0
        assert take_reads(journal) == expected_takes(takes)
        conn = sqlite3.connect(tmp_path / INDEX_FILE)
        try:  # (rebuilt: each limiter's latest take)
            held = dict(conn.execute("SELECT limiter, rid FROM take_index").fetchall())
            assert held == {t.limiter: rid for rid, t in enumerate(takes, 1)}
        finally:
            conn.close()
    finally:
        journal.close()


def test_a_tail_set_aside_keeps_its_takes_for_an_operator(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    try:
        takes = fill_takes(journal, 0, 60)  # rows 1..3; takes at seqs 1 to 3
        index_all(journal)
        conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
        conn.execute("UPDATE events SET payload = CAST(payload || X'20' AS BLOB) WHERE seq = 2")
        conn.commit()
        conn.close()
        repair = journal.repair_tail()
        assert repair is not None and (repair.first_seq, repair.rows) == (2, 2)
        aside = [t for t in takes if t.seq >= 2]
        assert repair.takes == len(aside) == 40
        conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
        try:
            stored = conn.execute("SELECT * FROM quarantine_takes ORDER BY rid").fetchall()
        finally:
            conn.close()
        assert [Take(*raw[1:7]) for raw in stored] == aside
        assert [raw[7] for raw in stored] == [sqlite_journal.take_checksum(t) for t in aside]
        kept = [t for t in takes if t.seq < 2]
        assert take_reads(journal) == expected_takes(kept)
        again = fill_takes(journal, 60, 10)
        index_all(journal)
        assert take_reads(journal) == expected_takes(kept + again)
    finally:
        journal.close()


def build_format_3(data_dir: Path) -> tuple[list[Row], list[RequestRecord]]:
    """A journal as format 3 wrote it: `events`, `requests` in commit order under `rid`, no
    `takes` (a limiter's takes were rows of its stream), and its `streams.db` (a stream index
    and a request index, both up to date, no take index)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / JOURNAL_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(OLD_EVENTS_TABLE)
    conn.execute(
        "CREATE TABLE requests (rid INTEGER PRIMARY KEY, session_id TEXT NOT NULL,"
        " request_id INTEGER NOT NULL, result BLOB NOT NULL, seq INTEGER NOT NULL,"
        " at INTEGER NOT NULL)"
    )
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', '3')")
    rows = [row(seq, f"ratelimit/rl_{seq % 3}", (seq - 1) // 3 + 1) for seq in range(1, 31)]
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    records = [RequestRecord(f"s{seq % 2}", seq, b"{}", seq, 1_000 + seq) for seq in range(1, 31)]
    conn.executemany(
        "INSERT INTO requests (session_id, request_id, result, seq, at) VALUES (?, ?, ?, ?, ?)",
        records,
    )
    conn.close()
    index = sqlite3.connect(data_dir / INDEX_FILE, isolation_level=None)
    index.execute(
        "CREATE TABLE stream_index (stream TEXT NOT NULL, version INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, PRIMARY KEY (stream, version)) WITHOUT ROWID"
    )
    index.execute(
        "CREATE TABLE indexed (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL)"
    )
    index.execute(
        "CREATE TABLE request_index (session_id TEXT NOT NULL, request_id INTEGER NOT NULL,"
        " rid INTEGER NOT NULL, PRIMARY KEY (session_id, request_id)) WITHOUT ROWID"
    )
    index.execute(
        "CREATE TABLE requests_indexed (id INTEGER PRIMARY KEY CHECK (id = 0),"
        " rid INTEGER NOT NULL)"
    )
    index.executemany(
        "INSERT INTO stream_index VALUES (?, ?, ?)", [(r.stream, r.version, r.seq) for r in rows]
    )
    index.execute("INSERT INTO indexed VALUES (0, 30)")
    index.executemany(
        "INSERT INTO request_index VALUES (?, ?, ?)",
        [(r.session_id, r.request_id, rid) for rid, r in enumerate(records, 1)],
    )
    index.execute("INSERT INTO requests_indexed VALUES (0, 30)")
    index.close()
    return rows, records


def test_a_format_3_journal_is_read_without_takes_and_converted_when_opened(
    tmp_path: Path,
) -> None:
    rows, records = build_format_3(tmp_path)
    reader = open_reader(tmp_path)  # read-only: it cannot convert, and reads format 3
    try:
        assert reader.read_take("ratelimit/rl_1") is None
        assert list(reader.takes()) == [] and list(reader.limiters()) == []
        assert reader.read_stream("ratelimit/rl_1") == by_stream(rows, "ratelimit/rl_1")
        assert reader.lookup_request("s1", 7) == records[6]
        conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
        try:
            assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("3",)
        finally:
            conn.close()
        journal = SqliteJournal.open(tmp_path)
        try:
            assert journal.unindexed() == journal.unindexed_requests() == 0
            assert journal.read_take("ratelimit/rl_1") is None
            assert journal.read_stream("ratelimit/rl_1") == by_stream(rows, "ratelimit/rl_1")
            assert journal.lookup_request("s0", 30) == records[29]
            takes = [take(30, "ratelimit/rl_1", 11), take(31, "ratelimit/rl_2", 11)]
            journal.append(Batch(rows=[row(31, "counter/c_1", 1)], requests=[], takes=takes))
            assert journal.read_take("ratelimit/rl_2") == takes[1]
            index_all(journal)
            assert sorted(journal.limiters()) == ["ratelimit/rl_1", "ratelimit/rl_2"]
            # The reader opened before the conversion sees the takes once there are some.
            assert reader.read_take("ratelimit/rl_1") == takes[0]
            assert list(reader.takes(after_seq=30)) == takes[1:]
        finally:
            journal.close()
    finally:
        reader.close()
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("4",)
        columns = [c[1] for c in conn.execute("PRAGMA table_info(takes)").fetchall()]
        assert columns == [
            "rid",
            "seq",
            "limiter",
            "at",
            "window_start",
            "count",
            "milli_tokens",
            "crc",
        ]
        on_takes = "SELECT name FROM sqlite_master WHERE tbl_name = 'takes' AND type = 'index'"
        assert conn.execute(on_takes).fetchall() == []  # rowids only
        stored = conn.execute("SELECT rid, session_id, request_id FROM requests").fetchall()
        assert stored == [(rid, r.session_id, r.request_id) for rid, r in enumerate(records, 1)]
    finally:
        conn.close()
    reader = open_reader(tmp_path)
    try:
        assert take_reads(reader, 3) == expected_takes(takes, 3)
    finally:
        reader.close()
