"""The run's report: one JSON-able dict (`--report FILE.json`) and its readable summary.

Shape (times in ms, rates per second):

    {"tool": "turnstile loadtest", "reportVersion": 1, "passed": bool, "runId", "url",
     "scenario", "scenarios": {name: what its users did}, "skipped": {name: why},
     "config": {...}, "startedAt", "loadSeconds", "settleSeconds",
     "connections": {"participants", "connected", "reconnects"},
     "throughput": {"mutations", "mutationsPerSecond", "updates", "updatesPerSecond",
                    "perSecond": [successful mutations in each second of the load]},
     "latency": {"mutationRoundTrip": H, "commitToUpdate": H + pairing counts,
                 "writeToUpdate": H, "byFunction": {name: H}},
     "errors": {code: n}, "errorsByFunction": {name: {code: n}}, "errorExamples": {code: text},
     "unfinished": {name: n},
     "checks": [{"name", "passed", "detail"}]}

where H = {"count", "unit": "ms", "min", "mean", "max",
           "percentiles": {"p50", "p90", "p99", "p99.9"}, "clamped", "hdr"} and "hdr" is the
histogram itself (HdrHistogram's compressed V2 encoding, base64).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tools.loadtest.runner import RunResult

REPORT_VERSION = 1


def build_report(result: RunResult) -> dict[str, Any]:
    recorder = result.recorder
    seconds = recorder.load_seconds
    mutations = recorder.load_mutations
    updates = recorder.load_updates
    last_second = max(recorder.timeline, default=-1)
    return {
        "tool": "turnstile loadtest",
        "reportVersion": REPORT_VERSION,
        "passed": result.passed,
        "runId": result.run_id,
        "url": result.config.url,
        "scenario": result.config.scenario,
        "scenarios": result.scenarios,
        "skipped": result.skipped,
        "config": result.config.to_json(),
        "startedAt": result.started_at_ms,
        "loadSeconds": round(seconds, 3),
        "settleSeconds": round(result.settle_seconds, 3),
        "connections": {
            "participants": result.participants,
            "connected": result.connected,
            "reconnects": recorder.reconnects,
        },
        "throughput": {
            "mutations": mutations,
            "mutationsPerSecond": round(mutations / seconds, 1) if seconds > 0 else 0.0,
            "updates": updates,
            "updatesPerSecond": round(updates / seconds, 1) if seconds > 0 else 0.0,
            "perSecond": [recorder.timeline[s] for s in range(last_second + 1)],
        },
        "latency": {
            "mutationRoundTrip": recorder.round_trip.summary(),
            "commitToUpdate": result.commit_to_update.summary(),
            "writeToUpdate": result.commit_to_update.from_send.summary(),
            "byFunction": {
                name: recorder.by_function[name].summary() for name in sorted(recorder.by_function)
            },
        },
        "errors": dict(sorted(recorder.errors.items())),
        "errorsByFunction": {
            name: dict(sorted(codes.items()))
            for name, codes in sorted(recorder.errors_by_function.items())
        },
        "errorExamples": dict(sorted(recorder.error_examples.items())),
        "unfinished": dict(sorted(recorder.unfinished.items())),
        "checks": [check.to_json() for check in result.checks],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")


def _figures(summary: dict[str, Any]) -> str:
    if not summary["count"]:
        return "no samples"
    parts = [f"{label} {value:.2f}" for label, value in summary["percentiles"].items()]
    return f"{', '.join(parts)}, max {summary['max']:.2f} ms (n={summary['count']:,})"


def summary_text(report: dict[str, Any]) -> str:
    """The report as a person reads it at the end of a run (stdout)."""
    throughput = report["throughput"]
    latency = report["latency"]
    lines = [
        f"turnstile loadtest: {report['scenario']} against {report['url']} (run {report['runId']})",
        f"  load {report['loadSeconds']:.1f} s, settle {report['settleSeconds']:.1f} s, "
        f"{report['connections']['connected']:,} of {report['connections']['participants']:,} "
        f"users connected, {report['connections']['reconnects']} reconnects",
    ]
    for name, why in report["skipped"].items():
        lines.append(f"  skipped {name}: {why}")
    for name, stats in report["scenarios"].items():
        shown = ", ".join(f"{k} {v}" for k, v in stats.items() if isinstance(v, int))
        lines.append(f"  {name}: {shown}")
    lines += [
        f"  throughput: {throughput['mutations']:,} mutations "
        f"({throughput['mutationsPerSecond']:,.1f}/s), {throughput['updates']:,} updates "
        f"received ({throughput['updatesPerSecond']:,.1f}/s)",
        f"  mutation round trip (ms): {_figures(latency['mutationRoundTrip'])}",
    ]
    for name, summary in latency["byFunction"].items():
        lines.append(f"    {name}: {_figures(summary)}")
    c2u = latency["commitToUpdate"]
    lines += [
        f"  commit-to-update (ms): {_figures(c2u)}",
        f"  write-to-update (ms): {_figures(latency['writeToUpdate'])}",
        f"    ({c2u['pairs']:,} pairs of {c2u['markers']:,} purchases x other subscribers; "
        f"{c2u['unmatched']} never seen, {c2u['beforeAck']} seen before the ack)",
    ]
    errors = report["errors"]
    lines.append(
        "  errors: "
        + (", ".join(f"{code} {n:,}" for code, n in errors.items()) if errors else "none")
    )
    if report["unfinished"]:
        cut = ", ".join(f"{name} {n}" for name, n in report["unfinished"].items())
        lines.append(f"  cut short by the deadline: {cut}")
    lines.append("  checks:")
    for check in report["checks"]:
        mark = "PASS" if check["passed"] else "FAIL"
        lines.append(f"    {mark}  {check['name']}: {check['detail']}")
    lines.append("PASSED" if report["passed"] else "FAILED: a correctness check failed")
    return "\n".join(lines)


__all__ = ["REPORT_VERSION", "build_report", "summary_text", "write_report"]
