"""`--export --follow` tails a journal that a running engine keeps writing, and stops cleanly
on SIGTERM; `--verify` checks a data dir while its engine runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import trio

from engine.testing import open_harness, user
from tests.tools.scenario import ORGANIZER, Reference
from tools.replay import ExportSummary, export_events, verify

REPO = Path(__file__).resolve().parent.parent.parent


class LineSink:
    """Collects exported lines; each flush tells the test (on its event loop) how many."""

    def __init__(self, token: trio.lowlevel.TrioToken, send: Any) -> None:
        self.lines: list[dict[str, Any]] = []
        self._pending = b""
        self._token = token
        self._send = send

    def write(self, data: bytes) -> None:
        self._pending += data

    def flush(self) -> None:
        *complete, self._pending = self._pending.split(b"\n")
        self.lines.extend(json.loads(line) for line in complete)
        trio.from_thread.run_sync(self._send.send_nowait, len(self.lines), trio_token=self._token)


async def test_follow_picks_up_rows_a_running_engine_appends(tmp_path: Path) -> None:
    data_dir = tmp_path / "live"
    send, receive = trio.open_memory_channel[int](100)
    sink = LineSink(trio.lowlevel.current_trio_token(), send)
    stop = threading.Event()
    following = trio.Event()
    token = trio.lowlevel.current_trio_token()
    summary: list[ExportSummary] = []

    def follow() -> None:
        summary.append(
            export_events(
                data_dir,
                sink,
                follow=True,
                stop=stop,
                on_follow=lambda seq: trio.from_thread.run_sync(following.set, trio_token=token),
            )
        )

    async def seen(count: int) -> None:
        with trio.fail_after(10):
            while len(sink.lines) < count:
                await receive.receive()

    async with open_harness(data_dir) as t, trio.open_nursery() as nursery:
        event_id = await t.mutation(
            "events:create",
            {
                "name": "Live",
                "description": "Followed",
                "location": "Hall",
                "eventDate": t.now_ms() + 86_400_000,
                "price": 100,
                "totalTickets": 1,
            },
            ORGANIZER,
        )
        nursery.start_soon(trio.to_thread.run_sync, follow)
        await following.wait()
        await seen(1)
        for who in ("ann", "bob"):
            await t.mutation(
                "events:joinWaitingList", {"eventId": event_id, "userId": who}, user(who)
            )
        await seen(t.engine.committed_seq)
        stop.set()
        # --verify reads a live data dir too: one consistent cut, the snapshot within it.
        assert await t.engine.snapshot_now() is not None
        report = verify(data_dir)
        assert report.ok and report.last_seq == t.engine.committed_seq
        assert [s.status for s in report.snapshots] == ["matches"]
    assert [line["seq"] for line in sink.lines] == list(range(1, t.engine.committed_seq + 1))
    assert [line["type"] for line in sink.lines][-2:] == ["OfferMade", "WaitingListJoined"]
    assert sink.lines[-1]["payload"]["userId"] == "bob"
    [done] = summary
    assert (done.ended_by, done.exported, done.last_seq) == (
        "stop",
        len(sink.lines),
        len(sink.lines),
    )


def test_sigterm_stops_a_follow_cleanly(reference: Reference, tmp_path: Path) -> None:
    out = tmp_path / "followed.jsonl"
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "replay",
            str(reference.data_dir),
            "--export",
            str(out),
            "--follow",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as process:
        watchdog = threading.Timer(30, process.kill)
        watchdog.start()
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            assert line.startswith(f"following the journal from seq {reference.end_seq}"), line
            process.send_signal(signal.SIGTERM)
            stdout, _ = process.communicate(timeout=30)
        finally:
            watchdog.cancel()
    assert process.returncode == 0
    assert f"exported   {reference.end_seq} events to {out}, following until stopped" in stdout
    assert len(out.read_bytes().splitlines()) == reference.end_seq
