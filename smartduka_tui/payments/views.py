"""Building `PaymentView`s: stage, retry rule and messages, from an attempt and its evidence.

Pure functions over store records, the result-code advice and the clock's `now`, so the rules
that decide what a cashier may do (DESIGN.md section 3, retries) are testable on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from smartduka_tui.config import Settings
from smartduka_tui.mpesa.kenya_time import kenya_clock
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.payments.api import (
    AttemptState,
    PaymentView,
    RetryBlock,
    RetryRule,
    Stage,
)
from smartduka_tui.payments.codes import ResultInfo, advise
from smartduka_tui.store.records import Attempt, AttemptFlag, AuditEntry

S = AttemptState

# Audit actions the engine writes beside the store's own attempt.* entries.
AWAITING_CONFIRMATION = "evidence.awaiting_confirmation"
CONFIRMATION_SETTLED = "evidence.confirmation_settled"
HANDED_TO_RECONCILER = "attempt.handed_to_reconciler"


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """What the audit log says about an attempt beyond its row."""

    confirming_receipt: str | None = None
    """A success callback's receipt, awaiting the confirming query (None: nothing awaits)."""
    confirming: bool = False
    handed_to_reconciler: bool = False
    finished_at: datetime | None = None


def read_facts(attempt: Attempt, entries: Sequence[AuditEntry]) -> AuditFacts:
    """Fold one attempt's audit entries (any order) into what the view needs."""
    confirming = False
    receipt: str | None = None
    handed = False
    entered_state_at: datetime | None = None
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.action == AWAITING_CONFIRMATION:
            confirming = True
            value = entry.detail.get("receipt")
            receipt = value if isinstance(value, str) else None
        elif entry.action == CONFIRMATION_SETTLED:
            confirming, receipt = False, None
        elif entry.action == HANDED_TO_RECONCILER:
            handed = True
        elif entry.action == "attempt.transition" and entry.detail.get("to") == attempt.state:
            entered_state_at = entry.at
    if attempt.state in (S.COMPLETED, S.NEEDS_REVIEW):
        confirming, receipt = False, None
    finished_at: datetime | None = None
    if attempt.state is S.COMPLETED:
        finished_at = attempt.completed_at
    elif not attempt.is_live:
        finished_at = entered_state_at or attempt.updated_at
    return AuditFacts(
        confirming_receipt=receipt,
        confirming=confirming,
        handed_to_reconciler=handed,
        finished_at=finished_at,
    )


def stage_of(attempt: Attempt, evidence: AuditFacts, now: datetime, countdown_s: int) -> Stage:
    state = attempt.state
    if state is S.CREATED:
        return Stage.SENDING
    if state is S.PENDING:
        if evidence.confirming:
            return Stage.CONFIRMING
        deadline = prompt_deadline(attempt, countdown_s)
        return Stage.WAITING_FOR_PIN if deadline and now < deadline else Stage.CONFIRMING
    if state is S.UNKNOWN:
        return Stage.CONFIRMING if evidence.confirming else Stage.OUTCOME_UNKNOWN
    if state is S.COMPLETED:
        return Stage.PAID if attempt.receipt_number else Stage.PAID_RECEIPT_TO_FOLLOW
    if state is S.FAILED:
        return Stage.FAILED
    if state is S.EXPIRED:
        return Stage.EXPIRED
    return Stage.NEEDS_REVIEW


def prompt_deadline(attempt: Attempt, countdown_s: int) -> datetime | None:
    if attempt.push_sent_at is None or attempt.state is S.CREATED:
        return None
    return attempt.push_sent_at + timedelta(seconds=countdown_s)


def retry_rule(
    latest: Attempt,
    sale: Sequence[Attempt],
    evidence: AuditFacts,
    now: datetime,
    settings: Settings,
    *,
    same_phone: bool = True,
) -> RetryRule:
    """May the cashier send a new prompt for `latest`'s sale now (DESIGN.md section 3)?

    `same_phone`: the retry goes to the same phone; a code's own wait (17, "unable to lock
    subscriber") is about that phone, so another phone only waits the general retry delay.
    """
    used = latest.attempt_number - 1
    left = max(0, settings.limits.max_retries - used)

    def rule(block: RetryBlock, message: str, **extra: object) -> RetryRule:
        return RetryRule(
            allowed_now=block is RetryBlock.NONE,
            block=block,
            retries_used=used,
            retries_left=left,
            message=message,
            **extra,
        )

    if any(a.state is S.COMPLETED for a in sale):
        if any(a.flags & AttemptFlag.DUPLICATE_PAYMENT for a in sale):
            return rule(RetryBlock.NEEDS_REVIEW, "Paid twice: a manager must refund one payment.")
        return rule(RetryBlock.PAID, "This sale is paid.")
    if latest.is_live:
        return rule(
            RetryBlock.STILL_LIVE, "Wait for M-Pesa's answer before sending another request."
        )
    if latest.state is S.NEEDS_REVIEW:
        return rule(RetryBlock.NEEDS_REVIEW, "A manager must check this payment first.")
    if left == 0:
        return rule(
            RetryBlock.NO_RETRIES_LEFT,
            f"No retries left ({settings.limits.max_retries} used); take another payment method.",
        )
    finished = evidence.finished_at or latest.updated_at
    delay = timedelta(seconds=settings.timings.retry_delay_s)
    if latest.state is S.EXPIRED:
        not_before = finished + delay
        return rule(
            RetryBlock.NEEDS_NO_SMS_CONFIRMATION,
            "Ask the customer: did an M-Pesa confirmation SMS arrive? Retry only if it did not.",
            needs_no_sms_confirmation=True,
            not_before=not_before if now < not_before else None,
        )
    advice = advise(latest.result_code, latest.result_desc)
    if not advice.safe_to_charge_again:
        return rule(RetryBlock.NOT_SAFE, advice.cashier_message)
    if same_phone and advice.retry_not_before is not None:
        delay = max(delay, advice.retry_not_before)
    not_before = finished + delay
    if now < not_before:
        return rule(
            RetryBlock.WAIT,
            f"You can retry at {kenya_clock(not_before)} (Kenya time).",
            not_before=not_before,
        )
    return rule(RetryBlock.NONE, "You can send the request again.")


_LIVE_MESSAGES = {
    Stage.SENDING: "Sending the payment request to M-Pesa.",
    Stage.WAITING_FOR_PIN: "Ask the customer to enter their M-Pesa PIN on their phone.",
    Stage.CONFIRMING: "Checking with M-Pesa; this can take a minute.",
    Stage.OUTCOME_UNKNOWN: (
        "M-Pesa did not answer in time; the request may have reached the customer. Do not send "
        "it again: SmartDuka keeps checking."
    ),
}


def _messages(attempt: Attempt, stage: Stage, advice: ResultInfo) -> tuple[str, str | None]:
    if stage in _LIVE_MESSAGES:
        return _LIVE_MESSAGES[stage], None
    if stage is Stage.PAID:
        return f"Paid. M-Pesa receipt {attempt.receipt_number}.", None
    if stage is Stage.PAID_RECEIPT_TO_FOLLOW:
        return "Paid (confirmed by M-Pesa). The receipt number will follow.", None
    if stage is Stage.EXPIRED:
        return (
            "No answer from M-Pesa in time. Ask whether an M-Pesa SMS arrived before retrying.",
            "Expired without a result; a late payment would still be recorded.",
        )
    if stage is Stage.NEEDS_REVIEW:
        return (
            "This payment needs a manager. Do not take payment again for this sale yet.",
            attempt.review_note
            or advice.manager_hint
            or "AuditFacts about this payment disagrees.",
        )
    return advice.cashier_message, advice.manager_hint


def build_view(
    attempt: Attempt,
    entries: Sequence[AuditEntry],
    sale: Sequence[Attempt],
    latest_entries: Sequence[AuditEntry],
    now: datetime,
    settings: Settings,
) -> PaymentView:
    """The view of one attempt: `entries` is its audit, `sale` every attempt of its sale and
    `latest_entries` the audit of the sale's latest attempt (whose end decides the retry)."""
    evidence = read_facts(attempt, entries)
    stage = stage_of(attempt, evidence, now, settings.timings.prompt_countdown_s)
    advice = advise(attempt.result_code, attempt.result_desc)
    cashier_message, manager_hint = _messages(attempt, stage, advice)
    if attempt.flags & AttemptFlag.DUPLICATE_PAYMENT:
        manager_hint = "The sale was already paid by another attempt: refund one payment."
    latest = max(sale, key=lambda a: a.attempt_number) if sale else attempt
    latest_evidence = evidence if latest.id == attempt.id else read_facts(latest, latest_entries)
    return PaymentView(
        attempt_id=str(attempt.id),
        shop_id=attempt.shop_id,
        till_id=attempt.till_id,
        sale_ref=attempt.sale_ref,
        attempt_number=attempt.attempt_number,
        amount=attempt.amount,
        phone=attempt.phone,
        phone_masked=mask_phone(attempt.phone),
        state=attempt.state,
        stage=stage,
        checkout_request_id=attempt.checkout_request_id,
        receipt=attempt.receipt_number,
        receipt_pending=attempt.state is S.COMPLETED and attempt.receipt_number is None,
        result_code=attempt.result_code,
        cashier_message=cashier_message,
        manager_hint=manager_hint,
        retry=retry_rule(latest, sale, latest_evidence, now, settings),
        late=bool(attempt.flags & AttemptFlag.LATE),
        duplicate_payment=bool(attempt.flags & AttemptFlag.DUPLICATE_PAYMENT),
        confirming=evidence.confirming,
        handed_to_reconciler=evidence.handed_to_reconciler,
        created_at=attempt.created_at,
        push_sent_at=attempt.push_sent_at,
        prompt_deadline=prompt_deadline(attempt, settings.timings.prompt_countdown_s),
        expires_at=attempt.expires_at,
        finished_at=evidence.finished_at,
    )
