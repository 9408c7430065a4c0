"""The till's vocabulary: the words every layer uses, defined once (like Starlette's `types.py`).

A leaf module: it imports nothing from the project, so the store, the engine, the faces, the
relay and the simulator can all import it. The stored values of these enums are part of the
database and the audit log: rename a member if you must, never its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntFlag, StrEnum
from typing import Protocol


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
    REVERSED = 32
    """M-Pesa's reversal result (code 0) gave the money back; set only on that result."""


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
    ABANDONED_SALE = "abandoned_sale"
    """A sale left part paid (cleared, or found open at start-up): money taken, goods owed."""


class TenderKind(StrEnum):
    """How part of a sale was paid: a row of `sale_tenders` and a line of its receipt."""

    CASH = "CASH"
    MPESA_STK = "MPESA_STK"
    MPESA_C2B = "MPESA_C2B"

    @property
    def label(self) -> str:
        return _TENDER_LABELS[self]

    @property
    def is_mpesa(self) -> bool:
        return self is not TenderKind.CASH


_TENDER_LABELS = {
    TenderKind.CASH: "Cash",
    TenderKind.MPESA_STK: "M-Pesa",
    TenderKind.MPESA_C2B: "M-Pesa (direct)",
}


class _Tendered(Protocol):
    @property
    def kind(self) -> TenderKind: ...
    @property
    def amount(self) -> int: ...


class TenderSums:
    """What a sale's tenders add up to: one definition for the store's `Sale` and the faces'
    `SaleView`, each a dataclass with a `total` and its `tenders`."""

    __slots__ = ()
    total: int
    tenders: Sequence[_Tendered]

    @property
    def paid(self) -> int:
        """What the tenders pay toward the total so far."""
        return sum(tender.amount for tender in self.tenders)

    @property
    def owed(self) -> int:
        """What is still to pay (0 once the tenders cover the total)."""
        return max(self.total - self.paid, 0)

    @property
    def cash(self) -> int:
        return sum(t.amount for t in self.tenders if t.kind is TenderKind.CASH)

    @property
    def mpesa(self) -> int:
        return sum(t.amount for t in self.tenders if t.kind.is_mpesa)


class SaleState(StrEnum):
    """A sale's state: OPEN until its tenders add up to the total (PAID), or it is left part
    paid (ABANDONED); a paid cash sale may be VOIDED or REFUNDED by a manager."""

    OPEN = "OPEN"
    PAID = "PAID"
    ABANDONED = "ABANDONED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


# Sales whose money stays in the day's figures (a voided or refunded sale's cash went back).
COUNTED_SALE_STATES: frozenset[SaleState] = frozenset(
    {SaleState.OPEN, SaleState.PAID, SaleState.ABANDONED}
)


class AuditAction(StrEnum):
    """What an audit-log entry records (its `action` column). Writers pass a member, so a
    renamed action fails type checking where the manager's words read it."""

    # An attempt's row.
    ATTEMPT_CREATED = "attempt.created"
    ATTEMPT_TRANSITION = "attempt.transition"
    ATTEMPT_UPDATED = "attempt.updated"
    ATTEMPT_FLAGGED = "attempt.flagged"
    ATTEMPT_RESOLVED = "attempt.resolved"
    ATTEMPT_RETRY = "attempt.retry"
    ATTEMPT_HANDED_TO_RECONCILER = "attempt.handed_to_reconciler"

    # Evidence that moved nothing; a callback's claim waiting for its confirming query, settled.
    EVIDENCE_NO_CHANGE = "evidence.no_change"
    EVIDENCE_AWAITING_CONFIRMATION = "evidence.awaiting_confirmation"
    EVIDENCE_CONFIRMATION_SETTLED = "evidence.confirmation_settled"

    # A callback for another shop or till (a security event).
    CALLBACK_FOREIGN = "callback.foreign"

    # Problem records for the manager.
    PROBLEM_RECORDED = "problem.recorded"
    PROBLEM_RESOLVED = "problem.resolved"
    PROBLEM_UPDATED = "problem.updated"

    # Shops and their M-Pesa settings.
    SHOP_ADDED = "shop.added"
    SHOP_UPDATED = "shop.updated"
    SHOP_VERIFICATION = "shop.verification"
    SHOP_VERIFICATION_UNREACHABLE = "shop.verification_unreachable"
    SHOP_INITIATOR_SET = "shop.initiator_set"

    # Tills enrolled in the vault.
    TILL_ENROLLED = "till.enrolled"
    TILL_RE_ENROLLED = "till.re_enrolled"
    TILL_CALLBACK_SECRET_ADDED = "till.callback_secret_added"  # noqa: S105 - an action, not a secret

    # The manager's PIN and sessions.
    MANAGER_SIGN_IN = "manager.sign_in"
    MANAGER_SIGN_IN_FAILED = "manager.sign_in_failed"
    MANAGER_SIGN_IN_REFUSED = "manager.sign_in_refused"
    MANAGER_LOCKED_OUT = "manager.locked_out"
    MANAGER_SIGNED_OUT = "manager.signed_out"
    MANAGER_PIN_SET = "manager.pin_set"
    MANAGER_PIN_CHANGED = "manager.pin_changed"
    MANAGER_PIN_RESET = "manager.pin_reset"
    MANAGER_PIN_COUNTERS_SEALED = "manager.pin_counters_sealed"
    MANAGER_EXPORT = "manager.export"
    MANAGER_RECHECK = "manager.recheck"

    # Encryption keys.
    KEYS_ROTATION_STARTED = "keys.rotation_started"
    KEYS_ROTATION_FINISHED = "keys.rotation_finished"

    # Direct (C2B) payments.
    C2B_RECEIVED = "c2b.received"
    C2B_ATTACHED = "c2b.attached"
    C2B_REVERSED = "c2b.reversed"

    # Pull Transactions (the M-Pesa statement).
    PULL_ROWS_ADDED = "pull.rows_added"
    PULL_REGISTERED = "pull.registered"
    PULL_DONE = "pull.done"
    PULL_FAILED = "pull.failed"

    # Receipts: a copy printed again (the first print of a sale is not audited).
    RECEIPT_REPRINTED = "receipt.reprinted"

    # Shifts: opened with a float, closed with the cash counted (the Z report); the X report
    # (mid-shift) changes nothing but is audited when viewed or printed, as is a Z printed
    # again or exported.
    SHIFT_OPENED = "shift.opened"
    SHIFT_CLOSED = "shift.closed"
    SHIFT_X_VIEWED = "shift.x_viewed"
    SHIFT_REPORT_PRINTED = "shift.report_printed"
    SHIFT_REPORT_EXPORTED = "shift.report_exported"

    # Transaction Status and Reversal requests (the initiator APIs) and their results.
    STATEMENT_TRANSACTION_STATUS_SENT = "statement.transaction_status_sent"
    STATEMENT_REVERSAL_SENT = "statement.reversal_sent"
    STATEMENT_REQUEST_REFUSED = "statement.request_refused"
    STATEMENT_RESULT = "statement.result"

    # Sales and their tenders (cash, M-Pesa), voids and refunds.
    SALE_OPENED = "sale.opened"
    SALE_TENDER_ADDED = "sale.tender_added"
    SALE_PAID = "sale.paid"
    SALE_ABANDONED = "sale.abandoned"
    SALE_VOIDED = "sale.voided"
    SALE_REFUNDED = "sale.refunded"

    # The database.
    STORE_RESTORED = "store.restored"
