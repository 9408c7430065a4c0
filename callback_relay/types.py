"""The relay's small vocabulary: event kinds and states, callback outcomes, refusal reasons."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What a feed event carries: a verified callback, or a signed refusal for the shop to see."""

    CALLBACK = "callback"
    SECURITY = "security"
    # A C2B confirmation (a customer paid the shortcode directly), fanned out to every till.
    C2B = "c2b"
    # An initiator API's asynchronous result (Transaction Status, Reversal), and its queue
    # timeout notice: at signed per-request paths (callback_relay/results.py).
    RESULT = "result"
    QUEUE_TIMEOUT = "queue_timeout"


class EventState(StrEnum):
    """Where an event is in its life: waiting for (re)delivery, acknowledged, or dead-lettered."""

    PENDING = "pending"
    ACKED = "acked"
    DEAD = "dead"


class EventFlag(StrEnum):
    """Facts about an event the till should know."""

    CONFLICTING_BODY = "conflicting_body"
    REPLAYED = "replayed"


class AppendOutcome(StrEnum):
    """What the inbox did with an incoming callback."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICTING = "conflicting"
    # A security event not stored: the till already holds its cap of unacknowledged ones.
    CAPPED = "capped"


class RefusalReason(StrEnum):
    """Why a callback was refused; each is counted as a security event."""

    MALFORMED_PATH = "malformed_path"
    UNKNOWN_SHOP = "unknown_shop"
    UNKNOWN_TILL = "unknown_till"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    MALFORMED_JSON = "malformed_json"
    NOT_STK_CALLBACK = "not_stk_callback"
    NOT_C2B_CONFIRMATION = "not_c2b_confirmation"
