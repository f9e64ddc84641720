"""The report as one self-contained HTML page (`--html FILE`): no scripts, no downloads.

It draws, in inline SVG, latency by percentile (HDR style: the x axis spreads the tail, so
p99.9 is as far from p99 as p99 is from p90) for the mutation round trip and commit-to-update,
and the successful mutations in each second of the load; then the figures, checks and errors.
Everything shown is read from the report dict, so a saved `--report` renders the same page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from tools.loadtest.histogram import LatencyHistogram

WIDTH, HEIGHT = 760, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 40, 36, 44
#: The x axis of the percentile chart ends at 99.999%.
TAIL_NINES = 5
SERIES = (
    ("mutationRoundTrip", "mutation round trip", "#1f6fb2"),
    ("commitToUpdate", "commit-to-update", "#d9731a"),
    ("writeToUpdate", "write-to-update", "#8a4fb0"),
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _nines(percentile: float) -> float:
    """Position on the percentile axis: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9..."""
    remaining = max(1.0 - percentile / 100.0, 10.0**-TAIL_NINES)
    return -math.log10(remaining)


def _frame(y_max: float, y_label: str) -> list[str]:
    """Axes, horizontal grid lines and y tick labels."""
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{plot_h}" '
        'fill="#fff" stroke="#999"/>',
        f'<text x="14" y="{TOP + plot_h / 2:.0f}" transform="rotate(-90 14 '
        f'{TOP + plot_h / 2:.0f})" text-anchor="middle" font-size="12">{_e(y_label)}</text>',
    ]
    for i in range(6):
        value = y_max * i / 5
        y = TOP + plot_h - plot_h * i / 5
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e4e4e4"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{value:g}</text>"
        )
    return parts


def latency_chart(latency: dict[str, Any]) -> str:
    """SVG: latency (ms) by percentile, one line per measured series."""
    curves: list[tuple[str, str, list[tuple[float, float]]]] = []
    for key, label, colour in SERIES:
        summary = latency.get(key)
        if summary and summary["count"]:
            curve = LatencyHistogram.decode(summary["hdr"]).curve()
            curves.append((label, colour, curve))
    y_max = _nice_ceiling(max((ms for _, _, c in curves for _, ms in c), default=0.0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    parts = _frame(y_max, "latency (ms)")
    for nines, label in enumerate(("0%", "90%", "99%", "99.9%", "99.99%", "99.999%")):
        x = LEFT + plot_w * nines / TAIL_NINES
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11">'
            f"{label}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        'font-size="12">percentile</text>'
    )
    for index, (label, colour, curve) in enumerate(curves):
        points = " ".join(
            f"{LEFT + plot_w * _nines(p) / TAIL_NINES:.1f},{TOP + plot_h - plot_h * ms / y_max:.1f}"
            for p, ms in curve
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
            f"<title>{_e(label)}</title></polyline>"
        )
        # The legend sits above the plot, one entry after another, clear of the curves.
        legend_x = LEFT + 190 * index
        parts.append(
            f'<line x1="{legend_x}" y1="14" x2="{legend_x + 24}" y2="14" '
            f'stroke="{colour}" stroke-width="3"/>'
            f'<text x="{legend_x + 30}" y="18" font-size="12">{_e(label)}</text>'
        )
    if not curves:
        parts.append(
            f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
            'text-anchor="middle" font-size="13">no latency samples</text>'
        )
    return _svg("Latency by percentile", parts)


def throughput_chart(per_second: Sequence[int]) -> str:
    """SVG: successful mutations in each second of the load, as bars."""
    y_max = _nice_ceiling(max(per_second, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    parts = _frame(y_max, "mutations per second")
    slots = max(len(per_second), 1)
    bar = plot_w / slots
    for second, count in enumerate(per_second):
        height = plot_h * count / y_max
        x = LEFT + bar * second
        parts.append(
            f'<rect x="{x + bar * 0.1:.1f}" y="{TOP + plot_h - height:.1f}" '
            f'width="{bar * 0.8:.1f}" height="{height:.1f}" fill="#4a9a5b">'
            f"<title>second {second + 1}: {count}</title></rect>"
        )
    label_every = max(1, math.ceil(slots / 20))
    for second in range(0, slots, label_every):
        parts.append(
            f'<text x="{LEFT + bar * (second + 0.5):.1f}" y="{TOP + plot_h + 16}" '
            f'text-anchor="middle" font-size="11">{second + 1}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        'font-size="12">second of the load</text>'
    )
    return _svg("Throughput", parts)


def _svg(title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(title)}" '
        'font-family="sans-serif">' + "".join(parts) + "</svg>"
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{header}</tr>{body}</table>'


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _latency_rows(latency: dict[str, Any]) -> list[list[Any]]:
    named = [(label, latency[key]) for key, label, _ in SERIES]
    named += [(name, summary) for name, summary in latency["byFunction"].items()]
    return [
        [
            label,
            f"{summary['count']:,}",
            *(_ms(v) for v in summary["percentiles"].values()),
            _ms(summary["max"]),
        ]
        for label, summary in named
    ]


def render_html(report: dict[str, Any]) -> str:
    latency = report["latency"]
    throughput = report["throughput"]
    verdict = "passed" if report["passed"] else "FAILED"
    checks = "".join(
        f'<tr class="{"pass" if c["passed"] else "fail"}"><td>'
        f"{'PASS' if c['passed'] else 'FAIL'}</td><td>{_e(c['name'])}</td>"
        f"<td>{_e(c['detail'])}</td></tr>"
        for c in report["checks"]
    )
    errors = _table(
        ["code", "count", "example"],
        [[code, n, report["errorExamples"].get(code, "")] for code, n in report["errors"].items()]
        or [["none", 0, ""]],
    )
    scenarios = "".join(
        f"<h3>{_e(name)}</h3>" + _table(["what", "count"], [[k, v] for k, v in stats.items()])
        for name, stats in report["scenarios"].items()
    )
    skipped = "".join(
        f"<p>Skipped {_e(name)}: {_e(why)}</p>" for name, why in report["skipped"].items()
    )
    c2u = latency["commitToUpdate"]
    percentile_heads = list(latency["mutationRoundTrip"]["percentiles"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>turnstile loadtest {_e(report["scenario"])} {_e(report["runId"])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 900px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
tr.pass td:first-child {{ color: #1d7a32; font-weight: bold; }}
tr.fail td {{ background: #fde8e8; }} tr.fail td:first-child {{ color: #b00; font-weight: bold; }}
.verdict {{ font-size: 1.3em; font-weight: bold; }}
</style></head><body>
<h1>turnstile loadtest: {_e(report["scenario"])}</h1>
<p class="verdict">Correctness checks {verdict}.</p>
<p>Run {_e(report["runId"])} against {_e(report["url"])}: {report["loadSeconds"]:.1f} s of load,
{report["connections"]["connected"]:,} of {report["connections"]["participants"]:,} users
connected, {throughput["mutations"]:,} mutations ({throughput["mutationsPerSecond"]:,.1f}/s),
{throughput["updates"]:,} live-query updates received ({throughput["updatesPerSecond"]:,.1f}/s).
</p>{skipped}
<h2>Latency</h2>
{latency_chart(latency)}
<p>Mutation round trip: from just before a simulated user sends a mutation until it resolves
(committed, and a Transition reaching its commit has been applied on that connection).
Commit-to-update: from the moment the buyer's connection reads a purchase's MutationResponse
until another subscriber's connection reads the first availability update computed at or past
that purchase's journal position; write-to-update: the same, from the moment the purchase was
sent. The commit lies between the two ({c2u["pairs"]:,} pairs from {c2u["markers"]:,}
purchases; {c2u["unmatched"]} never seen, {c2u["beforeAck"]} seen before the ack and counted
as 0).</p>
{_table(["ms", "count", *percentile_heads, "max"], _latency_rows(latency))}
<h2>Throughput</h2>
{throughput_chart(throughput["perSecond"])}
<h2>Checks</h2>
<table><tr><th></th><th>check</th><th>detail</th></tr>{checks}</table>
<h2>Errors by code</h2>
{errors}
<h2>Scenarios</h2>
{scenarios}
</body></html>
"""


__all__ = ["latency_chart", "render_html", "throughput_chart"]
