"""The load test's parts that need no server: histograms, the commit-to-update pairing, the
correctness checks (each shown failing), the loopback rule, and the JSON/HTML reports."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tools.loadtest.checks import (
    Check,
    acknowledged_present,
    converged,
    never_oversold,
    oversold_in,
)
from tools.loadtest.config import ConfigError, LoadConfig, check_loopback
from tools.loadtest.histogram import LatencyHistogram
from tools.loadtest.html import render_html
from tools.loadtest.latency import commit_to_update
from tools.loadtest.recorder import Marker, Recorder, Watch
from tools.loadtest.report import build_report, summary_text
from tools.loadtest.runner import RunResult

SECRET = "s" * 32


def availability(total: int, sold: int, offered: int) -> dict[str, Any]:
    return {
        "isSoldOut": sold + offered >= total,
        "totalTickets": total,
        "purchasedCount": sold,
        "activeOffers": offered,
        "remainingTickets": max(0, total - sold - offered),
    }


def tickets(*users: str, status: str = "valid") -> list[dict[str, Any]]:
    return [{"_id": f"tk_{i}", "userId": u, "status": status} for i, u in enumerate(users)]


# -- histograms ------------------------------------------------------------------------------


def test_percentiles_are_within_a_thousandth_of_the_exact_ones() -> None:
    histogram = LatencyHistogram()
    values = [i / 10_000 for i in range(1, 10_001)]  # 0.1 ms .. 1 s, evenly
    for seconds in values:
        histogram.record(seconds)
    summary = histogram.summary()
    assert summary["count"] == 10_000
    for label, exact_ms in (("p50", 500.0), ("p90", 900.0), ("p99", 990.0), ("p99.9", 999.0)):
        assert math.isclose(summary["percentiles"][label], exact_ms, rel_tol=1e-3), label
    assert math.isclose(summary["max"], 1000.0, rel_tol=1e-3)
    assert math.isclose(summary["min"], 0.1, rel_tol=1e-3)
    again = LatencyHistogram.decode(summary["hdr"])
    assert again.summary()["percentiles"] == summary["percentiles"]


def test_an_empty_histogram_reports_nulls_and_draws_nothing() -> None:
    summary = LatencyHistogram().summary()
    assert summary["count"] == 0
    assert summary["min"] is None and summary["max"] is None
    assert set(summary["percentiles"].values()) == {None}
    assert LatencyHistogram().curve() == []


def test_values_beyond_an_hour_are_clamped_and_counted() -> None:
    histogram = LatencyHistogram()
    histogram.record(7200.0)
    histogram.record(-0.5)  # a clock oddity is kept as the smallest value, not lost
    assert histogram.count == 2
    assert histogram.clamped == 1
    assert math.isclose(histogram.percentile_ms(100.0) or 0, 3_600_000.0, rel_tol=1e-3)


# -- commit-to-update ------------------------------------------------------------------------


def watch(topic: str, connection: int, seen: list[tuple[float, int]]) -> Watch:
    result = Watch(topic=topic, connection=connection)
    for arrived, ts in seen:
        result.observe(arrived, ts, {"ts": ts})
    return result


def test_each_write_is_matched_to_the_first_update_at_or_past_its_commit() -> None:
    subscriber = watch("a", 2, [(10.0, 3), (10.5, 7), (11.0, 9)])
    writer_own = watch("a", 1, [(10.2, 7)])
    elsewhere = watch("b", 3, [(10.1, 7)])
    markers = [
        Marker(topic="a", connection=1, sent_at=9.9, acked_at=10.25, ts=7),
        Marker(topic="a", connection=1, sent_at=10.6, acked_at=10.75, ts=8),
    ]
    result = commit_to_update(markers, [subscriber, writer_own, elsewhere])
    # Only the other subscriber of topic "a" counts: ts 7 -> seen at 10.5, ts 8 -> at 11.0.
    assert (result.markers, result.pairs, result.unmatched, result.before_ack) == (2, 2, 0, 0)
    assert result.histogram.percentile_ms(0) == pytest.approx(250.0, rel=1e-3)
    assert result.histogram.percentile_ms(100) == pytest.approx(250.0, rel=1e-3)
    assert result.from_send.percentile_ms(0) == pytest.approx(400.0, rel=1e-3)
    assert result.from_send.percentile_ms(100) == pytest.approx(600.0, rel=1e-3)


def test_updates_before_the_ack_count_as_zero_and_unseen_writes_as_unmatched() -> None:
    early = watch("a", 2, [(10.0, 5)])
    markers = [
        Marker(topic="a", connection=1, sent_at=9.0, acked_at=10.1, ts=5),
        Marker(topic="a", connection=1, sent_at=9.5, acked_at=10.2, ts=6),
    ]
    result = commit_to_update(markers, [early])
    assert (result.pairs, result.unmatched, result.before_ack) == (2, 1, 1)
    assert result.histogram.count == 1
    assert result.histogram.percentile_ms(100) == pytest.approx(0.001)
    assert result.from_send.percentile_ms(100) == pytest.approx(1000.0, rel=1e-3)


def test_pairs_are_bounded_by_sampling_watchers_evenly(monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.loadtest.latency as latency

    monkeypatch.setattr(latency, "MAX_PAIRS", 10)
    watchers = [watch("a", 100 + i, [(1.0, 1)]) for i in range(8)]
    markers = [Marker(topic="a", connection=1, sent_at=0.0, acked_at=0.5, ts=1)] * 3
    result = commit_to_update(markers, watchers)
    assert result.watchers == 8
    # 3 markers x 8 watchers = 24 pairs > 10: every 3rd watcher (0, 3, 6) is measured.
    assert result.watchers_sampled == 3
    assert result.pairs == 9 <= latency.MAX_PAIRS


# -- checks ----------------------------------------------------------------------------------


def test_never_oversold_passes_on_a_sound_sale() -> None:
    check = never_oversold("sale", availability(3, 2, 1), tickets("ann", "bob"), [])
    assert check.passed, check.detail
    assert check.detail == "2 sold + 1 offered of 3; 2 tickets listed"


@pytest.mark.parametrize(
    ("final", "listed", "observed", "why"),
    [
        (availability(2, 3, 0), tickets("a", "b", "c"), [], "purchasedCount 3 > totalTickets 2"),
        (availability(2, 1, 2), tickets("a"), [], "purchasedCount + activeOffers 3"),
        (availability(2, 1, 0), tickets("a", "b"), [], "2 valid or used tickets listed"),
        (availability(5, 2, 0), tickets("a", "a"), [], "users holding two tickets: a"),
        (availability(5, 0, 0), [], ["purchasedCount 6 > totalTickets 5"], "1 observed values"),
    ],
)
def test_never_oversold_fails_on_each_kind_of_oversale(
    final: dict[str, Any], listed: list[dict[str, Any]], observed: list[str], why: str
) -> None:
    check = never_oversold("sale", final, listed, observed)
    assert not check.passed
    assert why in check.detail


def test_refunded_tickets_do_not_count_as_sold() -> None:
    listed = tickets("a") + tickets("b", status="refunded")
    assert never_oversold("sale", availability(1, 1, 0), listed, []).passed
    assert oversold_in(availability(1, 1, 0)) is None


def test_an_acknowledged_record_missing_or_changed_fails() -> None:
    def same_owner(_rid: str, owner: str, record: Any) -> bool:
        return bool(record["userId"] == owner)

    acknowledged = {"tk_1": "ann", "tk_2": "bob", "tk_3": "cy"}
    found = {"tk_1": {"userId": "ann"}, "tk_2": {"userId": "eve"}, "tk_3": None}
    check = acknowledged_present("sale: purchases", acknowledged, found, same_owner)
    assert not check.passed
    assert check.detail == "1 missing: tk_3; 1 not as acknowledged: tk_2"
    found = {"tk_1": {"userId": "ann"}, "tk_2": {"userId": "bob"}, "tk_3": {"userId": "cy"}}
    assert acknowledged_present("sale: purchases", acknowledged, found, same_owner).passed


def test_a_subscriber_left_behind_fails_convergence() -> None:
    ahead = watch("a", 1, [(1.0, 9)])
    behind = watch("a", 2, [(1.0, 4)])
    assert converged("x", {"ts": 9}, [ahead]).passed
    check = converged("x", {"ts": 9}, [ahead, behind])
    assert not check.passed
    assert check.detail.startswith("1 of 2 differ from {'ts': 9}: connection 2 at {'ts': 4}")


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:3210", "http://localhost:80", "http://[::1]:3210", "ws://127.0.0.1"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    check_loopback(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://192.168.1.10:3210",
        "http://10.0.0.1",
        "http://127.0.0.2:3210",
        "http://localhost.example.com",
        "https://127.0.0.1:3210",
        "127.0.0.1:3210",
        "http://127.0.0.1:notaport",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        check_loopback(url)


def test_a_config_without_the_server_secrets_is_refused() -> None:
    with pytest.raises(ConfigError, match="admin key"):
        LoadConfig(url="http://127.0.0.1:1", admin_key="", jwt_secret=SECRET).validate()
    with pytest.raises(ConfigError, match="JWT secret"):
        LoadConfig(url="http://127.0.0.1:1", admin_key="k", jwt_secret="short").validate()
    with pytest.raises(ConfigError, match="buy-fraction"):
        LoadConfig(
            url="http://127.0.0.1:1", admin_key="k", jwt_secret=SECRET, buy_fraction=1.5
        ).validate()


def test_the_report_never_holds_the_secrets() -> None:
    config = LoadConfig(url="http://127.0.0.1:1", admin_key="the-key", jwt_secret=SECRET)
    settings = config.to_json()
    assert "the-key" not in str(settings) and SECRET not in str(settings)
    assert settings["buyFraction"] == 0.8


# -- reports ---------------------------------------------------------------------------------


def result_with(checks: list[Check]) -> RunResult:
    recorder = Recorder()
    recorder.start_load()
    assert recorder.load_started is not None
    start = recorder.load_started
    for i in range(20):
        recorder.mutation_succeeded("events:joinWaitingList", start, start + 0.001 * (i + 1))
    recorder.failed("events:purchaseTicket", "Conflict", "The ticket offer has expired.")
    recorder.updated(40)
    recorder.end_load()
    config = LoadConfig(url="http://127.0.0.1:1", admin_key="k", jwt_secret=SECRET)
    return RunResult(
        config=config,
        run_id="cafe0001",
        started_at_ms=0,
        recorder=recorder,
        commit_to_update=commit_to_update([], []),
        checks=checks,
        scenarios={"onsale": {"eventId": "ev_x", "bought": 3}},
        skipped={"booking": "the server has no Venue CRM functions"},
        participants=5,
        connected=5,
        settle_seconds=0.1,
    )


def test_a_failed_check_fails_the_report_and_shows_in_both_forms() -> None:
    checks = [
        Check(name="sale: never oversold", passed=True, detail="fine"),
        Check(name="sale: every subscriber converged", passed=False, detail="<b>2 behind</b>"),
    ]
    report = build_report(result_with(checks))
    assert report["passed"] is False
    assert report["errors"] == {"Conflict": 1}
    assert report["errorsByFunction"] == {"events:purchaseTicket": {"Conflict": 1}}
    assert report["throughput"]["mutations"] == 20
    assert report["latency"]["mutationRoundTrip"]["count"] == 20
    assert report["latency"]["commitToUpdate"]["count"] == 0
    text = summary_text(report)
    assert "FAIL  sale: every subscriber converged: <b>2 behind</b>" in text
    assert text.endswith("FAILED: a correctness check failed")
    page = render_html(report)
    assert "Correctness checks FAILED." in page
    assert "&lt;b&gt;2 behind&lt;/b&gt;" in page and "<b>2 behind" not in page
    assert page.count("<polyline") == 1  # only the round trip has samples
    assert "Skipped booking" in page


def test_a_clean_run_passes() -> None:
    report = build_report(result_with([Check(name="x", passed=True, detail="ok")]))
    assert report["passed"] is True
    assert summary_text(report).endswith("PASSED")
    assert "Correctness checks passed." in render_html(report)
