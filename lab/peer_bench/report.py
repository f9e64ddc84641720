"""The peer benchmark's table, and its section ("## Peers") of docs/benchmarks.md (written with
`lab.figures.write_section`)."""

from __future__ import annotations

import statistics
from typing import Any

import attrs

from lab.figures import run_lines

HEADING = "## Peers"

#: Turnstile's durable commands/s over a contender's, per contender family.
AIMS = {"postgres": 2.0, "eventsourcing": 5.0}


@attrs.frozen(kw_only=True)
class Line:
    """One contender's rounds, summarized by the round with the median commands/s."""

    key: str  # "turnstile", "postgres", "eventsourcing"
    rounds: list[dict[str, Any]]

    @property
    def median(self) -> dict[str, Any]:
        ordered = sorted(self.rounds, key=lambda r: r["cmds_per_s"])
        return ordered[(len(ordered) - 1) // 2]

    @property
    def rate(self) -> float:
        return float(statistics.median(r["cmds_per_s"] for r in self.rounds))

    @property
    def problems(self) -> list[str]:
        return [p for r in self.rounds for p in r["problems"]]

    @property
    def complete(self) -> bool:
        return all(r["complete"] for r in self.rounds)


def render(lines: list[Line], skipped: dict[str, str]) -> tuple[str, list[str]]:
    """The table and its notes (one per contender: durability, concurrency, checks)."""
    ours = next((line for line in lines if line.key == "turnstile"), None)
    header = ("contender", "commands/s", "p50", "p99", "ratio", "aim", "verdict")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for line in lines:
        m = line.median
        rates = [r["cmds_per_s"] for r in line.rounds]
        spread = f" (rounds {min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else ""
        ratio = aim = verdict = ""
        if line.key != "turnstile" and ours is not None and line.rate > 0:
            value = ours.rate / line.rate
            ratio = f"{value:,.1f}x"
            target = AIMS[line.key]
            aim = f">= {target:g}x"
            verdict = "met" if value >= target else f"MISSED ({value / target:.0%} of aim)"
        if line.problems:
            verdict = "INVALID: checks failed"
        elif not line.complete:
            verdict += " (incomplete: deadline)"
        rows.append(
            (
                m["contender"],
                f"{line.rate:,.0f}",
                f"{m['p50_ms']:,.1f} ms",
                f"{m['p99_ms']:,.1f} ms",
                ratio,
                aim,
                verdict.strip(),
            )
        )
        checks = (
            "checks passed"
            if not line.problems
            else "CHECKS FAILED: " + "; ".join(line.problems[:5])
        )
        retries = f"; {m['retries']:,} retried transactions" if m["retries"] else ""
        per_round = ""
        if line.key != "turnstile" and ours is not None and len(ours.rounds) == len(rates) > 1:
            pairs = zip(ours.rounds, line.rounds, strict=True)
            per_round = "; ratio within each round " + ", ".join(
                f"{t['cmds_per_s'] / c['cmds_per_s']:,.1f}x" for t, c in pairs
            )
        notes.append(
            f"{m['contender']}: {m['durability']}; {m['concurrency']}; median of "
            f"{len(rates)} round(s){spread}{per_round}; {m['commands']:,} commands "
            f"({m['joins']:,} joins + {m['purchases']:,} purchases) in {m['seconds']:,.1f} s"
            f"{retries}; {checks}"
        )
    aims: list[str] = []
    for family, target in AIMS.items():
        candidates = [line for line in lines if line.key == family and not line.problems]
        if ours is None or not candidates:
            continue
        best = max(candidates, key=lambda line: line.rate)
        value = ours.rate / best.rate
        aims.append(
            f"aim >= {target:g}x {family}: {'met' if value >= target else 'MISSED'} "
            f"({value:,.1f}x against its best row: {best.median['contender']})"
        )
    notes = aims + notes
    for key, reason in skipped.items():
        rows.append((key, "skipped", "", "", "", "", reason))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for i, r in enumerate([header, tuple("-" * w for w in widths), *rows]):
        cells = [
            c.ljust(widths[j]) if j in (0, 5, 6) else c.rjust(widths[j]) for j, c in enumerate(r)
        ]
        out.append("  ".join(cells).rstrip())
        del i
    return "\n".join(out), notes


DOC_NOTES = """\
What the table measures: the `onsale` workload (`lab/peer_bench/workload.py`), the same for
every contender: one event with {tickets:,} tickets; {users:,} users each join its waiting list
once; a join is offered a seat at once while seats remain, else it waits; every user offered a
seat purchases it at once (a second command). Clients run closed loops (next user, join,
purchase if offered). Commands/s counts joins + purchases, each counted only once acknowledged,
and each contender acknowledges only what is committed and fsynced; time runs from the first
call to the last acknowledgement. p50/p99: call to acknowledgement of every command. Every
contender enforces the same rules in the same transaction as the command: the join rate limit
(3 per user per 30 minutes, a per-user record), one open entry or ticket per user, a purchase
only on the buyer's own live offer, idempotent per payment intent. After each round the
contender's final state is read back from its store and checked against what the clients were
told (`workload.check`): sold <= tickets and equal to its own counter, each user exactly one
entry whose status is what they were told (offered then purchased, or waiting), no user or entry
with two tickets, exactly min(tickets, users) offers. Contenders run one after another, each
round of each in its own subprocess (rounds interleave the contenders), on a fresh store in a
temporary directory, on the same machine; the ratio is Turnstile's median commands/s over the
contender's.

- Turnstile: the engine in-process through `Engine.mutation` (no WebSocket), as `lab.bench`
  runs it (`engine.tune_gc()`, default `EngineConfig` except `snapshot_every=0`); the final state
  is the event's state as a fresh engine recovers it from the journal.
- PostgreSQL: Debian's server started by the benchmark (`initdb` in a temporary directory,
  `postgres -h 127.0.0.1` on a free port, deleted afterwards); tables `events` (with its seat
  counters), `waiting_list`, `tickets`, `join_limits`; each command one READ COMMITTED
  transaction from psycopg 3 (a handful of statements) that locks the event row with
  `SELECT ... FOR UPDATE`, so commands on the hot event serialize on that lock and each holds it
  through its commit's WAL flush; the final state is read back from the server. The workload's
  64 connections mostly queue on that lock, so a row with 4 connections shows the same design
  under less contention; the aim's verdict is taken against the better of the two.
  `--pg-mode serializable` runs the same statements at SERIALIZABLE isolation without the lock,
  retrying serialization failures; it is not in this table.
- eventsourcing: the same aggregate logic on the library's SQLite module (see
  `lab/peer_bench/eventsourcing_side.py`): an `EventQueue` aggregate and a per-user
  `JoinLimiter` saved together in one transaction per command; one sequential client, the
  repository's aggregate cache on without deep copies (the library commits each save on its own,
  one writer at a time, so threads would add deep copies and version conflicts, not overlapping
  fsyncs; the module's docstring says more); the final state is replayed from the file by a
  fresh application without a cache.

The machine is shared with other work and noisy (see each contender's range over its rounds, and
the load average above): compare ratios within one run, not absolute figures across runs.
"""


def section(
    table: str,
    notes: list[str],
    info: dict[str, Any],
    versions: dict[str, str],
    command: str,
    sizes: Any,
    total_s: float,
    quick: bool,
) -> str:
    software = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines = [
        HEADING,
        "",
        "Generated by `python -m lab.peer_bench --write-doc` (`./dev peers --write-doc`);",
        "re-run it rather than editing this section.",
        "",
        *run_lines(info, command=command, seconds=total_s, quick=quick, software=software),
        f"- workload: {sizes.tickets:,} tickets, {sizes.users:,} users, {sizes.clients} "
        f"concurrent clients where the contender uses them",
        "",
        "```",
        table,
        "```",
        "",
        *[f"- {n}" for n in notes],
        "",
        DOC_NOTES.format(tickets=sizes.tickets, users=sizes.users),
    ]
    return "\n".join(lines)
