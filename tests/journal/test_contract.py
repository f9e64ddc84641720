"""The journal contract (engine/journal/interface.py): what every backend must do, tested the
same way on each (`journal_backend`, tests/journal/backends.py).

Rows here are written straight through `Journal.append`, with payloads of any bytes: the
journal stores and checks them, it never decodes them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.journal import (
    Batch,
    DamagedRow,
    GroupCount,
    Journal,
    JournalReader,
    JournalReadError,
    RequestRecord,
    Row,
    Take,
    checksum,
    verify,
)
from tests.journal.backends import Backend

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms


def row(
    seq: int,
    stream: str,
    version: int,
    *,
    type: str = "Noted",
    at: int | None = None,
    payload: bytes | None = None,
) -> Row:
    data = payload if payload is not None else f'{{"n":{seq},"label":"l{seq}"}}'.encode()
    return Row(
        seq, stream, version, type, 1, data, T0 + seq * 1_000 if at is None else at, checksum(data)
    )


def record(session: str, request: int, seq: int, result: bytes = b'{"ok":true}') -> RequestRecord:
    return RequestRecord(session, request, result, seq, T0 + seq * 1_000)


def take(seq: int, limiter: str, count: int) -> Take:
    """A take of `limiter` at `seq`, its `count`-th of the window (the numbers are the
    engine's: the journal only keeps them)."""
    return Take(seq, limiter, T0 + seq * 1_000 + count, T0, count, 10_000 - 1_000 * count)


def batch(
    *rows: Row, requests: tuple[RequestRecord, ...] = (), takes: tuple[Take, ...] = ()
) -> Batch:
    return Batch(rows=rows, requests=requests, takes=takes)


RL_A, RL_B, RL_C = "ratelimit/rl_a", "ratelimit/rl_b", "ratelimit/rl_c"


def seed_takes(journal: Journal) -> list[Take]:
    """`seed`'s journal and three batches with takes after it: rows and takes, then takes only
    (at the last durable seq). `RL_A` is taken in each of them, `RL_B` in the first and last."""
    seed(journal)
    takes = [
        take(8, RL_A, 1),
        take(8, RL_B, 1),
        take(9, RL_C, 1),
        take(10, RL_A, 2),
        take(10, RL_B, 2),
        take(10, RL_A, 3),
    ]
    journal.append(batch(row(8, "counter/c_b", 3), takes=tuple(takes[:2])))
    journal.append(batch(row(9, "job/j_2", 1), row(10, "job/j_3", 1), takes=tuple(takes[2:4])))
    journal.append(batch(takes=tuple(takes[4:])))
    return takes


def take_reads(reader: JournalReader) -> object:
    """What `reader` says of the takes (each read of the contract)."""
    return (
        [reader.read_take(limiter) for limiter in (RL_A, RL_B, RL_C, "ratelimit/rl_none")],
        [list(reader.takes(chunk=chunk)) for chunk in (1, 2, 5, 20_000)],
        list(reader.takes(after_seq=8)),
        list(reader.takes(after_seq=8, until_seq=9)),
        list(reader.takes(until_seq=8, chunk=1)),
        list(reader.takes(after_seq=10)),
        sorted(reader.limiters()),
    )


def expected_take_reads(takes: list[Take]) -> object:
    latest = {t.limiter: t for t in takes}
    return (
        [latest.get(limiter) for limiter in (RL_A, RL_B, RL_C, "ratelimit/rl_none")],
        [takes] * 4,
        [t for t in takes if t.seq > 8],
        [t for t in takes if 8 < t.seq <= 9],
        [t for t in takes if t.seq <= 8],
        [t for t in takes if t.seq > 10],
        sorted(latest),
    )


def seed(journal: Journal) -> list[Row]:
    """Seven rows over three streams of two kinds, and three idempotency records."""
    rows = [
        row(1, "counter/c_a", 1, type="CounterCreated"),
        row(2, "counter/c_b", 1, type="CounterCreated"),
        row(3, "counter/c_a", 2),
        row(4, "job/j_1", 1, type="JobScheduled"),
        row(5, "counter/c_a", 3),
        row(6, "counter/c_b", 2),
        row(7, "counter/c_a", 4, type="CounterErased"),
    ]
    journal.append(batch(*rows[:2], requests=(record("s1", 1, 1), record("s1", 2, 2))))
    journal.append(batch(*rows[2:5], requests=(record("s2", 1, 5),)))
    journal.append(batch(*rows[5:]))
    return rows


# -- append -------------------------------------------------------------------------------


def test_an_empty_journal_is_at_seq_0(journal: Journal) -> None:
    assert journal.last_seq() == 0
    assert list(journal.scan()) == []
    assert journal.read_stream("counter/c_a") == []
    assert journal.lookup_request("s1", 1) is None
    assert not journal.holds_records()


def test_appended_rows_come_back_as_written_in_seq_order(journal: Journal) -> None:
    rows = seed(journal)
    assert journal.last_seq() == 7
    assert list(journal.scan()) == rows
    assert [r.seq for r in journal.scan()] == list(range(1, 8))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(row(8, "counter/c_a", 4), id="stream-version-taken"),
        pytest.param(row(5, "counter/c_z", 1), id="seq-taken"),
    ],
)
def test_a_batch_with_a_conflicting_row_writes_nothing(journal: Journal, bad: Row) -> None:
    rows = seed(journal)
    good = row(9, "counter/c_new", 1)
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        journal.append(batch(good, bad, requests=(record("s3", 1, 9),)))
    assert journal.last_seq() == 7
    assert list(journal.scan()) == rows
    assert journal.read_stream("counter/c_new") == []
    assert journal.lookup_request("s3", 1) is None


def test_a_batch_with_a_request_already_recorded_writes_nothing(journal: Journal) -> None:
    rows = seed(journal)
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        journal.append(batch(row(8, "counter/c_c", 1), requests=(record("s1", 1, 8),)))
    assert list(journal.scan()) == rows
    assert journal.lookup_request("s1", 1) == record("s1", 1, 1)
    assert journal.read_stream("counter/c_c") == []


def test_a_failed_batch_leaves_the_journal_writable(journal: Journal) -> None:
    seed(journal)
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        journal.append(batch(row(8, "counter/c_a", 1)))
    journal.append(batch(row(8, "counter/c_a", 5)))
    assert journal.last_seq() == 8
    assert [r.version for r in journal.read_stream("counter/c_a")] == [1, 2, 3, 4, 5]


def test_a_batch_of_only_requests_or_of_many_rows(journal: Journal) -> None:
    many = [row(seq, f"counter/c_{seq % 50}", seq // 50 + 1) for seq in range(1, 10_001)]
    journal.append(batch(*many))
    journal.append(batch(requests=(record("s9", 1, 10_000),)))
    assert journal.last_seq() == 10_000
    assert list(journal.scan()) == many
    assert journal.lookup_request("s9", 1) == record("s9", 1, 10_000)


def test_everything_is_there_after_reopening(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    rows = seed(journal)
    journal.close()
    again = journal_backend.open(data_dir)
    try:
        assert again.last_seq() == 7
        assert list(again.scan()) == rows
        assert again.lookup_request("s2", 1) == record("s2", 1, 5)
        again.append(batch(row(8, "counter/c_b", 3)))
        assert again.last_seq() == 8
    finally:
        again.close()


# -- takes ----------------------------------------------------------------------------------


def test_an_empty_journal_has_no_takes(journal: Journal) -> None:
    seed(journal)
    assert journal.read_take(RL_A) is None
    assert list(journal.takes()) == []
    assert list(journal.limiters()) == []


def test_takes_come_back_each_limiters_latest_and_all_in_append_order(journal: Journal) -> None:
    takes = seed_takes(journal)
    assert journal.read_take(RL_A) == take(10, RL_A, 3)  # the third batch's (of takes only)
    assert journal.read_take(RL_C) == take(9, RL_C, 1)
    in_tail = take_reads(journal)
    while journal.index_tail():  # (the backend's lookups caught up, if it has any)
        pass
    assert take_reads(journal) == in_tail == expected_take_reads(takes)
    assert journal.last_seq() == 10  # takes are not rows
    assert [r.seq for r in journal.scan(after_seq=7)] == [8, 9, 10]
    later = [take(11, RL_B, 3), take(11, "ratelimit/rl_d", 1)]
    journal.append(batch(row(11, "counter/c_c", 1), takes=tuple(later)))
    assert take_reads(journal) == expected_take_reads(takes + later)
    assert sorted(journal.limiters()) == [RL_A, RL_B, RL_C, "ratelimit/rl_d"]  # each once


def test_takes_are_read_back_after_reopening_and_by_a_reader(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    reader = journal_backend.open_reader(data_dir)
    try:
        assert reader.read_take(RL_A) is None
        takes = seed_takes(journal)
        assert take_reads(reader) == expected_take_reads(takes)
        journal.close()
        again = journal_backend.open(data_dir)
        try:
            assert take_reads(again) == expected_take_reads(takes)
            again.append(batch(takes=(take(10, RL_A, 4),)))
            assert reader.read_take(RL_A) == again.read_take(RL_A) == take(10, RL_A, 4)
        finally:
            again.close()
    finally:
        reader.close()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(batch(row(11, "counter/c_a", 4)), id="stream-version-taken"),
        pytest.param(batch(row(10, "counter/c_z", 1)), id="seq-taken"),
        pytest.param(batch(requests=(record("s1", 1, 10),)), id="request-recorded"),
    ],
)
def test_a_failing_batch_writes_none_of_its_takes(journal: Journal, bad: Batch) -> None:
    takes = seed_takes(journal)
    failing = Batch(
        rows=bad.rows,
        requests=bad.requests,
        takes=[take(10, RL_A, 9), take(10, "ratelimit/rl_new", 1)],
    )
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        journal.append(failing)
    assert take_reads(journal) == expected_take_reads(takes)
    assert journal.read_take("ratelimit/rl_new") is None


def test_read_take_detects_a_damaged_take(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    seed_takes(journal)
    journal_backend.damage_take(data_dir, RL_B)
    with pytest.raises(DamagedRow) as raised:
        journal.read_take(RL_B)
    assert (raised.value.seq, raised.value.stream) == (10, RL_B)
    assert "take checksum" in str(raised.value)
    assert journal.read_take(RL_A) == take(10, RL_A, 3)  # the others are read as ever
    assert list(journal.takes(until_seq=9)) == [
        take(8, RL_A, 1),
        take(8, RL_B, 1),
        take(9, RL_C, 1),
    ]
    with pytest.raises(DamagedRow):
        list(journal.takes())


# -- scan -----------------------------------------------------------------------------------


def test_scan_bounds_by_seq(journal: Journal) -> None:
    rows = seed(journal)
    assert list(journal.scan(after_seq=2, until_seq=5)) == rows[2:5]
    assert list(journal.scan(after_seq=5)) == rows[5:]
    assert list(journal.scan(until_seq=0)) == []
    assert list(journal.scan(after_seq=7)) == []
    assert list(journal.scan(until_seq=99)) == rows


def test_scan_filters_by_stream_type_and_time(journal: Journal) -> None:
    rows = seed(journal)
    assert [r.seq for r in journal.scan(streams=["counter/c_b"])] == [2, 6]
    assert [r.seq for r in journal.scan(types=["CounterCreated", "JobScheduled"])] == [1, 2, 4]
    assert [r.seq for r in journal.scan(since_ms=rows[2].at, until_ms=rows[4].at)] == [3, 4, 5]
    assert [r.seq for r in journal.scan(streams=["counter/c_a"], types=["Noted"])] == [3, 5]
    assert [r.seq for r in journal.scan(after_seq=3, streams=["counter/c_a"])] == [5, 7]
    assert list(journal.scan(types=[])) == []
    assert list(journal.scan(streams=[])) == []


def test_scan_reads_chunk_by_chunk_without_losing_or_repeating_a_row(journal: Journal) -> None:
    rows = seed(journal)
    for chunk in (1, 2, 3, 7, 8):
        assert list(journal.scan(chunk=chunk)) == rows
        assert [r.seq for r in journal.scan(chunk=chunk, streams=["counter/c_a"])] == [1, 3, 5, 7]


def test_row_at_and_first_seq_after(journal: Journal) -> None:
    rows = seed(journal)
    assert journal.row_at(4) == rows[3]
    assert journal.row_at(8) is None
    assert journal.first_seq_after(rows[3].at) == 5
    assert journal.first_seq_after(rows[3].at - 1) == 4
    assert journal.first_seq_after(rows[6].at) is None


# -- streams and requests -------------------------------------------------------------------


def test_read_stream_gives_its_rows_after_a_version_in_version_order(journal: Journal) -> None:
    rows = seed(journal)
    assert journal.read_stream("counter/c_a") == [rows[0], rows[2], rows[4], rows[6]]
    assert journal.read_stream("counter/c_a", 2) == [rows[4], rows[6]]
    assert journal.read_stream("counter/c_a", 4) == []
    assert journal.read_stream("counter/c_nobody") == []


def test_streams_lists_each_written_stream_once(journal: Journal) -> None:
    assert list(journal.streams()) == []
    rows = seed(journal)
    assert sorted(journal.streams()) == sorted({r.stream for r in rows})


def test_sessions_lists_each_session_with_a_record_once(journal: Journal) -> None:
    assert list(journal.sessions()) == []
    seed(journal)
    assert sorted(journal.sessions()) == ["s1", "s2"]


def test_read_stream_detects_a_damaged_row(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    seed(journal)
    journal_backend.damage_payload(data_dir, 5)
    with pytest.raises(DamagedRow) as raised:
        journal.read_stream("counter/c_a")
    assert (raised.value.seq, raised.value.stream) == (5, "counter/c_a")
    assert [r.seq for r in journal.read_stream("counter/c_a", 3)] == [7]  # after the damage
    damaged = journal.row_at(5)
    assert damaged is not None
    with pytest.raises(DamagedRow):
        verify(damaged)  # scan returns it as stored; the caller's check catches it


def test_lookup_request_finds_the_record_of_a_committed_mutation(journal: Journal) -> None:
    seed(journal)
    assert journal.lookup_request("s1", 2) == record("s1", 2, 2)
    assert journal.lookup_request("s1", 3) is None
    assert journal.lookup_request("s2", 2) is None
    assert journal.lookup_request("s3", 1) is None


def test_requests_by_position_in_key_order(journal: Journal) -> None:
    seed(journal)
    journal.append(batch(requests=(record("s0", 7, 7), record("s1", 0, 7))))
    every = [("s0", 7), ("s1", 0), ("s1", 1), ("s1", 2), ("s2", 1)]
    for chunk in (1, 2, 5, 6):
        found = [(r.session_id, r.request_id) for r in journal.requests(chunk=chunk)]
        assert found == every
    assert [r.seq for r in journal.requests(until_seq=2)] == [1, 2]
    assert [(r.session_id, r.seq) for r in journal.requests(after_seq=2, chunk=1)] == [
        ("s0", 7),
        ("s1", 7),
        ("s2", 5),
    ]
    assert list(journal.requests(after_seq=7)) == []


def test_holds_records_can_ignore_kinds(journal: Journal) -> None:
    journal.append(batch(row(1, "job/j_1", 1, type="JobScheduled")))
    assert journal.holds_records()
    assert not journal.holds_records(ignoring_kinds=("job",))
    journal.append(batch(row(2, "counter/c_a", 1)))
    assert journal.holds_records(ignoring_kinds=("job",))


# -- aggregates -----------------------------------------------------------------------------


def test_totals_counts_and_rate(journal: Journal) -> None:
    rows = seed(journal)
    totals = journal.totals()
    assert totals.events == 7
    assert totals.payload_bytes == sum(len(r.payload) for r in rows)
    assert (totals.first_seq, totals.last_seq) == (1, 7)
    assert (totals.first_at, totals.last_at) == (rows[0].at, rows[6].at)
    assert totals.streams == 3

    def size(*seqs: int) -> int:
        return sum(len(rows[s - 1].payload) for s in seqs)

    assert journal.counts("kind") == [
        GroupCount("counter", 6, size(1, 2, 3, 5, 6, 7)),
        GroupCount("job", 1, size(4)),
    ]
    assert journal.counts("stream", limit=2) == [
        GroupCount("counter/c_a", 4, size(1, 3, 5, 7)),
        GroupCount("counter/c_b", 2, size(2, 6)),
    ]
    by_type = {g.name: g.events for g in journal.counts("type")}
    assert by_type == {"Noted": 3, "CounterCreated": 2, "JobScheduled": 1, "CounterErased": 1}
    step = 3_000  # rows are 1 s apart from T0 + 1 s
    expected: dict[int, int] = {}
    for r in rows:
        expected[r.at // step] = expected.get(r.at // step, 0) + 1
    assert journal.rate(step) == expected


def test_totals_of_an_empty_journal(journal: Journal) -> None:
    totals = journal.totals()
    assert (totals.events, totals.payload_bytes, totals.streams) == (0, 0, 0)
    assert (totals.first_seq, totals.last_seq, totals.first_at, totals.last_at) == (None,) * 4
    assert journal.counts("type") == []
    assert journal.rate(60_000) == {}


# -- readers ----------------------------------------------------------------------------------


def test_a_reader_sees_each_committed_batch(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    rows = seed(journal)
    reader = journal_backend.open_reader(data_dir)
    try:
        assert list(reader.scan()) == rows
        journal.append(batch(row(8, "counter/c_b", 3), requests=(record("s4", 1, 8),)))
        assert reader.last_seq() == 8
        assert reader.lookup_request("s4", 1) == record("s4", 1, 8)
    finally:
        reader.close()


def test_a_reader_of_the_journal_works_from_another_thread(journal: Journal) -> None:
    rows = seed(journal)
    seen: list[Row] = []

    def read() -> None:
        reader = journal.reader()
        try:
            seen.extend(reader.scan(chunk=2))
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert seen == rows


def test_consistent_reads_hold_one_position(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    rows = seed(journal)
    reader = journal_backend.open_reader(data_dir)
    try:
        with reader.consistent():
            assert reader.last_seq() == 7
            journal.append(batch(row(8, "counter/c_b", 3), requests=(record("s4", 1, 8),)))
            assert reader.last_seq() == 7
            assert list(reader.scan()) == rows
            assert reader.lookup_request("s4", 1) is None
            assert reader.totals().events == 7
        assert reader.last_seq() == 8
        assert reader.lookup_request("s4", 1) == record("s4", 1, 8)
    finally:
        reader.close()


def test_a_reader_of_a_missing_journal_is_refused(journal_backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        journal_backend.open_reader(tmp_path / "nothing")


def test_a_journal_that_cannot_be_read_raises_journal_read_error(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    seed(journal)
    journal.close()
    journal_backend.make_unreadable(data_dir)
    with pytest.raises(JournalReadError):
        reader = journal_backend.open_reader(data_dir)
        try:
            list(reader.scan())
        finally:
            reader.close()


# -- erasure ----------------------------------------------------------------------------------


def test_rewrite_payloads_replaces_only_what_changes_before_the_position(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    secret = b"zq-secret-77"
    written = [
        row(1, "customer/c_1", 1, payload=b'{"name":"' + secret + b'"}'),
        row(2, "customer/c_1", 2, payload=b'{"visits":1}'),
        row(3, "customer/c_2", 1, payload=b'{"name":"other"}'),
        row(4, "customer/c_1", 3, payload=b'{"name":"' + secret + b'","again":1}'),
        row(5, "customer/c_1", 4, type="CustomerErased", payload=b'{"erased":true}'),
        row(6, "customer/c_1", 5, payload=b'{"name":"' + secret + b'","after":1}'),
    ]
    journal.append(batch(*written))
    seen: list[int] = []

    def redact(stored: Row) -> tuple[int, bytes]:
        seen.append(stored.seq)
        return stored.schema, stored.payload.replace(secret, b"")

    assert journal.rewrite_payloads("customer/c_1", 5, redact) == 2
    assert seen == [1, 2, 4]  # the stream's rows before seq 5, in order
    after = {r.seq: r for r in journal.scan()}
    assert after[1].payload == b'{"name":""}'
    assert after[4].payload == b'{"name":"","again":1}'
    for seq in (2, 3, 5, 6):
        assert after[seq] == written[seq - 1]
    for r in after.values():
        verify(r)  # new checksums
    assert [(r.seq, r.stream, r.version, r.type, r.at) for r in after.values()] == [
        (r.seq, r.stream, r.version, r.type, r.at) for r in written
    ]
    # No copy of a replaced payload is left in the backend's files; the row kept after the
    # position still holds the value.
    assert journal_backend.stored_bytes(data_dir).count(secret) == 1
    assert journal.rewrite_payloads("customer/c_1", 5, redact) == 0  # idempotent


def test_rewrite_payloads_writes_a_new_schema_with_its_payload(journal: Journal) -> None:
    journal.append(batch(row(1, "customer/c_1", 1, payload=b'{"name":"x"}')))
    assert journal.rewrite_payloads("customer/c_1", 2, lambda r: (2, b'{"name":""}')) == 1
    (after,) = journal.scan()
    assert (after.schema, after.payload) == (2, b'{"name":""}')
    verify(after)


def test_rewrite_payloads_refuses_a_damaged_row_and_changes_nothing(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    rows = seed(journal)
    journal_backend.damage_payload(data_dir, 5)
    before = list(journal.scan())
    with pytest.raises(DamagedRow):
        journal.rewrite_payloads("counter/c_a", 8, lambda r: (r.schema, b"{}"))
    assert list(journal.scan()) == before
    assert [r.payload for r in before if r.seq != 5] == [r.payload for r in rows if r.seq != 5]


def test_erasures_stay_unfinished_until_marked_done(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    seed(journal)
    journal.append(batch(row(8, "counter/c_b", 3, type="CounterErased")))
    assert journal.unfinished_erasures([]) == []
    assert journal.unfinished_erasures(["CounterErased"]) == [
        ("counter/c_a", 7),
        ("counter/c_b", 8),
    ]
    journal.mark_erasure_done("counter/c_a", 7, T0)
    journal.mark_erasure_done("counter/c_a", 7, T0 + 1)  # idempotent
    assert journal.unfinished_erasures(["CounterErased"]) == [("counter/c_b", 8)]
    assert journal.unfinished_erasures(["JobScheduled"]) == [("job/j_1", 4)]
    journal.close()
    again = journal_backend.open(data_dir)
    try:
        assert again.unfinished_erasures(["CounterErased"]) == [("counter/c_b", 8)]
        assert again.last_seq() == 8  # the bookkeeping is not rows
    finally:
        again.close()


# -- a damaged tail -----------------------------------------------------------------------------


def test_a_sound_tail_needs_no_repair(journal: Journal) -> None:
    rows = seed(journal)
    assert journal.repair_tail() is None
    assert list(journal.scan()) == rows


def test_a_damaged_tail_is_set_aside_with_the_records_naming_it(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    rows = seed(journal)
    journal_backend.damage_payload(data_dir, 5)
    repair = journal.repair_tail()
    assert repair is not None
    assert (repair.first_seq, repair.last_seq, repair.rows, repair.requests) == (5, 7, 3, 1)
    assert "5" in repair.reason
    assert journal.last_seq() == 4
    assert list(journal.scan()) == rows[:4]
    assert journal.lookup_request("s2", 1) is None  # it named seq 5
    assert journal.lookup_request("s1", 2) == record("s1", 2, 2)
    journal.append(batch(row(5, "counter/c_a", 3)))  # writing goes on from the good end
    assert journal.last_seq() == 5
    assert journal.repair_tail() is None


def test_a_damaged_tail_is_set_aside_with_the_takes_naming_it(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    rows = [row(seq, f"counter/c_{seq % 2}", (seq + 1) // 2) for seq in range(1, 8)]
    kept = [take(2, RL_A, 1), take(3, RL_B, 1)]
    journal.append(batch(*rows[:2], takes=(kept[0],)))
    journal.append(batch(*rows[2:5], takes=(kept[1], take(5, RL_A, 2))))
    journal.append(batch(takes=(take(5, RL_B, 2), take(5, RL_C, 1))))  # takes only, at seq 5
    journal.append(batch(*rows[5:], takes=(take(7, RL_A, 3),)))
    while journal.index_tail():  # (lookups that hold the takes about to be set aside)
        pass
    journal_backend.damage_payload(data_dir, 5)
    repair = journal.repair_tail()
    assert repair is not None
    assert (repair.first_seq, repair.rows, repair.requests, repair.takes) == (5, 3, 0, 4)
    assert list(journal.takes()) == kept
    assert [journal.read_take(limiter) for limiter in (RL_A, RL_B, RL_C)] == [*kept, None]
    assert sorted(journal.limiters()) == [RL_A, RL_B]
    journal.append(batch(row(5, "counter/c_1", 3), takes=(take(5, RL_C, 1),)))
    assert journal.read_take(RL_C) == take(5, RL_C, 1)
    assert list(journal.takes()) == [*kept, take(5, RL_C, 1)]


def test_a_damaged_row_outside_the_window_is_left_for_the_reader(
    journal_backend: Backend, journal: Journal, data_dir: Path
) -> None:
    seed(journal)
    journal_backend.damage_payload(data_dir, 2)
    assert journal.repair_tail(window=5) is None
    assert journal.last_seq() == 7
    with pytest.raises(DamagedRow):
        journal.read_stream("counter/c_b")
