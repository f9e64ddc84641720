"""What a load sweep of the collector walks: `python -m lab.sweep_census [--sweep N] [--case C]`.

Runs `lab.bench`'s case (`many` by default: 2,000 closed-loop clients over 1,000 events) in
this process with the engine's collector as a server runs it (engine/collector.py), and just
before its `N`th sweep (the 6th by default: past the warm-up) counts the objects the sweep is
about to walk (every tracked object not frozen) by type, with the references each type's
objects hold (what the sweep follows, each a memory read), then lets the sweep run and prints
how long it took. Types with a count near the clients' are the commands in flight; the rest is
what the joins since the last sweep left (their states' new nodes, entries, keys). Counts, not
timings, are the figures to compare between trees; nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import engine.collector as collector_module
from lab import bench


def census() -> tuple[Counter[str], Counter[str]]:
    """The tracked objects not frozen, and the references they hold, by type name."""
    objects = [o for generation in range(3) for o in gc.get_objects(generation)]
    counts: Counter[str] = Counter()
    references: Counter[str] = Counter()
    for obj in objects:
        name = type(obj).__name__
        counts[name] += 1
        references[name] += len(gc.get_referents(obj))
    return counts, references


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=int, default=6, help="which load sweep to look at")
    parser.add_argument("--case", default="many", choices=("many", "hot"))
    parser.add_argument("--top", type=int, default=20, help="types to print")
    args = parser.parse_args(argv)

    real_sweep = collector_module.Collector.sweep
    seen = 0
    report: list[str] = []

    def sweep(self: Any, kind: Any, now: float, frozen: int) -> int:
        nonlocal seen
        seen += 1
        if seen != args.sweep:
            return real_sweep(self, kind, now, frozen)
        counts, references = census()
        started = time.perf_counter()
        result = real_sweep(self, kind, now, frozen)
        took = (time.perf_counter() - started) * 1e3
        total = sum(counts.values())
        report.append(
            f"sweep {seen} ({kind}): {total:,} objects to walk, "
            f"{sum(references.values()):,} references; it took {took:.0f} ms"
        )
        report.append(f"{'objects':>9} {'references':>11}  type")
        for name, count in counts.most_common(args.top):
            report.append(f"{count:>9,} {references[name]:>11,}  {name}")
        return result

    collector_module.Collector.sweep = sweep  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as scratch:
        bench.child_main(args.case, False, Path(scratch) / "out.json", None)
    print("\n".join(report) or f"fewer than {args.sweep} sweeps ran", file=sys.stdout)


if __name__ == "__main__":
    main()
