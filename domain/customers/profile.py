"""A customer's profile and its rules (docs/reference/functions.md, "Customers and
memberships").

- At least one of firstName, lastName, email, phone.
- `email` well-formed (one `@`, a dotted domain of letters, digits and hyphens); unique within
  the organization compared case-insensitively (`email_key`).
- `phone` written with digits, spaces, `+`, `-`, `.`, `(`, `)`; stored as its digits only, of
  which it needs 7 to 20; unique within the organization by those digits.
- `customerType` regular | unregistered | new | anonymous (default regular, which needs both
  email and phone); `lifecycle` lead | active | at-risk | churned (default lead).

Every refusal is `InvalidArgs` whose `path` is the wire name of the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import immutables

from domain.customers.events import CustomerCreated, CustomerUpdated, Scalar
from domain.errors import InvalidArgs
from domain.model import replace

CUSTOMER_TYPES: tuple[str, ...] = ("regular", "unregistered", "new", "anonymous")
LIFECYCLES: tuple[str, ...] = ("lead", "active", "at-risk", "churned")
DEFAULT_CUSTOMER_TYPE = "regular"
DEFAULT_LIFECYCLE = "lead"

MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 20
MAX_TEXT = 200
MAX_NOTES = 10_000
MAX_TAGS = 50
MAX_CUSTOM_FIELDS = 50

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_PHONE = re.compile(r"^\+?[0-9 ().\-]+$")

#: The profile fields in the order of the wire, snake_case -> camelCase.
WIRE_NAMES: Mapping[str, str] = {
    "first_name": "firstName",
    "last_name": "lastName",
    "email": "email",
    "phone": "phone",
    "notes": "notes",
    "tags": "tags",
    "custom_fields": "customFields",
    "customer_type": "customerType",
    "lifecycle": "lifecycle",
    "location_id": "locationId",
    "user_id": "userId",
}
#: The optional fields an update may remove (by giving "" or, for tags, []).
CLEARABLE: frozenset[str] = frozenset(
    {"first_name", "last_name", "email", "phone", "notes", "location_id", "user_id"}
)


@attrs.frozen(kw_only=True)
class Profile:
    """What a customer is, as staff entered it (normalized). Absent text fields are None."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()
    custom_fields: immutables.Map[str, Scalar] = attrs.field(factory=immutables.Map)
    customer_type: str = DEFAULT_CUSTOMER_TYPE
    lifecycle: str = DEFAULT_LIFECYCLE
    location_id: str | None = None
    user_id: str | None = None


def anonymized(profile: Profile) -> Profile:
    """`profile` without its personal fields (type, lifecycle and location stay)."""
    return Profile(
        customer_type=profile.customer_type,
        lifecycle=profile.lifecycle,
        location_id=profile.location_id,
    )


def is_redacted(profile: Profile) -> bool:
    """True for a profile folded from journal rows whose personal fields the engine blanked
    after an erasure (text became ""; normalized live data never holds an empty string)."""
    return "" in (
        profile.first_name,
        profile.last_name,
        profile.email,
        profile.phone,
        profile.notes,
        profile.user_id,
    )


def profile_of(event: CustomerCreated) -> Profile:
    """The profile a creation records (shared with the directory projection)."""
    return Profile(
        first_name=event.first_name,
        last_name=event.last_name,
        email=event.email,
        phone=event.phone,
        notes=event.notes,
        tags=event.tags,
        custom_fields=event.custom_fields,
        customer_type=event.customer_type,
        lifecycle=event.lifecycle,
        location_id=event.location_id,
        user_id=event.user_id,
    )


def apply_update(profile: Profile, event: CustomerUpdated) -> Profile:
    """`profile` with the fields `event` changed or cleared (shared with the projection)."""
    changes: dict[str, Any] = {
        name: value for name in WIRE_NAMES if (value := getattr(event, name)) is not None
    }
    for name in event.cleared:
        changes[name] = None
    return replace(profile, **changes)


def changed_fields(event: CustomerUpdated) -> tuple[str, ...]:
    """The wire names of the fields `event` changed or cleared, in wire order."""
    return tuple(
        wire
        for name, wire in WIRE_NAMES.items()
        if getattr(event, name) is not None or name in event.cleared
    )


# -- normalization --------------------------------------------------------------------------------


def text(value: str | None, path: str, *, limit: int = MAX_TEXT) -> str | None:
    """Stripped text, None for None or blank; longer than `limit` is InvalidArgs."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidArgs(f"{path} is longer than {limit} characters.", path=path)
    return value or None


def email(value: str | None) -> str | None:
    """The email as given (stripped), or InvalidArgs if it is not well-formed."""
    value = text(value, "email", limit=254)
    if value is None:
        return None
    if _EMAIL.match(value) is None:
        raise InvalidArgs("email is not a valid email address.", path="email")
    return value


def email_key(value: str) -> str:
    """What makes two emails the same customer's: case does not matter."""
    return value.casefold()


def phone(value: str | None) -> str | None:
    """The phone's digits only, or InvalidArgs for other characters or too few or many digits."""
    value = text(value, "phone", limit=40)
    if value is None:
        return None
    if _PHONE.match(value) is None:
        raise InvalidArgs("phone may contain only digits, spaces, +, -, ., ( and ).", path="phone")
    digits = "".join(ch for ch in value if ch.isdigit())
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        raise InvalidArgs(
            f"phone needs {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits.", path="phone"
        )
    return digits


def tags(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """Stripped, non-empty, without repeats, in the order given."""
    if values is None:
        return None
    out: list[str] = []
    for index, raw in enumerate(values):
        tag = text(raw, f"tags[{index}]", limit=64)
        if tag is None:
            raise InvalidArgs("A tag must not be empty.", path=f"tags[{index}]")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidArgs(f"At most {MAX_TAGS} tags.", path="tags")
    return tuple(out)


def custom_fields(values: Mapping[str, Scalar] | None) -> immutables.Map[str, Scalar] | None:
    if values is None:
        return None
    if len(values) > MAX_CUSTOM_FIELDS:
        raise InvalidArgs(f"At most {MAX_CUSTOM_FIELDS} custom fields.", path="customFields")
    for key, value in values.items():
        if not key.strip() or len(key) > 64:
            raise InvalidArgs("Custom field names are 1 to 64 characters.", path="customFields")
        if isinstance(value, str) and len(value) > MAX_TEXT * 5:
            raise InvalidArgs("A custom field value is too long.", path=f"customFields.{key}")
    return immutables.Map(values)


def customer_type(value: str | None) -> str | None:
    if value is not None and value not in CUSTOMER_TYPES:
        raise InvalidArgs(
            f"customerType must be one of {', '.join(CUSTOMER_TYPES)}.", path="customerType"
        )
    return value


def lifecycle(value: str | None, path: str = "lifecycle") -> str | None:
    if value is not None and value not in LIFECYCLES:
        raise InvalidArgs(f"lifecycle must be one of {', '.join(LIFECYCLES)}.", path=path)
    return value


def check_complete(profile: Profile) -> None:
    """The rules over the whole profile: at least one way to know the customer, and the
    fields its type requires."""
    if not (profile.first_name or profile.last_name or profile.email or profile.phone):
        raise InvalidArgs(
            "A customer needs at least one of firstName, lastName, email or phone.",
            path="firstName",
            fields=["firstName", "lastName", "email", "phone"],
        )
    if profile.customer_type == "regular":
        for name, value in (("email", profile.email), ("phone", profile.phone)):
            if value is None:
                raise InvalidArgs(
                    f"A regular customer needs {name}; use another customerType without it.",
                    path=name,
                )
