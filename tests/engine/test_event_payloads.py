"""A journal row's payload (`codec.encode_event`) is the event's wire form without stream,
version and at, byte for byte what the converter gives for the whole event with those three
keys taken out, and decodes back to the event."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.model import Event
from domain.ratelimit import RateLimitTaken
from domain.ticketing.events import EventCancelled, OfferMade, WaitingListJoined
from engine import codec


def reference_payload(event: Event) -> bytes:
    body = codec.converter.unstructure(event, type(event))
    for key in ("stream", "version", "at"):
        del body[key]
    return orjson.dumps(body)


def round_trip(event: Event) -> Event:
    payload = codec.encode_event(event)
    return codec.decode_event(type(event).type_name, event.stream, event.version, event.at, payload)


EVENTS = [
    RateLimitTaken(stream="ratelimit/rl_a", version=1, at=5, window_start=5, count=1,
                   milli_tokens=0),
    WaitingListJoined(stream="event/ev_abcd", version=2, at=7, waiting_list_id="wl_abcd_1",
                      user_id="u1", number=1),
    OfferMade(stream="event/ev_abcd", version=3, at=7, waiting_list_id="wl_abcd_1",
              user_id="u1", offer_expires_at=1_800_007),
    EventCancelled(stream="event/ev_abcd", version=9, at=8, refunded_ticket_ids=("tk_abcd_0",),
                   withdrawn_offer_ids=(), expired_waiting_ids=("wl_abcd_2", "wl_abcd_3"),
                   cancelled_queue_user_ids=("u2",)),
]  # fmt: skip


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_a_payload_is_the_event_without_its_position(event: Event) -> None:
    payload = codec.encode_event(event)
    assert payload == reference_payload(event)
    assert not {"stream", "version", "at"} & set(orjson.loads(payload))
    assert round_trip(event) == event


@given(
    version=st.integers(1, 2**40),
    at=st.integers(0, 2**50),
    window_start=st.integers(0, 2**50),
    count=st.integers(0, 2**31),
    milli_tokens=st.integers(0, 2**40),
)
def test_limiter_takes_encode_as_the_converter_does(
    version: int, at: int, window_start: int, count: int, milli_tokens: int
) -> None:
    event = RateLimitTaken(
        stream="ratelimit/rl_b",
        version=version,
        at=at,
        window_start=window_start,
        count=count,
        milli_tokens=milli_tokens,
    )
    assert codec.encode_event(event) == reference_payload(event)
    assert round_trip(event) == event
