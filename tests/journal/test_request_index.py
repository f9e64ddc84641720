"""The SQLite journal's request index (engine/journal/sqlite.py, format 3 on): idempotency records
are appended in commit order and looked up through `streams.db`'s `request_index` plus the
unindexed tail; every read of records agrees whether they are indexed or not; a key recorded
twice is refused from the tail and from the index; the index is derived data, rebuilt when it is
missing or wrong and never trusted over the journal; a format-2 journal (`requests` under a
primary key) is read as it is and converted when opened for writing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.journal import Batch, RequestRecord, Row, checksum
from engine.journal import sqlite as sqlite_journal
from engine.journal.sqlite import INDEX_FILE, JOURNAL_FILE, SqliteJournal, open_reader
from tests.journal.backends import OLD_EVENTS_TABLE, damage_index


def row(seq: int, stream: str, version: int) -> Row:
    payload = f'{{"n":{seq}}}'.encode()
    return Row(seq, stream, version, "Noted", 1, payload, 1_000 + seq, checksum(payload))


def record(session_id: str, request_id: int, seq: int) -> RequestRecord:
    return RequestRecord(session_id, request_id, f'{{"r":{seq}}}'.encode(), seq, 1_000 + seq)


def fill(journal: SqliteJournal, start: int, count: int, sessions: int = 5) -> list[RequestRecord]:
    """`count` commands from seq `start`, one row and one record each, round-robin over
    `sessions` sessions (request ids counting up per session), ten commands a batch."""
    held = {f"s{k}": journal.last_request_id(f"s{k}") for k in range(sessions)}
    rows: list[Row] = []
    records: list[RequestRecord] = []
    for seq in range(start, start + count):
        session = f"s{seq % sessions}"
        held[session] += 1
        rows.append(row(seq, f"counter/c_{seq}", 1))
        records.append(record(session, held[session], seq))
    for i in range(0, count, 10):
        journal.append(Batch(rows=rows[i : i + 10], requests=records[i : i + 10]))
    return records


def reads(reader: sqlite_journal.SqliteReader, keys: list[tuple[str, int]]) -> object:
    """Everything a reader says of the records (each read of the contract)."""
    sessions = sorted({s for s, _ in keys} | {"nobody"})
    return (
        [reader.lookup_request(s, r) for s, r in keys],
        [reader.last_request_id(s) for s in sessions],
        sorted(reader.sessions()),
        [list(reader.requests(chunk=chunk)) for chunk in (1, 7, 5_000)],
        list(reader.requests(after_seq=20, until_seq=40, chunk=3)),
    )


def expected(records: list[RequestRecord], keys: list[tuple[str, int]]) -> object:
    by_key = {(r.session_id, r.request_id): r for r in records}
    ordered = sorted(records, key=lambda r: (r.session_id, r.request_id))
    sessions = sorted({s for s, _ in keys} | {"nobody"})
    return (
        [by_key.get(key) for key in keys],
        [max((r.request_id for r in records if r.session_id == s), default=0) for s in sessions],
        sorted({r.session_id for r in records}),
        [ordered] * 3,
        [r for r in ordered if 20 < r.seq <= 40],
    )


def asked(records: list[RequestRecord]) -> list[tuple[str, int]]:
    """Every recorded key and a few that are not."""
    return [(r.session_id, r.request_id) for r in records] + [("s1", 0), ("s1", 10_000), ("x", 1)]


def index_all(journal: SqliteJournal) -> None:
    while journal.index_tail():
        pass


def test_record_reads_agree_whether_records_are_indexed_or_in_the_tail(tmp_path: Path) -> None:
    journal = SqliteJournal.open(tmp_path)
    try:
        records = fill(journal, 1, 60)
        keys = asked(records)
        assert journal.unindexed_requests() == 60
        in_tail = reads(journal, keys)
        assert journal.index_tail(max_rows=25) == 50  # 25 rows and 25 records
        assert journal.unindexed_requests() == 35
        half = reads(journal, keys)
        index_all(journal)
        assert journal.unindexed_requests() == 0
        indexed = reads(journal, keys)
        records += fill(journal, 61, 20)  # and a tail after the indexed ones
        keys = asked(records)
        both = reads(journal, keys)
        reader = journal.reader()
        try:
            from_reader = reads(reader, keys)
        finally:
            reader.close()
        assert in_tail == half == indexed == expected(records[:60], asked(records[:60]))
        assert both == from_reader == expected(records, keys)
    finally:
        journal.close()


@pytest.mark.parametrize("prune_every", [1, None])
def test_a_request_recorded_twice_is_refused_from_the_tail_and_from_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prune_every: int | None
) -> None:
    """The tail's keys are the writer's memory, the others the index's: a repeat is refused
    in the tail, part way through indexing, once indexed and after a reopen, also when the
    writer forgets the indexed keys at every append (`prune_every` 1); the batch writes
    nothing."""
    if prune_every is not None:
        monkeypatch.setattr(sqlite_journal, "_PRUNE_EVERY", prune_every)

    def refused(journal: SqliteJournal, seq: int, *keys: tuple[str, int]) -> None:
        before = (journal.last_seq(), list(journal.requests()))
        batch = Batch(
            rows=[row(seq, f"counter/c_{seq}", 1)],
            requests=[record(s, r, seq) for s, r in (("fresh", seq), *keys)],
        )
        with pytest.raises(sqlite3.IntegrityError, match=r"already recorded|twice"):
            journal.append(batch)
        assert (journal.last_seq(), list(journal.requests())) == before

    def accepted(journal: SqliteJournal, seq: int, key: tuple[str, int]) -> None:
        journal.append(Batch(rows=[row(seq, f"counter/c_{seq}", 1)], requests=[record(*key, seq)]))

    journal = SqliteJournal.open(tmp_path)
    try:
        fill(journal, 1, 30, sessions=3)  # s0..s2 at request 10 each, all in the tail
        refused(journal, 31, ("s1", 10))
        refused(journal, 31, ("new", 1), ("new", 1))  # twice in one batch
        assert journal.index_tail(max_rows=14) == 28  # part indexed, part still in the tail
        accepted(journal, 31, ("s1", 11))  # (`prune_every` 1: the indexed keys forgotten)
        for key in (("s0", 1), ("s1", 5), ("s2", 9), ("s2", 10), ("s1", 11)):
            refused(journal, 32, key)
        index_all(journal)
        accepted(journal, 32, ("s1", 12))
        refused(journal, 33, ("s0", 3))
        refused(journal, 33, ("s1", 12))  # in the tail again
    finally:
        journal.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed_requests() == 0
        refused(journal, 33, ("s1", 12))
        refused(journal, 33, ("s2", 4))
        accepted(journal, 33, ("s1", 13))
        assert journal.last_request_id("s1") == 13
    finally:
        journal.close()


def test_a_bulk_copy_without_an_indexer_is_indexed_by_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `_TAIL_KEYS` keys in the tail the writer indexes it itself (its memory of the tail
    stays bounded); refusals and reads stay what they were."""
    monkeypatch.setattr(sqlite_journal, "_TAIL_KEYS", 25)
    journal = SqliteJournal.open(tmp_path)
    try:
        records = fill(journal, 1, 100)  # ten batches of ten, no `index_tail` called
        assert journal.unindexed_requests() <= 25
        assert journal.unindexed() < 100
        assert reads(journal, asked(records)) == expected(records, asked(records))
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            journal.append(Batch(rows=[], requests=[record("s1", 1, 100)]))
    finally:
        journal.close()


def build_format_2(data_dir: Path) -> list[RequestRecord]:
    """A journal as format 2 wrote it: `requests` under a primary key (session_id,
    request_id), records in commit order (with a gap in the rowids, as a set-aside tail
    leaves), and its `streams.db` (a stream index, no request index)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / JOURNAL_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(OLD_EVENTS_TABLE)
    conn.execute(
        "CREATE TABLE requests (session_id TEXT, request_id INTEGER, result BLOB NOT NULL,"
        " seq INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (session_id, request_id))"
    )
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', '2')")
    rows = [row(seq, f"counter/c_{seq % 4}", (seq - 1) // 4 + 1) for seq in range(1, 41)]
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    # Sessions counting down, so that commit order is not key order.
    records = [record(f"s{9 - seq % 3}", seq // 3 + 1, seq) for seq in range(1, 41)]
    conn.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?)", records)
    conn.execute("INSERT INTO requests VALUES ('gone', 1, X'00', 41, 1041)")
    conn.execute("DELETE FROM requests WHERE session_id = 'gone'")
    conn.execute("INSERT INTO requests VALUES ('s0', 1, X'7b7d', 40, 1040)")
    records.append(RequestRecord("s0", 1, b"{}", 40, 1040))
    conn.close()
    index = sqlite3.connect(data_dir / INDEX_FILE, isolation_level=None)
    index.execute(
        "CREATE TABLE stream_index (stream TEXT NOT NULL, version INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, PRIMARY KEY (stream, version)) WITHOUT ROWID"
    )
    index.execute(
        "CREATE TABLE indexed (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL)"
    )
    index.executemany(
        "INSERT INTO stream_index VALUES (?, ?, ?)", [(r.stream, r.version, r.seq) for r in rows]
    )
    index.execute("INSERT INTO indexed VALUES (0, 40)")
    index.close()
    return records


def test_a_format_2_journal_is_read_as_it_is_and_converted_when_opened(tmp_path: Path) -> None:
    records = build_format_2(tmp_path)
    keys = asked(records)
    reader = open_reader(tmp_path)  # read-only: it cannot convert, and reads format 2
    try:
        assert reads(reader, keys) == expected(records, keys)
    finally:
        reader.close()
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("2",)
    finally:
        conn.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed() == journal.unindexed_requests() == 0
        assert reads(journal, keys) == expected(records, keys)
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            journal.append(Batch(rows=[], requests=[record("s8", 1, 41)]))
        journal.append(Batch(rows=[row(41, "counter/c_1", 11)], requests=[record("s8", 15, 41)]))
        records.append(record("s8", 15, 41))
    finally:
        journal.close()
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("4",)
        on_requests = "SELECT name FROM sqlite_master WHERE tbl_name = 'requests' AND type = ?"
        assert conn.execute(on_requests, ("index",)).fetchall() == []  # no key: rowids only
        stored = conn.execute("SELECT * FROM requests ORDER BY rowid").fetchall()
        assert stored == [(rid, *r) for rid, r in enumerate(records, 1)]  # commit order
    finally:
        conn.close()
    reader = open_reader(tmp_path)
    try:
        assert reads(reader, asked(records)) == expected(records, asked(records))
    finally:
        reader.close()


@pytest.mark.parametrize("damage", ["deleted", "format-2", "other-journal", "garbage"])
def test_a_missing_or_wrong_request_index_is_rebuilt_at_open(tmp_path: Path, damage: str) -> None:
    journal = SqliteJournal.open(tmp_path)
    records = fill(journal, 1, 40)
    index_all(journal)
    journal.close()
    conn = damage_index(tmp_path, damage)
    if conn is not None:
        if damage == "format-2":  # a stream index without the request index
            conn.execute("DROP TABLE request_index")
            conn.execute("DROP TABLE requests_indexed")
        else:  # an index of another journal: same keys, other records
            conn.execute("UPDATE request_index SET rid = rid + 1")
        conn.commit()
        conn.close()
    reader = open_reader(tmp_path)  # before the writer rebuilds it: it scans instead
    try:
        assert reads(reader, asked(records)) == expected(records, asked(records))
    finally:
        reader.close()
    journal = SqliteJournal.open(tmp_path)
    try:
        assert journal.unindexed_requests() == 0
        assert reads(journal, asked(records)) == expected(records, asked(records))
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            journal.append(Batch(rows=[], requests=[record("s2", 3, 40)]))
    finally:
        journal.close()


def test_a_request_index_that_lies_is_not_believed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage after the open-time check: each read of records finds a record of another key
    through the index and reads the journal instead; so does the append's uniqueness check,
    which neither refuses a key the index alone claims nor lets a recorded one through.
    (`sessions`, like `streams`, is the index's word: a session's key order, not its records.)"""
    monkeypatch.setattr(sqlite_journal, "_PRUNE_EVERY", 1)  # the writer forgets indexed keys
    journal = SqliteJournal.open(tmp_path)
    try:
        records = fill(journal, 1, 30)
        index_all(journal)
        records += fill(journal, 31, 1)  # (and prunes its memory of the 30 indexed ones)
        conn = sqlite3.connect(tmp_path / INDEX_FILE)
        conn.execute("UPDATE request_index SET rid = rid + 1 WHERE session_id = 's2'")
        conn.execute("INSERT INTO request_index VALUES ('s0', 99, 1)")
        conn.commit()
        conn.close()
        keys = asked(records)
        assert reads(journal, keys) == expected(records, keys)
        assert "disagrees" in caplog.text
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            journal.append(Batch(rows=[], requests=[record("s0", 9, 31), record("s2", 1, 31)]))
        journal.append(Batch(rows=[], requests=[record("s0", 99, 31)]))
        assert journal.lookup_request("s0", 99) == record("s0", 99, 31)
    finally:
        journal.close()


def test_a_tail_set_aside_takes_its_records_and_the_index_follows(tmp_path: Path) -> None:
    """`repair_tail` removes the records naming the rows it sets aside; the rids they had are
    written again by the next appends, and the index (reset and rebuilt) names the new ones."""
    journal = SqliteJournal.open(tmp_path)
    try:
        records = fill(journal, 1, 30)
        index_all(journal)
        conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
        conn.execute("UPDATE events SET payload = CAST(payload || X'20' AS BLOB) WHERE seq = 21")
        conn.commit()
        conn.close()
        repair = journal.repair_tail()
        assert repair is not None and repair.requests == 10
        kept = [r for r in records if r.seq < 21]
        assert reads(journal, asked(records)) == expected(kept, asked(records))
        again = fill(journal, 21, 10)  # the same keys as those set aside: recorded again
        assert [(r.session_id, r.request_id) for r in again] == asked(records[20:])[:-3]
        index_all(journal)
        assert reads(journal, asked(records)) == expected(kept + again, asked(records))
    finally:
        journal.close()
