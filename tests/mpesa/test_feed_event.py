"""One feed event for relay and till: what the relay builds from its store is what the till reads,
and the wire shape is the one the feed has always sent."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from callback_relay.feed import event_json
from callback_relay.store import StoredEvent
from callback_relay.types import EventFlag, EventKind
from smartduka_tui.mpesa.feed_event import FeedEvent, SecurityDetail, iso_ms
from smartduka_tui.relay_client import _read_event

BODY = b'{"Body": {"stkCallback": {"ResultCode": 0, "Amount": 150.00}}}'
RECEIVED_MS = 1_796_408_416_123  # 2026-12-04T18:20:16.123Z


def stored(**fields: object) -> StoredEvent:
    values: dict[str, object] = {
        "event_id": 42,
        "kind": EventKind.CALLBACK,
        "shop_id": "s7hy6n2r8vzfa",
        "till_id": "t4xft46pben5z",
        "attempt_ref": "a1b2c3d4e5f6",
        "received_at": RECEIVED_MS,
        "body": BODY,
        "body_sha256": hashlib.sha256(BODY).hexdigest(),
        "flags": (EventFlag.REPLAYED,),
        "detail": None,
        "delivery_count": 2,
    }
    values.update(fields)
    return StoredEvent(**values)  # type: ignore[arg-type]


def over_the_wire(event: StoredEvent) -> FeedEvent:
    """The relay's JSON for `event`, sent as bytes, read by the till's own parser."""
    parsed = _read_event(json.loads(json.dumps({"events": [event_json(event)]}))["events"][0])
    assert isinstance(parsed, FeedEvent), parsed
    return parsed


def test_a_relay_callback_event_round_trips_through_the_till_parser() -> None:
    event = over_the_wire(stored())
    assert event.id == 42
    assert event.kind == "callback"
    assert (event.shop_id, event.till_id, event.attempt_ref) == (
        "s7hy6n2r8vzfa",
        "t4xft46pben5z",
        "a1b2c3d4e5f6",
    )
    assert event.received_at == datetime(2026, 12, 4, 18, 20, 16, 123000, tzinfo=UTC)
    assert event.body.encode() == BODY
    assert event.body_sha256 == hashlib.sha256(BODY).hexdigest()
    assert event.flags == ["replayed"]
    assert event.delivery_count == 2
    assert event.security is None
    assert event.wire() == event_json(stored())


def test_a_security_event_keeps_its_reason_source_and_size() -> None:
    detail = json.dumps({"reason": "source_not_allowed", "source": "203.0.113.9", "size": 310})
    event = over_the_wire(stored(kind=EventKind.SECURITY, body=b"", detail=detail, flags=()))
    assert event.kind == "security"
    assert event.security == SecurityDetail(
        reason="source_not_allowed", source="203.0.113.9", size=310
    )
    assert event.body == ""


def test_the_wire_shape_is_unchanged() -> None:
    detail = json.dumps({"reason": "body_too_large", "size": None, "source": None})
    wire = event_json(stored(kind=EventKind.SECURITY, detail=detail, flags=()))
    assert wire == {
        "id": 42,
        "kind": "security",
        "shop_id": "s7hy6n2r8vzfa",
        "till_id": "t4xft46pben5z",
        "attempt_ref": "a1b2c3d4e5f6",
        "received_at": "2026-12-04T18:20:16.123Z",
        "body": BODY.decode(),
        "body_sha256": hashlib.sha256(BODY).hexdigest(),
        "flags": [],
        "delivery_count": 2,
        "security": {"reason": "body_too_large", "source": None, "size": None},
    }


def test_milliseconds_survive_exactly() -> None:
    # Through a float, 1796408416.999 s can come back as .998999: the feed never goes that way.
    for ms in (0, 1, 999, RECEIVED_MS, 1_796_408_416_999):
        assert (
            over_the_wire(stored(received_at=ms))
            .wire()["received_at"]
            .endswith(f".{ms % 1000:03d}Z")
        )
    assert iso_ms(datetime(2026, 12, 4, 21, 0, 0, 5000, tzinfo=UTC)) == "2026-12-04T21:00:00.005Z"


def test_an_event_the_relay_holds_outside_the_model_still_goes_out() -> None:
    # The relay hands out what it stored; the till keeps an unreadable one for its manager.
    wire = event_json(stored(attempt_ref="x" * 80))
    assert wire["attempt_ref"] == "x" * 80
    unreadable = _read_event(wire)
    assert isinstance(unreadable, tuple)
    event_id, reason = unreadable
    assert event_id == 42
    assert "attempt_ref" in reason
