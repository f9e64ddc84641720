"""The journal filters' own figures: `python -m lab.filter_figures [--keys N]`.

A `engine.journal_filter.BloomFilter` of the smallest size filled to its capacity with keys
shaped like the journal's streams; then the false positives among `--keys` keys never added,
and the time of one `add` and of one lookup of a held key (`timeit`, best of five rounds of
200,000). It reads only the filter's public face, so it runs on earlier forms of the filter
too (copied into a worktree of an earlier commit). Times are wall time on a shared machine;
the false-positive rate is exact for the keys given, and moves a little between processes
(Python's string hashes are salted per process). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Sequence

from engine.journal_filter import BITS_PER_KEY, BloomFilter


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=500_000, help="keys never added (500,000)")
    args = parser.parse_args(argv)
    bloom = BloomFilter(1)
    for i in range(bloom.capacity):
        bloom.add(f"ratelimit/rl_{i:024x}")
    missed = sum(f"ratelimit/rl_{i:024x}" not in bloom for i in range(bloom.capacity))
    false = sum(f"event/ev_{i:020x}" in bloom for i in range(args.keys))
    key = f"ratelimit/rl_{123_456_789:024x}"
    rounds = 200_000
    add = min(timeit.repeat(lambda: bloom.add(key), number=rounds, repeat=5)) / rounds
    held = min(timeit.repeat(lambda: key in bloom, number=rounds, repeat=5)) / rounds
    print(
        f"filter of {bloom.capacity * BITS_PER_KEY / 8 / 2**20:.0f} MiB filled to its capacity"
        f" ({bloom.capacity:,} keys, {missed} of them not found); false positives"
        f" {100 * false / args.keys:.2f}% of {args.keys:,} keys never added; add"
        f" {add * 1e6:.2f} us, lookup of a held key {held * 1e6:.2f} us"
    )


if __name__ == "__main__":
    main()
