"""Opening hours are wall-clock times in the location's timezone, daylight-saving change days
included. Expected instants are written out in UTC by hand (not computed with zoneinfo):

- London springs forward on 2026-03-29 at 01:00 UTC (01:00 GMT -> 02:00 BST) and falls back on
  2026-10-25 at 01:00 UTC (02:00 BST -> 01:00 GMT);
- New York springs forward on 2026-03-08 at 07:00 UTC (02:00 EST -> 03:00 EDT) and falls back
  on 2026-11-01 at 06:00 UTC (02:00 EDT -> 01:00 EST).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from domain.errors import Conflict
from domain.venue.hours import opening_window, wall_instant
from domain.venue.values import DayHours, OperatingHours
from tests.domain.harness import MINUTE, World
from tests.domain.test_venue_support import (
    MANAGER,
    book,
    create_location,
    create_service,
    new_world,
    order_args,
    refused,
    utc,
)

HOUR = 60 * MINUTE

#: (timezone, local date, 09:00 and 17:00 that day in UTC)
CHANGE_DAYS = [
    ("Europe/London", date(2026, 3, 29), utc(2026, 3, 29, 8), utc(2026, 3, 29, 16)),
    ("Europe/London", date(2026, 10, 25), utc(2026, 10, 25, 9), utc(2026, 10, 25, 17)),
    ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 13), utc(2026, 3, 8, 21)),
    ("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 14), utc(2026, 11, 1, 22)),
]


def location_with(w: World, timezone: str, hours: dict[str, Any]) -> str:
    every_day = {day: hours for day in ("monday", "tuesday", "wednesday", "thursday")}
    return create_location(w, timezone=timezone, operatingHours={**every_day, "sunday": hours})


def refuse_booking(w: World, location_id: str, at: int, *service_ids: str) -> dict[str, Any]:
    items = [{"serviceId": sid, "quantity": 1} for sid in service_ids]
    args = order_args(location_id, type="booking", items=items, scheduledAt=at)
    return refused(w, "orders:create", args, MANAGER, Conflict)


@pytest.mark.parametrize(("timezone", "day", "opens", "closes"), CHANGE_DAYS)
def test_nine_to_five_is_eight_hours_on_change_days(
    timezone: str, day: date, opens: int, closes: int
) -> None:
    assert (wall_instant(day, 9 * 60, timezone), wall_instant(day, 17 * 60, timezone)) == (
        opens,
        closes,
    )
    w = new_world()
    location_id = location_with(w, timezone, {"open": "09:00", "close": "17:00"})
    whole_day = create_service(w, location_id, duration=8 * 60, resources=["hall"])
    longer = create_service(w, location_id, duration=8 * 60 + 1, resources=["hall2"])
    book(w, location_id, opens, whole_day)
    refusal = refuse_booking(w, location_id, opens, longer)
    assert (refusal["opensAt"], refusal["closesAt"]) == (opens, closes)


@pytest.mark.parametrize(("timezone", "day", "opens", "closes"), CHANGE_DAYS)
def test_bookings_at_the_edges_of_a_change_day(
    timezone: str, day: date, opens: int, closes: int
) -> None:
    assert opening_window(
        OperatingHours(sunday=DayHours(open="09:00", close="17:00")), opens, timezone
    ) == (opens, closes)
    w = new_world()
    location_id = location_with(w, timezone, {"open": "09:00", "close": "17:00"})
    hour = create_service(w, location_id, duration=60, resources=[])
    book(w, location_id, opens, hour)
    book(w, location_id, closes - HOUR, hour)
    for start in (opens - 30 * MINUTE, closes - 30 * MINUTE, opens - HOUR, closes):
        refuse_booking(w, location_id, start, hour)


def test_a_whole_day_lasts_23_and_25_hours_on_londons_change_days() -> None:
    w = new_world()
    location_id = location_with(w, "Europe/London", {"open": "00:00", "close": "24:00"})
    day = create_service(w, location_id, duration=1440, resources=["a"])
    hour = create_service(w, location_id, duration=60, resources=["b"])
    twenty_three = create_service(w, location_id, duration=23 * 60, resources=["c"])
    minute = create_service(w, location_id, duration=1, resources=["d"])
    # Spring: midnight GMT to midnight BST is 23 hours.
    book(w, location_id, utc(2026, 3, 29, 0), twenty_three)
    refused_day = refuse_booking(w, location_id, utc(2026, 3, 29, 0), day)
    assert (refused_day["opensAt"], refused_day["closesAt"]) == (
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 23),
    )
    # Autumn: midnight BST (23:00 UTC the day before) to midnight GMT is 25 hours.
    book(w, location_id, utc(2026, 10, 24, 23), day, hour)
    refusal = refuse_booking(w, location_id, utc(2026, 10, 24, 23), day, hour, minute)
    assert (refusal["opensAt"], refusal["closesAt"]) == (utc(2026, 10, 24, 23), utc(2026, 10, 26))


def test_hours_across_the_spring_jump_are_shorter_in_real_time() -> None:
    """London open 00:30-03:00 on 2026-03-29: the clock skips 01:00-02:00, so 90 minutes."""
    w = new_world()
    location_id = location_with(w, "Europe/London", {"open": "00:30", "close": "03:00"})
    ninety = create_service(w, location_id, duration=90, resources=["a"])
    ninety_one = create_service(w, location_id, duration=91, resources=["b"])
    book(w, location_id, utc(2026, 3, 29, 0, 30), ninety)
    refuse_booking(w, location_id, utc(2026, 3, 29, 0, 30), ninety_one)


def test_hours_across_the_autumn_repeat_are_longer_in_real_time() -> None:
    """New York open 01:30-02:00 on 2026-11-01: from the first 01:30 (EDT, 05:30 UTC) to the
    only 02:00 (EST, 07:00 UTC), through the repeated hour: 90 minutes."""
    w = new_world()
    location_id = location_with(w, "America/New_York", {"open": "01:30", "close": "02:00"})
    ninety = create_service(w, location_id, duration=90, resources=["a"])
    thirty = create_service(w, location_id, duration=30, resources=["b"])
    ninety_one = create_service(w, location_id, duration=91, resources=["c"])
    book(w, location_id, utc(2026, 11, 1, 5, 30), ninety)
    # 01:30 EST, the clock's second 01:30, is still inside the hours.
    book(w, location_id, utc(2026, 11, 1, 6, 30), thirty)
    refuse_booking(w, location_id, utc(2026, 11, 1, 5, 30), ninety_one)
    refuse_booking(w, location_id, utc(2026, 11, 1, 5, 29), thirty)


@pytest.mark.parametrize(
    ("timezone", "day", "opening", "jump"),
    [
        # The clock skips 01:00-02:00 in London and 02:00-03:00 in New York.
        ("Europe/London", date(2026, 3, 29), "01:30", utc(2026, 3, 29, 1)),
        ("America/New_York", date(2026, 3, 8), "02:30", utc(2026, 3, 8, 7)),
        # Lord Howe moves by half an hour (02:00 -> 02:30 at 15:30 UTC the day before).
        ("Australia/Lord_Howe", date(2026, 10, 4), "02:15", utc(2026, 10, 3, 15, 30)),
    ],
)
def test_an_opening_time_the_clock_skips_opens_at_the_jump(
    timezone: str, day: date, opening: str, jump: int
) -> None:
    hours, _, minutes = opening.partition(":")
    assert wall_instant(day, int(hours) * 60 + int(minutes), timezone) == jump
    w = new_world()
    location_id = location_with(w, timezone, {"open": opening, "close": "23:00"})
    session = create_service(w, location_id, duration=60, resources=["a"])
    book(w, location_id, jump, session)
    # The minute before the jump is the same local date, before opening.
    refusal = refuse_booking(w, location_id, jump - MINUTE, session)
    assert (refusal["opensAt"], refusal["closesAt"]) == (
        jump,
        wall_instant(day, 23 * 60, timezone),
    )


def test_a_day_whose_midnight_is_skipped_starts_at_the_jump() -> None:
    """Santiago skips its midnight on 2026-09-06 (00:00 -04 -> 01:00 -03 at 04:00 UTC): a
    location open all that Sunday opens at the jump, and 03:59 UTC is still Saturday."""
    assert wall_instant(date(2026, 9, 6), 0, "America/Santiago") == utc(2026, 9, 6, 4)
    w = new_world()
    location_id = create_location(
        w,
        timezone="America/Santiago",
        operatingHours={"sunday": {"open": "00:00", "close": "24:00"}},
    )
    session = create_service(w, location_id, duration=60, resources=["a"])
    book(w, location_id, utc(2026, 9, 6, 4), session)
    assert refuse_booking(w, location_id, utc(2026, 9, 6, 3, 59), session)["date"] == "2026-09-05"


def test_a_repeated_time_means_its_first_showing() -> None:
    # 01:30 on 2026-11-01 in New York is first 05:30 UTC (EDT), then 06:30 UTC (EST).
    assert wall_instant(date(2026, 11, 1), 90, "America/New_York") == utc(2026, 11, 1, 5, 30)
    # 01:30 on 2026-10-25 in London is first 00:30 UTC (BST), then 01:30 UTC (GMT).
    assert wall_instant(date(2026, 10, 25), 90, "Europe/London") == utc(2026, 10, 25, 0, 30)


def test_midnight_closing_is_the_next_local_midnight() -> None:
    assert wall_instant(date(2026, 3, 28), 1440, "Europe/London") == utc(2026, 3, 29)
    assert wall_instant(date(2026, 3, 29), 1440, "Europe/London") == utc(2026, 3, 29, 23)


def test_the_opening_window_follows_the_local_date_of_the_start() -> None:
    hours = OperatingHours(
        sunday=DayHours(open="09:00", close="17:00"), monday=DayHours(open="10:00", close="12:00")
    )
    # 2026-03-09 02:00 UTC is still Sunday 2026-03-08 (22:00 EDT) in New York.
    assert opening_window(hours, utc(2026, 3, 9, 2), "America/New_York") == (
        utc(2026, 3, 8, 13),
        utc(2026, 3, 8, 21),
    )
    assert opening_window(hours, utc(2026, 3, 9, 12), "America/New_York") == (
        utc(2026, 3, 9, 14),
        utc(2026, 3, 9, 16),
    )
    assert opening_window(hours, utc(2026, 3, 10, 12), "America/New_York") is None
