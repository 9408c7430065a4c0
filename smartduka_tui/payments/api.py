"""The payment engine's public surface: what the cashier app, the CLI and tests call.

Faces (the Textual screens, `smartduka pay`, `smartduka reconcile`) depend only on this module:
the read model `PaymentView`, the errors a cashier can act on, the callback event the relay
client hands over, and the `PaymentService` protocol that `PaymentEngine` (in `service.py`)
implements. Nothing here imports Textual or Starlette, and nothing here reveals a secret: a
view carries the phone number (normalised and masked) but never a callback path, token or key.

Its errors:

* PaymentError (Exception)
  * InvalidPaymentInput
  * PaymentRefused
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

from smartduka_tui.model import LIVE, AttemptState

if TYPE_CHECKING:
    from smartduka_tui.payments.sales import SaleDesk

AttemptId = str
"""An attempt's opaque identifier (stable across restarts; show it, never parse it)."""


class Stage(StrEnum):
    """What the cashier's screen says about an attempt right now."""

    SENDING = "sending"
    """The attempt is stored and the push is on its way to M-Pesa."""
    WAITING_FOR_PIN = "waiting_for_pin"
    """M-Pesa accepted the push; the prompt is on the customer's phone (countdown running)."""
    CONFIRMING = "confirming"
    """Checking with M-Pesa: a success awaiting confirmation, or the countdown is over."""
    PAID = "paid"
    PAID_RECEIPT_TO_FOLLOW = "paid_receipt_to_follow"
    """M-Pesa's query says paid; the receipt number arrives with the callback."""
    FAILED = "failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"
    """Conflicting or unclear evidence: a manager decides; never retried from the till."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The push may or may not have reached M-Pesa; the reconciler finds out. Never re-pushed."""


class RetryBlock(StrEnum):
    """Why a retry is not allowed right now (`NONE` when it is)."""

    NONE = "none"
    STILL_LIVE = "still_live"
    """The attempt has no final state yet; retry and "another phone" stay closed."""
    WAIT = "wait"
    """Allowed later: see `RetryRule.not_before`."""
    NEEDS_NO_SMS_CONFIRMATION = "needs_no_sms_confirmation"
    """After EXPIRED: the cashier must confirm the customer got no M-Pesa SMS."""
    NOT_SAFE = "not_safe"
    """The failure code is not safe to charge again (a manager must look)."""
    NEEDS_REVIEW = "needs_review"
    PAID = "paid"
    NO_RETRIES_LEFT = "no_retries_left"


class RetryRule(BaseModel):
    """Whether, when and how the cashier may send a new prompt for the same sale."""

    model_config = ConfigDict(frozen=True)

    allowed_now: bool
    block: RetryBlock
    not_before: datetime | None = Field(
        default=None, description="With block WAIT: the earliest moment a retry is allowed."
    )
    needs_no_sms_confirmation: bool = Field(
        default=False,
        description="The retry needs retry(..., customer_got_no_sms=True) (after EXPIRED).",
    )
    other_phone_now: bool = Field(
        default=False,
        description="With block WAIT: the wait is Daraja's code-17 window for this phone and "
        "amount; another phone may be sent at once.",
    )
    retries_used: int = Field(description="Retries counted (code-17 refusals are not).")
    retries_left: int
    message: str = Field(description="One line for the cashier saying what they may do.")


class PaymentView(BaseModel):
    """One attempt as a screen, the CLI or a test sees it. Immutable; a new view on each change."""

    model_config = ConfigDict(frozen=True)

    attempt_id: AttemptId
    shop_id: str
    till_id: str
    sale_ref: str
    attempt_number: int = Field(
        description="1 for the first push of a sale, 2 for its first retry."
    )
    amount: int = Field(description="Whole Kenya shillings.")
    phone: str = Field(description="Normalised MSISDN, 2547XXXXXXXX or 2541XXXXXXXX.")
    phone_masked: str = Field(description="For screens and logs, e.g. 2547****149.")
    state: AttemptState
    stage: Stage
    checkout_request_id: str | None = None
    receipt: str | None = Field(default=None, description="M-Pesa receipt number, when known.")
    receipt_pending: bool = Field(
        default=False, description="Paid per the STK query; the receipt comes with a callback."
    )
    result_code: str | None = Field(
        default=None, description="Daraja's ResultCode or error code, as text ('0', '1032', ...)."
    )
    cashier_message: str = Field(
        description="Plain words for the cashier: what happened, what next."
    )
    manager_hint: str | None = Field(default=None, description="What a manager should check.")
    retry: RetryRule
    late: bool = Field(default=False, description="Paid after it had been FAILED or EXPIRED.")
    duplicate_payment: bool = Field(
        default=False, description="Paid although another attempt already paid the sale (refund)."
    )
    confirming: bool = Field(
        default=False, description="A success callback arrived; an STK query must confirm it."
    )
    handed_to_reconciler: bool = Field(
        default=False, description="The cashier stopped waiting; the reconciler owns it now."
    )
    created_at: datetime
    push_sent_at: datetime | None = None
    prompt_deadline: datetime | None = Field(
        default=None, description="End of the countdown shown while the prompt is on the phone."
    )
    expires_at: datetime = Field(description="When a still-live attempt is expired.")
    finished_at: datetime | None = Field(
        default=None, description="When it reached a final state (paid, failed, expired, review)."
    )

    @property
    def is_live(self) -> bool:
        return self.state in LIVE

    @property
    def is_paid(self) -> bool:
        return self.state is AttemptState.COMPLETED


class PaymentError(Exception):
    """Base of the errors the payment service raises for a cashier or script to act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidPaymentInput(PaymentError):
    """Bad input to start_payment or retry; nothing was stored. `field` names the argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RefusalReason(StrEnum):
    """Why the service said no to a request that was well-formed."""

    SALE_REF_CONFLICT = "sale_ref_conflict"
    """The sale reference is in use with another amount or phone."""
    PHONE_BUSY = "phone_busy"
    """That phone already has a live attempt on this till."""
    RATE_LIMITED = "rate_limited"
    """This till's push rate limit is reached; see retry_after."""
    DARAJA_UNREACHABLE = "daraja_unreachable"
    """M-Pesa could not be reached before anything was sent; nothing was stored."""
    SHOP_NOT_READY = "shop_not_ready"
    """The shop's M-Pesa setup is missing, disabled or rejected by M-Pesa."""
    ALREADY_PAID = "already_paid"
    RETRY_NOT_ALLOWED = "retry_not_allowed"
    """See the sale's RetryRule: still live, needs review, not safe, or no retries left."""
    RETRY_TOO_SOON = "retry_too_soon"
    NEEDS_NO_SMS_CONFIRMATION = "needs_no_sms_confirmation"
    NO_SUCH_SALE = "no_such_sale"
    NO_SUCH_ATTEMPT = "no_such_attempt"


class PaymentRefused(PaymentError):
    """A well-formed request the service will not carry out; nothing was pushed.

    `retry_after` is whole seconds (by the engine's clock) after which asking again may work.
    """

    def __init__(self, reason: RefusalReason, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class CallbackEvent(BaseModel):
    """One STK callback as the relay client (or a test receiver) hands it to the engine.

    The relay has already checked the signed path (DESIGN.md section 4); `attempt_ref`, `shop_id`
    and `till_id` come from that path, `body` is the raw JSON Daraja POSTed.
    """

    model_config = ConfigDict(frozen=True)

    attempt_ref: str
    shop_id: str
    till_id: str
    body: bytes
    received_at: datetime
    event_id: str | None = Field(default=None, description="The relay feed's id, for acks.")


class CallbackOutcome(StrEnum):
    """What apply_callback did with one event."""

    APPLIED = "applied"
    """The attempt moved (or a flag or receipt was added)."""
    CONFIRMING = "confirming"
    """A success awaits the confirming STK query (query pending or unreachable; retried)."""
    NO_CHANGE = "no_change"
    """A duplicate, a reordered or a stale callback: logged, nothing changed."""
    NEEDS_REVIEW = "needs_review"
    """Mismatch (amount, phone, CheckoutRequestID) or unknown code: sent to a manager."""
    UNMATCHED = "unmatched"
    """Matched no attempt of this till: recorded as a problem payment for the manager."""
    FOREIGN = "foreign"
    """For another shop or till: refused, a security event."""
    MALFORMED = "malformed"
    """Not an STK callback body: refused and logged."""


class CallbackResult(BaseModel):
    """apply_callback's answer: what happened, and the attempt as it is now (if one matched)."""

    model_config = ConfigDict(frozen=True)

    outcome: CallbackOutcome
    view: PaymentView | None = None


class ReconcileReport(BaseModel):
    """One reconciler pass, for `smartduka reconcile` and the manager screens."""

    model_config = ConfigDict(frozen=True)

    examined: int = 0
    queried: int = 0
    settled: int = 0
    expired: int = 0
    still_pending: int = 0
    errors: int = 0


PaymentListener = Callable[[PaymentView], None]
"""Called with the new view each time an attempt changes (in the engine's event loop).

Listeners must be quick and must not raise; the Textual app posts a message from it.
"""


class PaymentService(Protocol):
    """What faces may ask of the payment engine (one shop and one till, fixed at construction)."""

    @property
    def sales(self) -> SaleDesk:
        """This till's sales and their tenders (cash, split, void and refund)."""
        ...

    async def start_payment(self, sale_ref: str, amount: int, phone: str) -> PaymentView:
        """Store an attempt, then send the STK push; returns the view once Daraja has answered
        the push (PENDING, FAILED or UNKNOWN). Listeners see the CREATED view before that.

        The same sale asked again returns its latest attempt (no second prompt); the same sale
        reference with another amount or phone is refused. Raises InvalidPaymentInput (nothing
        stored) or PaymentRefused. Cancelling the caller does not cancel the push.
        """
        ...

    async def retry(
        self, sale_ref: str, phone: str | None = None, customer_got_no_sms: bool = False
    ) -> PaymentView:
        """A new attempt for a sale whose last attempt ended, as its RetryRule allows.

        `phone` sends it to another phone; `customer_got_no_sms` is the cashier's confirmation
        needed after EXPIRED (audited). Raises PaymentRefused with the rule's reason otherwise.
        """
        ...

    async def get(self, attempt_id: AttemptId) -> PaymentView:
        """The attempt's current view. Raises PaymentRefused(NO_SUCH_ATTEMPT)."""
        ...

    async def next_sale_ref(self, holder: str = "till") -> str:
        """The next free sale reference of today at this till (`MMDD` and a counter, e.g.
        `0115007`), numbered here for every face. `holder` (a checkout window, the CLI) gets
        the same number back until a sale, attempt or direct payment uses it, and no other
        holder is handed it meanwhile. RuntimeError past 9,999 sales a day."""
        ...

    async def check_now(self, attempt_id: AttemptId) -> PaymentView:
        """Ask M-Pesa now (STK query) and apply the answer; returns the resulting view."""
        ...

    async def stop_waiting(self, attempt_id: AttemptId) -> PaymentView:
        """The cashier stops watching a live attempt: the reconciler keeps it (audited).

        The state does not change; a later callback or query still settles it.
        """
        ...

    async def report_customer_sms(self, attempt_id: AttemptId) -> PaymentView:
        """The cashier reports the customer got an M-Pesa SMS for an attempt whose outcome
        this till does not know (EXPIRED, or FAILED without its CheckoutRequestID): money may
        have moved, so the attempt goes to a manager (NEEDS_REVIEW), audited. Other attempts
        are left as they are."""
        ...

    async def recent_phones(self, limit: int = 5) -> list[str]:
        """Normalised phones of this till's latest attempts, newest first, without repeats."""
        ...

    async def awaiting_count(self) -> int:
        """How many of this till's attempts are live."""
        ...

    async def recent_payments(self, limit: int = 50) -> list[PaymentView]:
        """This till's live attempts, then its latest others, newest first (the cashier's
        list of the day's sales, to reopen one)."""
        ...

    async def apply_callback(self, event: CallbackEvent) -> CallbackResult:
        """Apply one callback; idempotent, so duplicates and reordering change nothing."""
        ...

    async def reconcile_once(self) -> ReconcileReport:
        """One reconciler pass now: query stale live attempts, expire old ones."""
        ...

    async def on_reconnected(self) -> None:
        """The relay connection is back: run a reconciler pass soon (callbacks may be lost)."""
        ...

    def add_listener(self, listener: PaymentListener) -> Callable[[], None]:
        """Call `listener` with each changed view; returns a function that unsubscribes."""
        ...
