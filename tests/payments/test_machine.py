"""The pure state machine against DESIGN.md section 3, written out row by row.

Each expectation below is typed from the design's table, not derived from `machine.TABLE`, so
removing or changing a row in the module makes one of these fail.
"""

from __future__ import annotations

import itertools

import pytest

from smartduka_tui.payments.api import AttemptState as S
from smartduka_tui.payments.machine import Decision, Evidence, decide

E = Evidence
ALL_STATES = list(S)

# (evidence, from, expected to) for every row; anything not listed must change nothing.
ROWS: list[tuple[Evidence, S, S]] = [
    (E.PUSH_ACCEPTED, S.CREATED, S.PENDING),
    (E.PUSH_REFUSED, S.CREATED, S.FAILED),
    (E.PUSH_OUTCOME_UNKNOWN, S.CREATED, S.UNKNOWN),
    (E.CALLBACK_SUCCESS, S.PENDING, S.COMPLETED),
    (E.CONFIRMED_SUCCESS, S.PENDING, S.COMPLETED),
    (E.CONFIRMATION_CONTRADICTED, S.CREATED, S.NEEDS_REVIEW),
    (E.CONFIRMATION_CONTRADICTED, S.PENDING, S.NEEDS_REVIEW),
    (E.CONFIRMATION_CONTRADICTED, S.UNKNOWN, S.NEEDS_REVIEW),
    (E.CALLBACK_FAILURE, S.PENDING, S.FAILED),
    (E.CALLBACK_FAILURE, S.UNKNOWN, S.FAILED),
    (E.CALLBACK_SUSPECT, S.CREATED, S.NEEDS_REVIEW),
    (E.CALLBACK_SUSPECT, S.PENDING, S.NEEDS_REVIEW),
    (E.CALLBACK_SUSPECT, S.UNKNOWN, S.NEEDS_REVIEW),
    (E.QUERY_SUCCESS, S.PENDING, S.COMPLETED),
    (E.QUERY_FAILURE, S.PENDING, S.FAILED),
    (E.EXPIRY, S.PENDING, S.EXPIRED),
    (E.EXPIRY, S.UNKNOWN, S.EXPIRED),
    # Verified success for a FAILED or EXPIRED attempt: COMPLETED, flagged late.
    (E.CALLBACK_SUCCESS, S.FAILED, S.COMPLETED),
    (E.CALLBACK_SUCCESS, S.EXPIRED, S.COMPLETED),
    (E.CONFIRMED_SUCCESS, S.FAILED, S.COMPLETED),
    (E.CONFIRMED_SUCCESS, S.EXPIRED, S.COMPLETED),
    (E.QUERY_SUCCESS, S.FAILED, S.COMPLETED),
    (E.QUERY_SUCCESS, S.EXPIRED, S.COMPLETED),
    # A success nothing ties to this attempt (no CheckoutRequestID of its own, or a receipt
    # another attempt holds): a manager checks the statement. Never COMPLETED.
    (E.SUCCESS_UNBOUND, S.CREATED, S.NEEDS_REVIEW),
    (E.SUCCESS_UNBOUND, S.PENDING, S.NEEDS_REVIEW),
    (E.SUCCESS_UNBOUND, S.UNKNOWN, S.NEEDS_REVIEW),
    (E.SUCCESS_UNBOUND, S.FAILED, S.NEEDS_REVIEW),
    (E.SUCCESS_UNBOUND, S.EXPIRED, S.NEEDS_REVIEW),
    # Transaction Status by the receipt (the statement issue) binds a lost push's payment.
    (E.STATEMENT_MATCHED, S.UNKNOWN, S.COMPLETED),
    (E.STATEMENT_MATCHED, S.NEEDS_REVIEW, S.COMPLETED),
    (E.STATEMENT_MATCHED, S.FAILED, S.COMPLETED),
    (E.STATEMENT_MATCHED, S.EXPIRED, S.COMPLETED),
    # The customer says an M-Pesa SMS arrived: a manager checks before anyone charges again.
    (E.CUSTOMER_GOT_SMS, S.FAILED, S.NEEDS_REVIEW),
    (E.CUSTOMER_GOT_SMS, S.EXPIRED, S.NEEDS_REVIEW),
    # A manager's resolution is a real transition.
    (E.MANAGER_PAID, S.FAILED, S.COMPLETED),
    (E.MANAGER_PAID, S.EXPIRED, S.COMPLETED),
    (E.MANAGER_PAID, S.NEEDS_REVIEW, S.COMPLETED),
    (E.MANAGER_NOT_PAID, S.EXPIRED, S.FAILED),
    (E.MANAGER_NOT_PAID, S.NEEDS_REVIEW, S.FAILED),
]
EXPECTED = {(e, frm): to for e, frm, to in ROWS}


@pytest.mark.parametrize(("evidence", "frm", "to"), ROWS)
def test_each_row_moves_as_the_design_says(evidence: Evidence, frm: S, to: S) -> None:
    decision = decide(evidence, frm, sale_paid_by_other=False)
    assert decision.to is to


NOT_IN_TABLE = [pair for pair in itertools.product(list(E), ALL_STATES) if pair not in EXPECTED]


@pytest.mark.parametrize(("evidence", "frm"), NOT_IN_TABLE)
def test_anything_not_in_the_table_changes_nothing(evidence: Evidence, frm: S) -> None:
    assert decide(evidence, frm, sale_paid_by_other=False) == Decision(to=None)


@pytest.mark.parametrize("evidence", list(E))
@pytest.mark.parametrize("paid_elsewhere", [False, True])
def test_completed_is_never_left(evidence: Evidence, paid_elsewhere: bool) -> None:
    assert decide(evidence, S.COMPLETED, sale_paid_by_other=paid_elsewhere).to is None


@pytest.mark.parametrize("frm", [S.FAILED, S.EXPIRED])
@pytest.mark.parametrize("evidence", [E.CALLBACK_SUCCESS, E.CONFIRMED_SUCCESS, E.QUERY_SUCCESS])
def test_success_after_failed_or_expired_is_flagged_late(evidence: Evidence, frm: S) -> None:
    decision = decide(evidence, frm, sale_paid_by_other=False)
    assert decision.late and not decision.duplicate_payment


@pytest.mark.parametrize("frm", [S.PENDING, S.FAILED, S.EXPIRED])
def test_success_for_a_sale_paid_elsewhere_is_flagged_duplicate(frm: S) -> None:
    decision = decide(E.CONFIRMED_SUCCESS, frm, sale_paid_by_other=True)
    assert decision.to is S.COMPLETED
    assert decision.duplicate_payment
    assert decision.late is (frm in (S.FAILED, S.EXPIRED))


@pytest.mark.parametrize("evidence", list(E))
def test_needs_review_is_left_only_by_a_manager_or_the_statement(evidence: Evidence) -> None:
    # No callback or query moves NEEDS_REVIEW (a success there is logged).
    moved = decide(evidence, S.NEEDS_REVIEW, sale_paid_by_other=False).to is not None
    assert moved is (evidence in (E.MANAGER_PAID, E.MANAGER_NOT_PAID, E.STATEMENT_MATCHED))
