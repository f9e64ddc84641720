"""The SQLite journal's stream index (engine/journal/sqlite.py): reads of a stream are the same
whether its rows are indexed or still in the unindexed tail; the index is derived data, rebuilt
when it is missing, damaged or describes another journal, and never trusted over the journal;
a format-1 journal (unique `(stream, version)` index on `events`) is converted when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.journal import Batch, JournalLocked, Row, checksum
from engine.journal import sqlite as sqlite_journal
from engine.journal.sqlite import INDEX_FILE, JOURNAL_FILE, SqliteJournal, open_reader


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
    index = tmp_path / INDEX_FILE
    for suffix in ("-wal", "-shm"):
        index.with_name(index.name + suffix).unlink(missing_ok=True)
    if damage == "deleted":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(b"not a database at all" * 100)
    else:  # an index of another journal: same streams, other seqs
        conn = sqlite3.connect(index)
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
    builds the stream index, drops that index and records format 3; every read agrees."""
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER"
        " NOT NULL, type TEXT NOT NULL, schema INTEGER NOT NULL, payload BLOB NOT NULL,"
        " at INTEGER NOT NULL, crc INTEGER NOT NULL)"
    )
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
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("3",)
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
