"""The peer benchmark's table, and its section ("## Peers") of docs/benchmarks.md (written with
`lab.figures.write_section`)."""

from __future__ import annotations

import statistics
from typing import Any

import attrs

from lab.figures import run_lines

HEADING = "## Peers"

#: Turnstile's durable commands/s over a contender family's best row (of the same workload).
AIMS = {"postgres": 5.0, "eventsourcing": 5.0}
FAMILY_NAMES = {"postgres": "PostgreSQL", "eventsourcing": "eventsourcing"}


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


def best_rows(lines: list[Line]) -> dict[str, Line]:
    """Each contender family's row with the highest median commands/s among those whose checks
    passed (its best configuration: the one each aim is judged against)."""
    best: dict[str, Line] = {}
    for line in lines:
        if line.key == "turnstile" or line.problems or line.rate <= 0:
            continue
        if line.key not in best or line.rate > best[line.key].rate:
            best[line.key] = line
    return best


def render(lines: list[Line], skipped: dict[str, str]) -> tuple[str, list[str]]:
    """One workload's table and its notes: first each aim's verdict (Turnstile over the family's
    best row), then one note per contender (durability, concurrency, rounds, checks)."""
    ours = next((line for line in lines if line.key == "turnstile"), None)
    best = best_rows(lines)
    header = ("contender", "commands/s", "p50", "p99", "ratio", "aim", "checks")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for line in lines:
        m = line.median
        rates = [r["cmds_per_s"] for r in line.rounds]
        spread = f" (rounds {min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else ""
        ratio = aim = ""
        if line.key != "turnstile" and ours is not None and line.rate > 0:
            value = ours.rate / line.rate
            ratio = f"{value:,.1f}x"
            if best.get(line.key) is line:
                target = AIMS[line.key]
                aim = f">= {target:g}x " + ("met" if value >= target else "MISSED")
        checks = "FAILED" if line.problems else "passed"
        if not line.complete:
            checks += " (incomplete: deadline)"
        rows.append(
            (
                m["contender"],
                f"{line.rate:,.0f}",
                f"{m['p50_ms']:,.1f} ms",
                f"{m['p99_ms']:,.1f} ms",
                ratio,
                aim,
                checks,
            )
        )
        outcome = (
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
            f"{retries}; {outcome}"
        )
    aims: list[str] = []
    for family, target in AIMS.items():
        if ours is None or family not in best:
            continue
        top = best[family]
        value = ours.rate / top.rate
        verdict = "met" if value >= target else f"MISSED ({value / target:.0%} of the aim)"
        aims.append(
            f"aim: Turnstile >= {target:g}x {FAMILY_NAMES[family]} at its best: {verdict}; "
            f"{ours.rate:,.0f} / {top.rate:,.0f} commands/s = {value:,.1f}x "
            f"(its best row: {top.median['contender']})"
        )
    notes = aims + notes
    for key, reason in skipped.items():
        rows.append((key, "skipped", "", "", "", "", reason))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, tuple("-" * w for w in widths), *rows]:
        cells = [
            c.ljust(widths[j]) if j in (0, 5, 6) else c.rjust(widths[j]) for j, c in enumerate(r)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out), notes


@attrs.frozen(kw_only=True)
class Table:
    """One workload's part of the report."""

    workload: str
    sizes: Any  # workload.Sizes
    table: str
    notes: list[str]


def workload_line(workload: str, sizes: Any) -> str:
    if workload == "onsale":
        return (
            f"`onsale`: one event with {sizes.tickets:,} tickets, {sizes.users:,} users, "
            f"{sizes.clients} concurrent clients where the contender uses them"
        )
    return (
        f"`spread`: {sizes.events:,} events of {sizes.tickets:,} tickets each, "
        f"{sizes.users:,} users each joining one of them at random ({sizes.offers:,} offered a "
        f"seat), {sizes.clients} concurrent clients where the contender uses them"
    )


DOC_NOTES = """\
What the tables measure: two workloads (`lab/peer_bench/workload.py`), each the same for every
contender. `onsale`: one event on sale; every user joins its waiting list once; a join is
offered a seat at once while seats remain, else it waits; every user offered a seat purchases it
at once (a second command). All commands are on the one hot event. `spread`: many small events
(see the sizes above); each user joins one of them, picked at random (the same picks for every
contender), then purchases if offered: the commands are spread over the events, so a contender
that runs one event's commands one at a time can still run many events' commands at once.
Clients run closed loops (next user, join, purchase if offered). Commands/s counts joins +
purchases, each counted only once acknowledged, and each contender acknowledges only what is
committed and fsynced; time runs from the first call to the last acknowledgement. p50/p99: call
to acknowledgement of every command. Every contender enforces the same rules in the same
transaction as the command: the join rate limit (3 per user per 30 minutes, a per-user record),
one open entry or ticket per user per event, a purchase only on the buyer's own live offer,
idempotent per payment intent. After each round the contender's final state is read back from
its store and checked, event by event, against what the clients were told (`workload.check`):
sold <= tickets and equal to its own counter, each user exactly one entry whose status is what
they were told (offered then purchased, or waiting), no user or entry with two tickets, exactly
min(tickets, users who joined it) offers. Contenders run one after another, each round of each
in its own subprocess (rounds interleave the contenders and the workloads), on a fresh store in
a temporary directory, on the same machine; a ratio is Turnstile's median commands/s over the
row's (the median of two rounds is their mean), and each aim is judged against the family's
best row of that workload. A full run has two rounds, to keep it near five minutes on this
2-core machine (about 100 s a round when the machine is quiet, twice that when it is busy, most
of it PostgreSQL's rows); a round stops taking users at its deadline (the row is then marked
incomplete), and no round starts once the run has taken `--budget` seconds.

- Turnstile: the engine in-process through `Engine.mutation` (no WebSocket), as `lab.bench`
  runs it (`engine.tune_gc()`, default `EngineConfig` except `snapshot_every=0`), with 64 trio
  tasks as clients; the final state is each event's state as a fresh engine recovers it from
  the journal.
- PostgreSQL: Debian's server started by the benchmark (`initdb` in a temporary directory,
  `postgres -h 127.0.0.1` on a free port, `fsync=on`, `synchronous_commit=on`, deleted
  afterwards); tables `events` (with its seat counters), `waiting_list`, `tickets`,
  `join_limits`; clients are psycopg 3 `AsyncConnection`s on one asyncio loop, a row per
  connection count (by default `FOR UPDATE` at 8, `plpgsql` at 8, 16 and 64; `--pg-clients`
  sets others). Two designs, each row named by its own:
  `FOR UPDATE` runs each command as a client-side READ COMMITTED transaction of a handful of
  statements (a round trip each) that locks the event row with `SELECT ... FOR UPDATE`;
  `plpgsql` runs each command as ONE call of a plpgsql function (`join_waiting_list`,
  `purchase`) on an autocommit connection, doing the same statements, checks and lock in the
  server, so a command costs one round trip and holds the event row's lock only inside the call
  and through its commit. In both, commands on one event serialize on that row's lock, held
  through the commit's WAL flush: on `onsale` the connections mostly queue on it (so fewer
  connections can do better), on `spread` they rarely meet and PostgreSQL's commits of
  concurrent connections share WAL flushes. The final state is read back from the server.
  `--pg-modes serializable` adds the client-side statements at SERIALIZABLE isolation without
  the lock, retrying serialization failures; it is not in these tables.
- eventsourcing (on `onsale` only: its one sequential client would run `spread`'s commands one
  at a time too, so the second workload would tell nothing new about it): the same aggregate
  logic on the library's SQLite module (see `lab/peer_bench/eventsourcing_side.py`): an
  `EventQueue` aggregate and a per-user `JoinLimiter` saved together in one transaction per
  command; one sequential client, the repository's aggregate cache on without deep copies (the
  library commits each save on its own, one writer at a time, so threads would add deep copies
  and version conflicts, not overlapping fsyncs; the module's docstring says more); the final
  state is replayed from the file by a fresh application without a cache.

The machine is shared with other work and noisy (see each contender's range over its rounds, and
the load average above): compare ratios within one run, not absolute figures across runs.
"""


def section(
    tables: list[Table],
    info: dict[str, Any],
    versions: dict[str, str],
    command: str,
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
    ]
    for part in tables:
        lines += [
            "",
            f"### Workload `{part.workload}`",
            "",
            f"- {workload_line(part.workload, part.sizes)}",
            "",
            "```",
            part.table,
            "```",
            "",
            *[f"- {n}" for n in part.notes],
        ]
    lines += ["", DOC_NOTES]
    return "\n".join(lines)
