"""The correctness checks a run closes with: each a pure function of what was acknowledged,
observed and read back, returning a `Check` that passed or failed with a reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from tools.loadtest.recorder import Watch

#: At most this many offending items are named in a check's detail.
SHOWN = 5
#: Longest value shown in a check's detail.
BRIEF_CHARS = 160


@attrs.frozen(kw_only=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def oversold_in(availability: Mapping[str, Any]) -> str | None:
    """Why an `events:getEventAvailability` value shows more tickets sold or offered than the
    event has, or None."""
    total = availability["totalTickets"]
    sold = availability["purchasedCount"]
    held = sold + availability["activeOffers"]
    if sold > total:
        return f"purchasedCount {sold} > totalTickets {total}"
    if held > total:
        return f"purchasedCount + activeOffers {held} > totalTickets {total}"
    return None


def never_oversold(
    event: str,
    final: Mapping[str, Any],
    tickets: Sequence[Mapping[str, Any]],
    observed: Sequence[str],
) -> Check:
    """Final availability, every ticket the event lists, and every availability value any
    subscriber saw during the run: never more sold (+ offered) than `totalTickets`."""
    name = f"{event}: never oversold"
    problems: list[str] = []
    if (why := oversold_in(final)) is not None:
        problems.append(f"final availability: {why}")
    held = [t for t in tickets if t["status"] in ("valid", "used")]
    if len(held) > final["totalTickets"]:
        problems.append(f"{len(held)} valid or used tickets > totalTickets {final['totalTickets']}")
    if len(held) != final["purchasedCount"]:
        problems.append(
            f"{len(held)} valid or used tickets listed, availability says "
            f"purchasedCount {final['purchasedCount']}"
        )
    doubled = sorted(u for u, n in Counter(t["userId"] for t in held).items() if n > 1)
    if doubled:
        problems.append(f"users holding two tickets: {_named(doubled)}")
    if observed:
        problems.append(f"{len(observed)} observed values oversold: {_named(list(observed))}")
    if problems:
        return Check(name=name, passed=False, detail="; ".join(problems))
    return Check(
        name=name,
        passed=True,
        detail=(
            f"{final['purchasedCount']} sold + {final['activeOffers']} offered of "
            f"{final['totalTickets']}; {len(held)} tickets listed"
        ),
    )


def acknowledged_present(
    what: str,
    acknowledged: Mapping[str, str],
    found: Mapping[str, Mapping[str, Any] | None],
    matches: Callable[[str, str, Mapping[str, Any]], bool],
) -> Check:
    """Every acknowledged record (`acknowledged`: id -> owner) was read back (`found`: id ->
    what the owner's read returned, or None) and `matches(id, owner, record)`."""
    missing = sorted(rid for rid in acknowledged if found.get(rid) is None)
    wrong = sorted(
        rid
        for rid, owner in acknowledged.items()
        if (record := found.get(rid)) is not None and not matches(rid, owner, record)
    )
    name = f"{what}: every acknowledged one present"
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_named(missing)}")
        if wrong:
            parts.append(f"{len(wrong)} not as acknowledged: {_named(wrong)}")
        return Check(name=name, passed=False, detail="; ".join(parts))
    return Check(name=name, passed=True, detail=f"{len(acknowledged)} acknowledged, all read back")


def brief(value: Any) -> str:
    """A value as a check's detail names it: a list by its length, anything else in short."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= BRIEF_CHARS else text[: BRIEF_CHARS - 3] + "..."


def converged(name: str, final: Any, watches: Iterable[Watch]) -> Check:
    """Check `name`: every subscriber's latest value equals `final`, the value read fresh at
    the end."""
    watches = list(watches)
    behind = [w for w in watches if w.latest != final]
    if behind:
        labels = [f"connection {w.connection} at {brief(w.latest)}" for w in behind]
        return Check(
            name=name,
            passed=False,
            detail=(
                f"{len(behind)} of {len(watches)} differ from {brief(final)}: {_named(labels)}"
            ),
        )
    return Check(name=name, passed=True, detail=f"{len(watches)} subscribers hold {brief(final)}")


def all_passed(checks: Iterable[Check]) -> bool:
    return all(check.passed for check in checks)


__all__ = [
    "Check",
    "acknowledged_present",
    "all_passed",
    "brief",
    "converged",
    "never_oversold",
    "oversold_in",
]
