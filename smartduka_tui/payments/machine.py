"""The attempt state machine: DESIGN.md section 3's evidence table, and nothing else.

`decide(evidence, state, ...)` is pure: it says which state a piece of evidence moves an attempt
to, with which flags, or that it changes nothing (the caller logs it). The engine gathers the
evidence (push responses, callbacks, queries, expiry) and writes the decision with its audit
entry in one transaction. COMPLETED is never left.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from smartduka_tui.model import LIVE, AttemptState


class Evidence(StrEnum):
    """One kind of evidence about an attempt (a row, or half a row, of the evidence table)."""

    PUSH_ACCEPTED = "push_accepted"
    """Daraja answered the push with a CheckoutRequestID."""
    PUSH_REFUSED = "push_refused"
    """A Daraja error envelope (any HTTP status), any 4xx, connection refused, connect timeout."""
    PUSH_OUTCOME_UNKNOWN = "push_outcome_unknown"
    """Read timeout or reset after sending, 5xx without an envelope, or CREATED at start-up."""
    CALLBACK_SUCCESS = "callback_success"
    """A matching success callback, confirmation by query off (the callback is the proof)."""
    CONFIRMED_SUCCESS = "confirmed_success"
    """A matching success callback that an STK query with ResultCode 0 confirmed."""
    CONFIRMATION_INCONCLUSIVE = "confirmation_inconclusive"
    """The confirming query is pending or unreachable: stays, shown as confirming."""
    CONFIRMATION_CONTRADICTED = "confirmation_contradicted"
    """A success callback, but the confirming query says a non-zero code."""
    CALLBACK_FAILURE = "callback_failure"
    """A matching callback with a known non-zero ResultCode."""
    CALLBACK_SUSPECT = "callback_suspect"
    """A callback with an unknown code, or that disagrees with its attempt (amount, phone, id)."""
    QUERY_SUCCESS = "query_success"
    """An STK query says ResultCode 0 (no receipt: a later callback brings it)."""
    QUERY_FAILURE = "query_failure"
    """An STK query says a known final non-zero code (1037 included)."""
    QUERY_INCONCLUSIVE = "query_inconclusive"
    """"Being processed", an unknown code, or no answer."""
    EXPIRY = "expiry"
    """Past the attempt expiry, after one last query that settled nothing."""
    SUCCESS_UNBOUND = "success_unbound"
    """A success that nothing Daraja said ties to this attempt: the push response (and so this
    till's own CheckoutRequestID) was lost, or the receipt already pays another attempt."""
    STATEMENT_MATCHED = "statement_matched"
    """Transaction Status by the receipt matched amount, phone and shortcode in the attempt's
    window, and no other sale holds the receipt (issue "M-Pesa statement" brings it)."""
    CUSTOMER_GOT_SMS = "customer_got_sms"
    """The cashier reports the customer received an M-Pesa confirmation SMS."""
    MANAGER_PAID = "manager_paid"
    """A manager checked the statement: paid, with the receipt they give."""
    MANAGER_NOT_PAID = "manager_not_paid"
    """A manager checked the statement: no money moved."""


class Cause(StrEnum):
    """Who or what brought the evidence; written with every transition."""

    PUSH = "push"
    CALLBACK = "callback"
    QUERY = "query"
    EXPIRY = "expiry"
    CASHIER = "cashier"
    MANAGER = "manager"
    STARTUP = "startup"


_SUCCESSES = frozenset({Evidence.CALLBACK_SUCCESS, Evidence.CONFIRMED_SUCCESS})
# Not paid and not under a manager's eye yet: where an unbound success sends an attempt.
_NOT_SETTLED = frozenset(
    {
        AttemptState.CREATED,
        AttemptState.PENDING,
        AttemptState.UNKNOWN,
        AttemptState.FAILED,
        AttemptState.EXPIRED,
    }
)
# Where a manager's resolution ("paid, receipt X" / "not paid") may move an attempt: every
# final state but COMPLETED, which is never left.
_RESOLVABLE = frozenset({AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.NEEDS_REVIEW})

# (evidence, from states) -> to. The plain rows of the table; late and duplicate payments are
# handled in `decide` because they depend on more than the attempt's own state.
TABLE: dict[tuple[Evidence, AttemptState], AttemptState] = {
    (Evidence.PUSH_ACCEPTED, AttemptState.CREATED): AttemptState.PENDING,
    (Evidence.PUSH_REFUSED, AttemptState.CREATED): AttemptState.FAILED,
    (Evidence.PUSH_OUTCOME_UNKNOWN, AttemptState.CREATED): AttemptState.UNKNOWN,
    # Only PENDING: an UNKNOWN attempt has no CheckoutRequestID of this till's own, so nothing
    # ties a success to it (SUCCESS_UNBOUND), and no query can be asked.
    **{(e, AttemptState.PENDING): AttemptState.COMPLETED for e in _SUCCESSES},
    **{(Evidence.CONFIRMATION_CONTRADICTED, s): AttemptState.NEEDS_REVIEW for s in LIVE},
    **{
        (Evidence.CALLBACK_FAILURE, s): AttemptState.FAILED
        for s in (AttemptState.PENDING, AttemptState.UNKNOWN)
    },
    **{(Evidence.CALLBACK_SUSPECT, s): AttemptState.NEEDS_REVIEW for s in LIVE},
    (Evidence.QUERY_SUCCESS, AttemptState.PENDING): AttemptState.COMPLETED,
    (Evidence.QUERY_FAILURE, AttemptState.PENDING): AttemptState.FAILED,
    **{
        (Evidence.EXPIRY, s): AttemptState.EXPIRED
        for s in (AttemptState.PENDING, AttemptState.UNKNOWN)
    },
    **{(Evidence.SUCCESS_UNBOUND, s): AttemptState.NEEDS_REVIEW for s in _NOT_SETTLED},
    **{
        (Evidence.STATEMENT_MATCHED, s): AttemptState.COMPLETED
        for s in (AttemptState.UNKNOWN, AttemptState.NEEDS_REVIEW)
    },
    **{
        (Evidence.CUSTOMER_GOT_SMS, s): AttemptState.NEEDS_REVIEW
        for s in (AttemptState.FAILED, AttemptState.EXPIRED)
    },
    **{(Evidence.MANAGER_PAID, s): AttemptState.COMPLETED for s in _RESOLVABLE},
    **{
        (Evidence.MANAGER_NOT_PAID, s): AttemptState.FAILED
        for s in _RESOLVABLE - {AttemptState.FAILED}
    },
}

VERIFIED_SUCCESSES = frozenset(
    {
        Evidence.CALLBACK_SUCCESS,
        Evidence.CONFIRMED_SUCCESS,
        Evidence.QUERY_SUCCESS,
        Evidence.STATEMENT_MATCHED,
    }
)
"""Evidence that money moved: a late payment for a FAILED or EXPIRED attempt."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What one piece of evidence does to one attempt. `to is None` means no change (log it)."""

    to: AttemptState | None
    late: bool = False
    duplicate_payment: bool = False

    @property
    def changes_state(self) -> bool:
        return self.to is not None


NO_CHANGE = Decision(to=None)


def decide(evidence: Evidence, state: AttemptState, *, sale_paid_by_other: bool) -> Decision:
    """Apply the evidence table to one attempt.

    `sale_paid_by_other`: another attempt of the same sale is already COMPLETED; a verified
    success here is then a duplicate payment (this attempt COMPLETED, flagged; the engine sends
    the sale to review for a refund).
    """
    if state is AttemptState.COMPLETED:
        return NO_CHANGE
    if evidence in VERIFIED_SUCCESSES:
        if state in (AttemptState.FAILED, AttemptState.EXPIRED):
            return Decision(AttemptState.COMPLETED, late=True, duplicate_payment=sale_paid_by_other)
        target = TABLE.get((evidence, state))
        if target is None:
            return NO_CHANGE
        return Decision(target, duplicate_payment=sale_paid_by_other)
    target = TABLE.get((evidence, state))
    return NO_CHANGE if target is None else Decision(target)
