"""Times on the command line: ISO 8601 with an explicit offset, or milliseconds since the Unix
epoch (the journal's `at`). Shown back as ISO 8601 in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> int:
    """Milliseconds since the epoch for `text`; ValueError if it is neither form.

    A time without an offset is refused rather than guessed: the journal is in UTC and an
    operator's local time is not."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither ISO 8601 (2026-01-01T12:00:00Z) nor milliseconds"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add Z or +hh:mm")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def format_time(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
