"""The till's vocabulary: the words every layer uses, defined once (like Starlette's `types.py`).

A leaf module: it imports nothing from the project, so the store, the engine, the faces, the
relay and the simulator can all import it. The stored values of these enums are part of the
database and the audit log: rename a member if you must, never its value.
"""

from __future__ import annotations

from enum import IntFlag, StrEnum


class Mode(StrEnum):
    """Sandbox or production: of a till's Daraja settings and of a relay alike. Production
    refuses what sandbox only logs (unlisted callback sources, plain-http endpoints)."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"


class AttemptState(StrEnum):
    """A payment attempt's state (DESIGN.md section 3)."""

    CREATED = "CREATED"
    PENDING = "PENDING"
    UNKNOWN = "UNKNOWN"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    NEEDS_REVIEW = "NEEDS_REVIEW"


LIVE: frozenset[AttemptState] = frozenset(
    {AttemptState.CREATED, AttemptState.PENDING, AttemptState.UNKNOWN}
)
FINAL: frozenset[AttemptState] = frozenset(AttemptState) - LIVE


class ConfirmingClaim(StrEnum):
    """What a callback waiting for its confirming STK query claimed."""

    SUCCESS = "success"
    FAILURE = "failure"


class AttemptFlag(IntFlag):
    """Marks added to an attempt beside its state; stored as one bitmask column."""

    NONE = 0
    LATE = 1
    DUPLICATE_PAYMENT = 2
    RECEIPT_PENDING = 4
    SUSPICIOUS = 8
    RESOLVED_BY_MANAGER = 16


# Flags that put an attempt on the manager's problem list whatever its state.
PROBLEM_FLAGS = (
    AttemptFlag.LATE
    | AttemptFlag.DUPLICATE_PAYMENT
    | AttemptFlag.RECEIPT_PENDING
    | AttemptFlag.SUSPICIOUS
)
# States that put an attempt on the problem list.
PROBLEM_STATES: frozenset[AttemptState] = frozenset(
    {AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.NEEDS_REVIEW, AttemptState.UNKNOWN}
)


class Actor(StrEnum):
    """Who or what caused a change: the audit log's actor and a transition's cause."""

    CASHIER = "cashier"
    MANAGER = "manager"
    SYSTEM = "system"
    CALLBACK = "callback"
    QUERY = "query"
    EXPIRY = "expiry"


class ShopType(StrEnum):
    """How a shop takes M-Pesa: its own paybill, its own Buy Goods till, or the platform's
    paybill through the relay's broker."""

    PAYBILL = "paybill"
    TILL = "till"
    PLATFORM = "platform"


class VerificationStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


class ShopSecretField(StrEnum):
    """The shop credentials kept in the vault."""

    CONSUMER_KEY = "consumer_key"
    CONSUMER_SECRET = "consumer_secret"  # noqa: S105 - a field name, not a secret
    PASSKEY = "passkey"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class ProblemKind(StrEnum):
    """Things for a manager that are not (yet) tied to an attempt's state."""

    UNMATCHED_CALLBACK = "unmatched_callback"
    UNAPPLIED_EVENT = "unapplied_event"
    SUSPICIOUS_PATTERN = "suspicious_pattern"
