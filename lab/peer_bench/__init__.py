"""Benchmarks of Turnstile against what a user would pick instead: `python -m lab.peer_bench`
(`./dev peers`; `--quick` for a smoke run, `--write-doc` for the "Peers" section of
docs/benchmarks.md).

The same `onsale` workload (`workload`) runs on each contender in the same run, each round in
its own subprocess on a fresh store: Turnstile's engine in-process (`turnstile_side`), the same
rules as SQL transactions on a PostgreSQL server the benchmark starts on loopback
(`postgres_side`), and the same aggregate logic on the `eventsourcing` library's SQLite module
(`eventsourcing_side`). Every command counted is durable (committed and fsynced) when
acknowledged, and every run's final state is checked (`workload.check`) before its figure is
reported; `report` prints the table of commands/s, latency and Turnstile's ratio to each.
PostgreSQL and eventsourcing are optional (`pip install -e '.[peers]'`): a contender that is not
installed is reported as skipped.
"""
