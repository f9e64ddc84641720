"""Latency histograms: HDR (High Dynamic Range) histograms of whole microseconds.

An HDR histogram keeps every recorded value to 3 significant digits from 1 us to an hour in a
fixed, small amount of memory, so a percentile read from it (p99.9 included) is within 0.1% of
the exact one however many values were recorded, and histograms add up exactly.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

#: The percentiles every report names.
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
#: Points of the latency-by-percentile curve the HTML report draws.
CURVE_PERCENTILES: tuple[float, ...] = (
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0,
    96.0, 97.0, 97.5, 98.0, 98.5, 99.0, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 100.0,
)  # fmt: skip

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def percentile_label(percentile: float) -> str:
    """`50.0` -> "p50", `99.9` -> "p99.9"."""
    return f"p{percentile:g}"


class LatencyHistogram:
    """Durations in seconds, kept as whole microseconds. A value below 1 us counts as 1 us and
    one above an hour as an hour (`clamped` counts the latter)."""

    def __init__(self) -> None:
        self._hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.clamped = 0

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        """The histogram a `summary()`'s `hdr` holds."""
        histogram = cls()
        histogram._hdr.decode_and_add(encoded.encode("ascii"))
        return histogram

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def record(self, seconds: float) -> None:
        micros = round(seconds * 1e6)
        if micros > HIGHEST_US:
            self.clamped += 1
            micros = HIGHEST_US
        self._hdr.record_value(max(LOWEST_US, micros))

    def add(self, other: LatencyHistogram) -> None:
        self._hdr.add(other._hdr)
        self.clamped += other.clamped

    def percentile_ms(self, percentile: float) -> float | None:
        """The value at `percentile` (0-100) in milliseconds; None when nothing was recorded."""
        if self.count == 0:
            return None
        return _ms(self._hdr.get_value_at_percentile(percentile))

    def curve(self) -> list[tuple[float, float]]:
        """(percentile, milliseconds) at each of `CURVE_PERCENTILES`; empty when no values."""
        if self.count == 0:
            return []
        values = self._hdr.get_percentile_to_value_dict(list(CURVE_PERCENTILES))
        return [(p, _ms(values[p])) for p in CURVE_PERCENTILES]

    def summary(self) -> dict[str, Any]:
        """The report's figures: count, min/mean/max and `PERCENTILES` in ms (null when
        empty), and the histogram itself as an HdrHistogram V2 base64 log entry (`hdr`), which
        HdrHistogram tools in any language decode."""
        empty = self.count == 0
        return {
            "count": self.count,
            "unit": "ms",
            "min": None if empty else _ms(self._hdr.get_min_value()),
            "mean": None if empty else round(self._hdr.get_mean_value() / 1000.0, 3),
            "max": None if empty else _ms(self._hdr.get_max_value()),
            "percentiles": {percentile_label(p): self.percentile_ms(p) for p in PERCENTILES},
            "clamped": self.clamped,
            "hdr": self._hdr.encode().decode("ascii"),
        }


def _ms(micros: int) -> float:
    return round(micros / 1000.0, 3)


__all__ = ["PERCENTILES", "LatencyHistogram", "percentile_label"]
