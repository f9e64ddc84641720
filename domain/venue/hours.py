"""Time zones and opening hours on the wall clock of a location's IANA timezone.

Opening hours are wall-clock times, so a day open 09:00-17:00 is open from the moment the local
clock shows 09:00 to the moment it shows 17:00: eight hours on a daylight-saving change day as
on any other, while a day open 00:00-24:00 lasts 23 or 25 real hours on those days. Exactly:

- an opening time is the first instant of the local date at which the clock shows that time or
  later: the time itself, its first occurrence when the clock falls back and repeats it, or the
  instant of the jump when the clock springs forward over it;
- `"24:00"` is the next local date's midnight, by the same rule.

The rules come from the tz database through `zoneinfo` (pure lookups of immutable data, no
clock). Times are milliseconds since the Unix epoch throughout.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from domain.errors import InvalidArgs
from domain.venue.values import WEEKDAYS, OperatingHours

MINUTE_MS = 60_000
DAY_MS = 86_400_000
#: The latest closing time: the next day's midnight.
END_OF_DAY = "24:00"
MINUTES_PER_DAY = 24 * 60

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_HHMM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")


#: Files a system's zoneinfo directory may hold that name no place: the host's own setting
#: ("localtime") and the tz database's placeholder zone ("Factory").
_NOT_PLACES = frozenset({"localtime", "Factory"})


@cache
def known_timezones() -> frozenset[str]:
    """The IANA keys this installation's tz database knows (read once)."""
    return frozenset(available_timezones()) - _NOT_PLACES


def validate_timezone(key: str, path: str = "timezone") -> None:
    """InvalidArgs at `path` unless `key` is an IANA timezone such as `Europe/London`."""
    if key not in known_timezones():
        raise InvalidArgs(f"{key!r} is not an IANA timezone (such as 'Europe/London').", path=path)


def validate_hours(hours: OperatingHours, path: str = "operatingHours") -> None:
    """InvalidArgs at the bad field's path unless every open day has `open` in 00:00..23:59,
    `close` in 00:01..24:00 and `close` after `open`."""
    for name in WEEKDAYS:
        day = getattr(hours, name)
        if day is None:
            continue
        here = f"{path}.{name}"
        if not _HHMM.match(day.open):
            raise InvalidArgs(
                f"{here}.open must be a time 'HH:MM' from 00:00 to 23:59.", path=f"{here}.open"
            )
        if day.close != END_OF_DAY and not _HHMM.match(day.close):
            raise InvalidArgs(
                f"{here}.close must be a time 'HH:MM' up to 24:00.", path=f"{here}.close"
            )
        if minute_of(day.close) <= minute_of(day.open):
            raise InvalidArgs(f"{here}.close must be after {here}.open.", path=f"{here}.close")


def minute_of(hhmm: str) -> int:
    """Minutes past midnight of a validated `"HH:MM"` (`"24:00"` is 1440)."""
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes)


def local_datetime(at: int, timezone: str) -> datetime:
    """The aware local date and time at the instant `at`."""
    return (_EPOCH + timedelta(milliseconds=at)).astimezone(ZoneInfo(timezone))


def local_date(at: int, timezone: str) -> date:
    return local_datetime(at, timezone).date()


def to_ms(moment: datetime) -> int:
    """An aware datetime as milliseconds since the epoch."""
    return (moment - _EPOCH) // _ONE_MS


def wall_instant(day: date, minute: int, timezone: str) -> int:
    """The first instant at which the clock of `timezone` on the local date `day` shows
    `minute` minutes past midnight or later (1440: the next day's midnight). See the module
    docstring for the daylight-saving cases."""
    if minute >= MINUTES_PER_DAY:
        return wall_instant(day + timedelta(days=1), minute - MINUTES_PER_DAY, timezone)
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=ZoneInfo(timezone))
    # fold=0: the first occurrence of a repeated time.
    at = to_ms(wall)
    actual = local_datetime(at, timezone)
    if actual.replace(tzinfo=None) == wall.replace(tzinfo=None):
        return at
    # A skipped time: read with the offset from before the jump, `at` lands after the jump by
    # less than the jump's size. The jump is the first instant carrying the later offset.
    later = _offset(actual)
    low, high = at - (later - _offset(wall)) // _ONE_MS, at
    while low < high:
        middle = (low + high) // 2
        if _offset(local_datetime(middle, timezone)) == later:
            high = middle
        else:
            low = middle + 1
    return low


def opening_window(hours: OperatingHours, at: int, timezone: str) -> tuple[int, int] | None:
    """The instants `(opens, closes)` of the local date on which `at` falls, or None if the
    location is closed that weekday."""
    day = local_date(at, timezone)
    today = hours.on(day.weekday())
    if today is None:
        return None
    return (
        wall_instant(day, minute_of(today.open), timezone),
        wall_instant(day, minute_of(today.close), timezone),
    )


def iso_dates(first: date, last: date) -> list[str]:
    """Every date from `first` to `last` inclusive, as `YYYY-MM-DD`."""
    out = []
    day = first
    while day <= last:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    assert offset is not None, "an aware datetime has an offset"
    return offset
