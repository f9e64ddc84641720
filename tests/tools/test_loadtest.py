"""`turnstile loadtest` as an operator runs it: a real server (`turnstile serve` on 127.0.0.1,
a free port, a temporary data dir) and the harness as subprocesses, about 3 s of load each,
all started together against that one server.

The report's own checks are read, and the server's state is also read back independently over
the HTTP API, so a harness that claimed a sale it did not make would fail here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from engine.server.auth import mint_token
from tests.server.test_cli import REPO, request, serving, turnstile

ADMIN_KEY = "loadtest-admin-key"
SECRET = "loadtest-secret-that-is-at-least-32-bytes-long"
#: Bounds a harness run (its own bounds are far tighter; this only keeps a hung run from
#: hanging the suite).
RUN_TIMEOUT = 90


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    data = tmp_path_factory.mktemp("loadtest") / "data"
    args = ("--data-dir", str(data), "--admin-key", ADMIN_KEY, "--jwt-secret", SECRET)
    with serving(*args, "--log-level", "WARNING") as (process, port, _):
        yield port
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@attrs.frozen
class Run:
    returncode: int
    stdout: str
    stderr: str
    report: Any
    out: Path


#: The harness runs of this module, started all at once against the one server (about 3 s of
#: load each, so the module takes as long as the longest, not the sum).
RUNS: dict[str, tuple[str, ...]] = {
    "onsale": (
        "--scenario", "onsale", "--duration", "3",
        "--users", "30", "--tickets", "12", "--buy-fraction", "1",
    ),
    "fanout": (
        "--scenario", "fanout", "--duration", "3",
        "--subscribers", "40", "--writers", "2", "--writes", "0",
    ),
    "mixed": (
        "--scenario", "mixed", "--duration", "3", "--users", "20", "--tickets", "8",
        "--subscribers", "20", "--writers", "2", "--staff", "4", "--bookings", "30",
    ),
    "booking": ("--scenario", "booking", "--duration", "3", "--staff", "4", "--bookings", "30"),
}  # fmt: skip


def harness(port: int, out: Path, *args: str) -> list[str]:
    return turnstile(
        "loadtest",
        "--url",
        f"http://127.0.0.1:{port}",
        "--admin-key",
        ADMIN_KEY,
        "--jwt-secret",
        SECRET,
        "--report",
        str(out / "report.json"),
        "--html",
        str(out / "report.html"),
        "--think-ms",
        "5",
        *args,
    )


@pytest.fixture(scope="module")
def runs(server: int, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every run of `RUNS` (booking only where the server has its functions), concurrently."""
    wanted = {name: args for name, args in RUNS.items() if name != "booking" or _has_orders()}
    outs = {name: tmp_path_factory.mktemp(f"loadtest-{name}") for name in wanted}
    processes = {
        name: subprocess.Popen(
            harness(server, outs[name], *args),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in wanted.items()
    }
    done: dict[str, Run] = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
            path = outs[name] / "report.json"
            report = json.loads(path.read_text()) if path.exists() else None
            done[name] = Run(process.returncode, stdout, stderr, report, outs[name])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return done


def query(port: int, name: str, args: dict[str, Any], auth: str = "") -> Any:
    status, body = request(
        port, "POST", "/api/query", {"path": name, "args": args, "format": "json"}, auth
    )
    assert (status, body["status"]) == (200, "success"), body
    return body["value"]


def assert_sound(report: dict[str, Any], scenarios: set[str]) -> None:
    """Every check passed, every scenario has its three kinds of check, and the figures are
    present and ordered."""
    assert report["passed"] is True
    assert [c for c in report["checks"] if not c["passed"]] == []
    names = [c["name"] for c in report["checks"]]
    for scenario in scenarios & {"onsale", "fanout"}:
        assert f"{scenario} availability: every subscriber converged" in names
        assert f"{scenario}: never oversold" in names
        assert f"{scenario}: purchases: every acknowledged one present" in names
    assert set(report["scenarios"]) == scenarios
    assert report["connections"]["connected"] == report["connections"]["participants"] > 0
    throughput = report["throughput"]
    assert throughput["mutations"] > 0
    assert throughput["mutations"] == sum(throughput["perSecond"])
    assert throughput["mutationsPerSecond"] > 0
    assert throughput["updates"] > 0
    for key in ("mutationRoundTrip", "commitToUpdate", "writeToUpdate"):
        figures = report["latency"][key]
        assert figures["count"] > 0, key
        values = [figures["percentiles"][p] for p in ("p50", "p90", "p99", "p99.9")]
        assert figures["min"] <= values[0] <= values[1] <= values[2] <= values[3], key
        assert values[3] <= figures["max"], key
    assert report["latency"]["commitToUpdate"]["unmatched"] == 0
    assert report["latency"]["mutationRoundTrip"]["count"] == throughput["mutations"]


def assert_html(out: Path) -> None:
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2
    assert "<polyline" in page  # the latency curves
    assert "<script" not in page and 'src="' not in page and "<link" not in page


def passed(run: Run) -> dict[str, Any]:
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("PASSED")
    assert run.report is not None
    assert_html(run.out)
    report: dict[str, Any] = run.report
    return report


def test_onsale_never_oversells_and_every_purchase_is_there(
    server: int, runs: dict[str, Run]
) -> None:
    report = passed(runs["onsale"])
    assert_sound(report, {"onsale"})
    stats = report["scenarios"]["onsale"]
    users, tickets = 30, 12
    # Everyone offered buys, so the rush sells out and the rest give up waiting.
    assert stats["joined"] == users
    assert stats["bought"] == tickets
    assert stats["gaveUp"] == users - tickets
    assert report["loadSeconds"] < 3.0  # the sale settled before the deadline
    assert report["latency"]["byFunction"]["events:purchaseTicket"]["count"] == tickets
    availability = query(server, "events:getEventAvailability", {"eventId": stats["eventId"]})
    assert availability["purchasedCount"] == tickets
    assert availability["activeOffers"] == 0
    sold = query(
        server, "tickets:listForEvent", {"eventId": stats["eventId"]}, f"Convex {ADMIN_KEY}"
    )
    assert len(sold) == tickets
    assert len({t["userId"] for t in sold}) == tickets


def test_fanout_runs_for_its_duration_and_every_subscriber_converges(
    server: int, runs: dict[str, Run]
) -> None:
    report = passed(runs["fanout"])
    assert_sound(report, {"fanout"})
    # No count bounds the writers: the duration does (plus what was in flight at its end).
    assert 3.0 <= report["loadSeconds"] < 3.0 + 6.0
    stats = report["scenarios"]["fanout"]
    c2u = report["latency"]["commitToUpdate"]
    assert c2u["markers"] == stats["bought"] > 0
    # Every purchase is measured at each of the 40 subscribers (the writers watch nothing).
    assert c2u["pairs"] == 40 * stats["bought"]
    availability = query(server, "events:getEventAvailability", {"eventId": stats["eventId"]})
    assert availability["purchasedCount"] == stats["bought"]


def test_mixed_runs_every_scenario_at_once(runs: dict[str, Run]) -> None:
    report = passed(runs["mixed"])
    expected = {"onsale", "fanout"} | ({"booking"} if _has_orders() else set())
    assert set(report["skipped"]) == {"booking"} - expected
    assert_sound(report, expected)
    if "booking" in expected:
        names = [c["name"] for c in report["checks"]]
        assert "booking: never double-booked" in names
        assert "booking orders by location: every subscriber converged" in names


def _has_orders() -> bool:
    return any('"orders:create"' in p.read_text() for p in (REPO / "domain").rglob("*.py"))


@pytest.mark.skipif(
    not _has_orders(), reason="the Venue CRM functions (orders:create) are not built yet"
)
def test_booking_never_double_books(server: int, runs: dict[str, Run]) -> None:
    report = passed(runs["booking"])
    stats = report["scenarios"]["booking"]
    # Slots are drawn from a pool half the size of the attempts: some must collide.
    assert stats["booked"] + stats.get("slotTaken", 0) == 30
    assert stats.get("slotTaken", 0) > 0
    assert report["errors"].get("Conflict", 0) == stats["slotTaken"]
    staff = mint_token(SECRET, "checker", "org_loadtest", ["orders:manage"])
    orders = query(
        server, "orders:listByLocation", {"locationId": stats["locationId"]}, f"Bearer {staff}"
    )
    assert len(orders) == stats["booked"]
    held = [(tuple(o["resources"]), o["scheduledAt"]) for o in orders]
    assert len(set(held)) == len(held)


def test_a_refused_admin_key_stops_the_run_before_it_starts(server: int, tmp_path: Path) -> None:
    done = subprocess.run(
        turnstile(
            "loadtest", "--url", f"http://127.0.0.1:{server}", "--admin-key", "wrong",
            "--jwt-secret", SECRET, "--report", str(tmp_path / "r.json"),
        ),
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refused the admin key" in done.stderr
    assert not (tmp_path / "r.json").exists()


def test_an_unreachable_server_is_reported_within_the_connect_timeout(tmp_path: Path) -> None:
    done = subprocess.run(
        turnstile(
            "loadtest", "--url", "http://127.0.0.1:1", "--admin-key", "k",
            "--jwt-secret", SECRET, "--connect-timeout", "0.5",
        ),
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "could not connect to http://127.0.0.1:1 within 0.5 s" in done.stderr


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.7:3210", "http://example.com:3210", "https://127.0.0.1:3210", "ftp://::1"],
)
def test_only_loopback_urls_are_accepted(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["loadtest", "--url", url, "--admin-key", "k", "--jwt-secret", SECRET])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "loadtest:" in err
    assert "loopback" in err or "http:// URL" in err


def test_the_command_line_lists_loadtest() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "loadtest", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0
    for option in ("--scenario", "--duration", "--report", "--html", "--users", "--tickets"):
        assert option in done.stdout
