"""The pure state machine against DESIGN.md section 3, written out row by row.

Each expectation below is typed from the design's table, not derived from `machine.TABLE`, so
removing or changing a row in the module makes one of these fail.
"""

from __future__ import annotations

import itertools

import pytest

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.machine import Decision, Evidence, decide

ALL_STATES = list(AttemptState)

# (evidence, from, expected to) for every row; anything not listed must change nothing.
ROWS: list[tuple[Evidence, AttemptState, AttemptState]] = [
    (Evidence.PUSH_ACCEPTED, AttemptState.CREATED, AttemptState.PENDING),
    (Evidence.PUSH_REFUSED, AttemptState.CREATED, AttemptState.FAILED),
    (Evidence.PUSH_OUTCOME_UNKNOWN, AttemptState.CREATED, AttemptState.UNKNOWN),
    (Evidence.CALLBACK_SUCCESS, AttemptState.PENDING, AttemptState.COMPLETED),
    (Evidence.CONFIRMED_SUCCESS, AttemptState.PENDING, AttemptState.COMPLETED),
    (Evidence.CONFIRMATION_CONTRADICTED, AttemptState.CREATED, AttemptState.NEEDS_REVIEW),
    (Evidence.CONFIRMATION_CONTRADICTED, AttemptState.PENDING, AttemptState.NEEDS_REVIEW),
    (Evidence.CONFIRMATION_CONTRADICTED, AttemptState.UNKNOWN, AttemptState.NEEDS_REVIEW),
    (Evidence.CALLBACK_FAILURE, AttemptState.PENDING, AttemptState.FAILED),
    (Evidence.CALLBACK_FAILURE, AttemptState.UNKNOWN, AttemptState.FAILED),
    (Evidence.CALLBACK_SUSPECT, AttemptState.CREATED, AttemptState.NEEDS_REVIEW),
    (Evidence.CALLBACK_SUSPECT, AttemptState.PENDING, AttemptState.NEEDS_REVIEW),
    (Evidence.CALLBACK_SUSPECT, AttemptState.UNKNOWN, AttemptState.NEEDS_REVIEW),
    (Evidence.QUERY_SUCCESS, AttemptState.PENDING, AttemptState.COMPLETED),
    (Evidence.QUERY_FAILURE, AttemptState.PENDING, AttemptState.FAILED),
    (Evidence.EXPIRY, AttemptState.PENDING, AttemptState.EXPIRED),
    (Evidence.EXPIRY, AttemptState.UNKNOWN, AttemptState.EXPIRED),
    # Verified success for a FAILED or EXPIRED attempt: COMPLETED, flagged late.
    (Evidence.CALLBACK_SUCCESS, AttemptState.FAILED, AttemptState.COMPLETED),
    (Evidence.CALLBACK_SUCCESS, AttemptState.EXPIRED, AttemptState.COMPLETED),
    (Evidence.CONFIRMED_SUCCESS, AttemptState.FAILED, AttemptState.COMPLETED),
    (Evidence.CONFIRMED_SUCCESS, AttemptState.EXPIRED, AttemptState.COMPLETED),
    (Evidence.QUERY_SUCCESS, AttemptState.FAILED, AttemptState.COMPLETED),
    (Evidence.QUERY_SUCCESS, AttemptState.EXPIRED, AttemptState.COMPLETED),
    # A success nothing ties to this attempt (no CheckoutRequestID of its own, or a receipt
    # another attempt holds): a manager checks the statement. Never COMPLETED.
    (Evidence.SUCCESS_UNBOUND, AttemptState.CREATED, AttemptState.NEEDS_REVIEW),
    (Evidence.SUCCESS_UNBOUND, AttemptState.PENDING, AttemptState.NEEDS_REVIEW),
    (Evidence.SUCCESS_UNBOUND, AttemptState.UNKNOWN, AttemptState.NEEDS_REVIEW),
    (Evidence.SUCCESS_UNBOUND, AttemptState.FAILED, AttemptState.NEEDS_REVIEW),
    (Evidence.SUCCESS_UNBOUND, AttemptState.EXPIRED, AttemptState.NEEDS_REVIEW),
    # Transaction Status by the receipt (the statement issue) binds a lost push's payment.
    (Evidence.STATEMENT_MATCHED, AttemptState.UNKNOWN, AttemptState.COMPLETED),
    (Evidence.STATEMENT_MATCHED, AttemptState.NEEDS_REVIEW, AttemptState.COMPLETED),
    (Evidence.STATEMENT_MATCHED, AttemptState.FAILED, AttemptState.COMPLETED),
    (Evidence.STATEMENT_MATCHED, AttemptState.EXPIRED, AttemptState.COMPLETED),
    # The customer says an M-Pesa SMS arrived: a manager checks before anyone charges again.
    (Evidence.CUSTOMER_GOT_SMS, AttemptState.FAILED, AttemptState.NEEDS_REVIEW),
    (Evidence.CUSTOMER_GOT_SMS, AttemptState.EXPIRED, AttemptState.NEEDS_REVIEW),
    # A manager's resolution is a real transition.
    (Evidence.MANAGER_PAID, AttemptState.FAILED, AttemptState.COMPLETED),
    (Evidence.MANAGER_PAID, AttemptState.EXPIRED, AttemptState.COMPLETED),
    (Evidence.MANAGER_PAID, AttemptState.NEEDS_REVIEW, AttemptState.COMPLETED),
    (Evidence.MANAGER_NOT_PAID, AttemptState.EXPIRED, AttemptState.FAILED),
    (Evidence.MANAGER_NOT_PAID, AttemptState.NEEDS_REVIEW, AttemptState.FAILED),
]
EXPECTED = {(e, frm): to for e, frm, to in ROWS}


@pytest.mark.parametrize(("evidence", "frm", "to"), ROWS)
def test_each_row_moves_as_the_design_says(
    evidence: Evidence, frm: AttemptState, to: AttemptState
) -> None:
    decision = decide(evidence, frm, sale_paid_by_other=False)
    assert decision.to is to


NOT_IN_TABLE = [
    pair for pair in itertools.product(list(Evidence), ALL_STATES) if pair not in EXPECTED
]


@pytest.mark.parametrize(("evidence", "frm"), NOT_IN_TABLE)
def test_anything_not_in_the_table_changes_nothing(evidence: Evidence, frm: AttemptState) -> None:
    assert decide(evidence, frm, sale_paid_by_other=False) == Decision(to=None)


@pytest.mark.parametrize("evidence", list(Evidence))
@pytest.mark.parametrize("paid_elsewhere", [False, True])
def test_completed_is_never_left(evidence: Evidence, paid_elsewhere: bool) -> None:
    assert decide(evidence, AttemptState.COMPLETED, sale_paid_by_other=paid_elsewhere).to is None


@pytest.mark.parametrize("frm", [AttemptState.FAILED, AttemptState.EXPIRED])
@pytest.mark.parametrize(
    "evidence", [Evidence.CALLBACK_SUCCESS, Evidence.CONFIRMED_SUCCESS, Evidence.QUERY_SUCCESS]
)
def test_success_after_failed_or_expired_is_flagged_late(
    evidence: Evidence, frm: AttemptState
) -> None:
    decision = decide(evidence, frm, sale_paid_by_other=False)
    assert decision.late and not decision.duplicate_payment


@pytest.mark.parametrize("frm", [AttemptState.PENDING, AttemptState.FAILED, AttemptState.EXPIRED])
def test_success_for_a_sale_paid_elsewhere_is_flagged_duplicate(frm: AttemptState) -> None:
    decision = decide(Evidence.CONFIRMED_SUCCESS, frm, sale_paid_by_other=True)
    assert decision.to is AttemptState.COMPLETED
    assert decision.duplicate_payment
    assert decision.late is (frm in (AttemptState.FAILED, AttemptState.EXPIRED))


@pytest.mark.parametrize("evidence", list(Evidence))
def test_needs_review_is_left_only_by_a_manager_or_the_statement(evidence: Evidence) -> None:
    # No callback or query moves NEEDS_REVIEW (a success there is logged).
    moved = decide(evidence, AttemptState.NEEDS_REVIEW, sale_paid_by_other=False).to is not None
    assert moved is (
        evidence in (Evidence.MANAGER_PAID, Evidence.MANAGER_NOT_PAID, Evidence.STATEMENT_MATCHED)
    )
