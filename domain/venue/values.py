"""Value objects shared by the venue's arguments, events and states: addresses, opening hours
and order lines. They travel through the one codec with camelCase keys, so the wire, the
journal and the snapshots spell them alike (`postalCode`, `serviceId`).
"""

from __future__ import annotations

import attrs

#: The keys of `OperatingHours`, Monday first (as `datetime.date.weekday()` counts).
WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


@attrs.frozen(kw_only=True)
class Address:
    """A postal address; every part is optional (a mobile or online venue may have none)."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


@attrs.frozen(kw_only=True)
class DayHours:
    """One weekday's opening, as wall-clock times `"HH:MM"` in the location's timezone; `close`
    may be `"24:00"` (open until midnight) and is always after `open`."""

    open: str
    close: str


@attrs.frozen(kw_only=True)
class OperatingHours:
    """Opening hours by weekday; a day that is None is closed all day."""

    monday: DayHours | None = None
    tuesday: DayHours | None = None
    wednesday: DayHours | None = None
    thursday: DayHours | None = None
    friday: DayHours | None = None
    saturday: DayHours | None = None
    sunday: DayHours | None = None

    def on(self, weekday: int) -> DayHours | None:
        """The hours of `weekday` (0 = Monday, as `date.weekday()`)."""
        hours: DayHours | None = getattr(self, WEEKDAYS[weekday])
        return hours


@attrs.frozen(kw_only=True)
class OrderLine:
    """One resolved line of an order: `price` is the unit price in minor units, `duration` the
    minutes one unit takes (0 for a line that is not a service)."""

    service_id: str | None
    name: str
    quantity: int
    price: int
    duration: int

    @property
    def amount(self) -> int:
        return self.price * self.quantity
