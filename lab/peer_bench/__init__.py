"""Benchmarks of Turnstile against what a user would pick instead: `python -m lab.peer_bench`
(`./dev peers`; `--quick` for a smoke run, `--write-doc` for the "Peers" section of
docs/benchmarks.md).

Two workloads (`workload`) run on each contender in the same run: `onsale` (one hot event) and
`spread` (many small events), each round in its own subprocess on a fresh store: Turnstile's
engine in-process (`turnstile_side`), the same rules on a PostgreSQL server the benchmark starts
on loopback (`postgres_side`: as client-side `SELECT ... FOR UPDATE` transactions, and as one
plpgsql function call per command), and the same aggregate logic on the `eventsourcing`
library's SQLite module (`eventsourcing_side`, on `onsale` only). Every command counted is
durable (committed and fsynced) when acknowledged, and every run's final state is checked, event
by event (`workload.check`), before its figure is reported; `report` prints a table per workload
of commands/s, latency and Turnstile's ratio to each row, and whether Turnstile reaches its aim
(5x) against each contender's best row. PostgreSQL and eventsourcing are optional
(`pip install -e '.[peers]'`, Debian's postgresql): a contender that is not installed is
reported as skipped.
"""
