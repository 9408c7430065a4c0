"""Building `PaymentView`s: stage, retry rule and messages, from an attempt and its sale.

Pure functions over store rows (the attempt row holds its whole truth, so no audit entries
are folded), the result-code advice and the clock's `now`, so the rules that decide what a
cashier may do (DESIGN.md section 3, retries) are testable on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from smartduka_tui.config import Settings
from smartduka_tui.model import AttemptFlag, AttemptState
from smartduka_tui.mpesa.kenya_time import kenya_clock
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.payments.api import PaymentView, RetryBlock, RetryRule, Stage
from smartduka_tui.payments.codes import RULE_LIMITED, ResultInfo, advise
from smartduka_tui.store.records import Attempt

UNBOUND_SUCCESS = "M-Pesa says a payment was made; check the statement before handing over goods."
"""What cashier and manager read when a success cannot be tied to this attempt."""

RULE_LIMITED_WINDOW = timedelta(minutes=2)
"""Daraja's code 17: the same amount to the same phone is refused this long after a prompt."""


def needs_no_sms_confirmation(attempt: Attempt) -> bool:
    """EXPIRED, or FAILED although the push may have reached the phone and this till never
    learnt its CheckoutRequestID (so nothing Daraja said about it can be checked)."""
    if attempt.state is AttemptState.EXPIRED:
        return True
    return (
        attempt.state is AttemptState.FAILED
        and attempt.checkout_request_id is None
        and attempt.previous_state is not AttemptState.CREATED
    )


def rule_limited_until(sale: Sequence[Attempt], phone: str, amount: int) -> datetime | None:
    """When Daraja's code-17 window ends for `amount` to `phone`, from this till's own pushes:
    two minutes after the last prompt M-Pesa accepted (a push it refused with 17 opened none)."""
    prompts = [
        a.push_sent_at
        for a in sale
        if a.phone == phone
        and a.amount == amount
        and a.push_sent_at is not None
        and a.checkout_request_id is not None
        and a.result_code != RULE_LIMITED
    ]
    return max(prompts) + RULE_LIMITED_WINDOW if prompts else None


def retries_used(sale: Sequence[Attempt]) -> int:
    """Retries that count against the limit: Daraja's code 17 refusals never sent a prompt."""
    return sum(1 for a in sale if a.attempt_number > 1 and a.result_code != RULE_LIMITED)


def stage_of(attempt: Attempt, now: datetime, countdown_s: int) -> Stage:
    state = attempt.state
    if state is AttemptState.CREATED:
        return Stage.SENDING
    if state is AttemptState.PENDING:
        if attempt.confirming is not None:
            return Stage.CONFIRMING
        deadline = prompt_deadline(attempt, countdown_s)
        return Stage.WAITING_FOR_PIN if deadline and now < deadline else Stage.CONFIRMING
    if state is AttemptState.UNKNOWN:
        return Stage.OUTCOME_UNKNOWN
    if state is AttemptState.COMPLETED:
        return Stage.PAID if attempt.receipt_number else Stage.PAID_RECEIPT_TO_FOLLOW
    if state is AttemptState.FAILED:
        return Stage.FAILED
    if state is AttemptState.EXPIRED:
        return Stage.EXPIRED
    return Stage.NEEDS_REVIEW


def prompt_deadline(attempt: Attempt, countdown_s: int) -> datetime | None:
    if attempt.push_sent_at is None or attempt.state is AttemptState.CREATED:
        return None
    return attempt.push_sent_at + timedelta(seconds=countdown_s)


def retry_rule(
    latest: Attempt,
    sale: Sequence[Attempt],
    now: datetime,
    settings: Settings,
    *,
    phone: str | None = None,
) -> RetryRule:
    """May the cashier send a new prompt for `latest`'s sale now (DESIGN.md section 3)?

    `phone`: where the retry goes (default: the same phone). A code's own wait (17, "unable to
    lock subscriber") is about that phone, so another phone only waits the general retry delay.
    """
    used = retries_used(sale)
    left = max(0, settings.limits.max_retries - used)
    same_phone = phone is None or phone == latest.phone

    def rule(block: RetryBlock, message: str, **extra: object) -> RetryRule:
        return RetryRule(
            allowed_now=block is RetryBlock.NONE,
            block=block,
            retries_used=used,
            retries_left=left,
            message=message,
            **extra,
        )

    if any(a.state is AttemptState.COMPLETED for a in sale):
        if any(a.flags & AttemptFlag.DUPLICATE_PAYMENT for a in sale):
            return rule(RetryBlock.NEEDS_REVIEW, "Paid twice: a manager must refund one payment.")
        return rule(RetryBlock.PAID, "This sale is paid.")
    if latest.is_live:
        return rule(
            RetryBlock.STILL_LIVE, "Wait for M-Pesa's answer before sending another request."
        )
    if latest.state is AttemptState.NEEDS_REVIEW:
        return rule(RetryBlock.NEEDS_REVIEW, "A manager must check this payment first.")
    if left == 0:
        return rule(
            RetryBlock.NO_RETRIES_LEFT,
            f"No retries left ({settings.limits.max_retries} used); take another payment method.",
        )
    finished = latest.finished_at or latest.updated_at
    not_before = finished + timedelta(seconds=settings.timings.retry_delay_s)
    if needs_no_sms_confirmation(latest):
        return rule(
            RetryBlock.NEEDS_NO_SMS_CONFIRMATION,
            "The outcome is unknown. Ask the customer: did an M-Pesa confirmation SMS arrive? "
            "Retry only if it did not.",
            needs_no_sms_confirmation=True,
            not_before=not_before if now < not_before else None,
        )
    advice = advise(latest.result_code, latest.result_desc)
    if not advice.safe_to_charge_again:
        return rule(RetryBlock.NOT_SAFE, advice.cashier_message)
    rule_limited = False
    if same_phone:
        if advice.retry_not_before is not None and latest.result_code != RULE_LIMITED:
            not_before = max(not_before, finished + advice.retry_not_before)
        window_end = rule_limited_until(sale, latest.phone, latest.amount)
        if window_end is None and latest.result_code == RULE_LIMITED:
            # The prompt that opened the window was not this sale's: count from the refusal.
            window_end = finished + RULE_LIMITED_WINDOW
        if window_end is not None and window_end > not_before:
            not_before, rule_limited = window_end, True
    if now < not_before:
        if rule_limited:
            left_s = int((not_before - now).total_seconds() + 0.999)
            message = (
                "M-Pesa refuses the same amount to the same phone within 2 minutes: wait "
                f"{left_s // 60}:{left_s % 60:02d} (until {kenya_clock(not_before)} Kenya time), "
                "or send it to another phone now."
            )
        else:
            message = f"You can retry at {kenya_clock(not_before)} (Kenya time)."
        return rule(
            RetryBlock.WAIT,
            message,
            not_before=not_before,
            other_phone_now=rule_limited,
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
        return (
            "Paid, receipt pending: M-Pesa's receipt number has not arrived yet; it is filled "
            "in when it does.",
            "Receipt pending: compare with the M-Pesa statement if it does not arrive.",
        )
    if stage is Stage.EXPIRED:
        return (
            "Outcome unknown: M-Pesa never said whether the customer paid. Ask whether an "
            "M-Pesa SMS arrived before retrying.",
            "Expired without a result; a late payment would still be recorded.",
        )
    if stage is Stage.NEEDS_REVIEW:
        reason = attempt.review_note or attempt.review_reason
        if reason is not None and reason.startswith(UNBOUND_SUCCESS):
            return UNBOUND_SUCCESS, reason
        return (
            "This payment needs a manager. Do not take payment again for this sale yet.",
            reason or advice.manager_hint or "The evidence about this payment disagrees.",
        )
    return advice.cashier_message, advice.manager_hint


def build_view(
    attempt: Attempt, sale: Sequence[Attempt], now: datetime, settings: Settings
) -> PaymentView:
    """The view of one attempt; `sale` is every attempt of its sale (one query), whose latest
    attempt decides the retry."""
    stage = stage_of(attempt, now, settings.timings.prompt_countdown_s)
    advice = advise(attempt.result_code, attempt.result_desc)
    cashier_message, manager_hint = _messages(attempt, stage, advice)
    if attempt.flags & AttemptFlag.DUPLICATE_PAYMENT:
        manager_hint = "The sale was already paid by another attempt: refund one payment."
    latest = max(sale, key=lambda a: a.attempt_number) if sale else attempt
    if latest.id == attempt.id:
        latest = attempt
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
        receipt_pending=attempt.state is AttemptState.COMPLETED and attempt.receipt_number is None,
        result_code=attempt.result_code,
        cashier_message=cashier_message,
        manager_hint=manager_hint,
        retry=retry_rule(latest, sale or [attempt], now, settings),
        late=bool(attempt.flags & AttemptFlag.LATE),
        duplicate_payment=bool(attempt.flags & AttemptFlag.DUPLICATE_PAYMENT),
        confirming=attempt.confirming is not None,
        handed_to_reconciler=attempt.handed_over_at is not None,
        created_at=attempt.created_at,
        push_sent_at=attempt.push_sent_at,
        prompt_deadline=prompt_deadline(attempt, settings.timings.prompt_countdown_s),
        expires_at=attempt.expires_at,
        finished_at=attempt.completed_at
        if attempt.state is AttemptState.COMPLETED
        else attempt.finished_at,
    )
