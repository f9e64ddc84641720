"""The lab: benchmarks and hostile-conditions harnesses, run from a clone of the repository.

Nothing here ships in the wheel, and nothing in `engine/`, `domain/`, `snapshots/` or `tools/`
imports it. Each harness runs as `python -m lab.NAME` (README, "The lab"):

- `lab.bench`, `lab.fanout_bench`, `lab.customers_bench`, `lab.peer_bench`: benchmarks that
  print their figures as ratios against a baseline measured in the same run (docs/benchmarks.md);
- `lab.chaos`, `lab.hostile`, `lab.storage_faults`: crashes, hostile clients, floods and failing
  disks, each bounded in count and time (docs/reliability.md).
"""
