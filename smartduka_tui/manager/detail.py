"""One problem in full: facts, timeline and what the manager can do about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from smartduka_tui.manager.lists import PaymentRow
from smartduka_tui.model import LIVE, AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.payments.codes import advise
from smartduka_tui.store.records import Attempt, Problem


@dataclass(frozen=True, slots=True)
class TimelineStep:
    at: datetime
    who: str
    text: str


@dataclass(frozen=True, slots=True)
class ProblemDetail:
    """One problem item in full: facts, its timeline from the audit log in plain words, what the
    manager can do, and which actions are open (with the reason when one is not)."""

    row: PaymentRow
    facts: tuple[tuple[str, str], ...]
    timeline: tuple[TimelineStep, ...]
    advice: tuple[str, ...]
    recheck_blocked: str | None
    """None when "re-check with M-Pesa" is possible; else why not."""
    resolve_blocked: str | None

    @property
    def can_recheck(self) -> bool:
        return self.recheck_blocked is None

    @property
    def can_resolve(self) -> bool:
        return self.resolve_blocked is None


def attempt_advice(attempt: Attempt, review_reason: str | None) -> list[str]:
    info = advise(attempt.result_code, attempt.result_desc)
    advice: list[str] = []
    flags = attempt.flags
    if flags & AttemptFlag.DUPLICATE_PAYMENT:
        advice.append(
            "The customer paid this sale twice. Refund one payment through M-Pesa (reverse it "
            "on the M-Pesa portal or pay it back), then mark this resolved saying how."
        )
    if flags & AttemptFlag.LATE:
        advice.append(
            "M-Pesa took the money after the till had stopped waiting. Ask whether the "
            "customer paid another way too; if so, refund one payment. If the customer left "
            "without the goods, contact them."
        )
    if flags & AttemptFlag.SUSPICIOUS:
        advice.append(
            "A second callback for this paid payment carried a different receipt. Compare "
            "both receipts with the M-Pesa statement before anything else."
        )
    if flags & AttemptFlag.RECEIPT_PENDING and attempt.receipt_number is None:
        advice.append(
            "M-Pesa's query says paid; the receipt number comes with the callback. If it never "
            "comes, find the payment on the M-Pesa statement by time and amount."
        )
    if attempt.state is AttemptState.FAILED:
        advice.append(info.manager_hint)
        advice.append(
            "Re-check with M-Pesa if the customer says they paid: a late success becomes a "
            "late payment here."
        )
    elif attempt.state is AttemptState.EXPIRED:
        advice.append(
            "M-Pesa never gave a result. Re-check with M-Pesa now; if it still has none, look "
            "for the amount on the M-Pesa statement before the customer pays again."
        )
    elif attempt.state is AttemptState.UNKNOWN:
        advice.append(
            "The request may or may not have reached the customer. SmartDuka keeps checking "
            "and expires it if nothing comes; re-check now to ask M-Pesa at once. Do not "
            "charge the customer again until it has a final state."
        )
    elif attempt.state is AttemptState.NEEDS_REVIEW:
        if review_reason:
            advice.append(f"Why it needs review: {review_reason}.")
        advice.append(
            "Check the payment on the M-Pesa statement (amount, phone, receipt). Decide with "
            "the customer, then mark it resolved saying what you did. The till never retries "
            "a payment in review."
        )
    if attempt.state not in LIVE:
        advice.append("Mark it resolved with a note once it is dealt with; the note is audited.")
    return advice


def record_advice(problem: Problem) -> list[str]:
    detail = problem.detail
    if problem.kind is ProblemKind.UNMATCHED_CALLBACK:
        if detail.get("result_code") == "0":
            return [
                "M-Pesa says a customer paid, but no sale on this till was waiting for it. "
                f"Find receipt {detail.get('receipt') or '(none given)'} on the M-Pesa "
                "statement: record the sale by hand or refund the customer.",
                "Mark it resolved with what you did.",
            ]
        return [
            "A callback for a payment this till does not know said not paid: no money moved. "
            "Mark it resolved once you have looked.",
        ]
    if problem.kind is ProblemKind.UNAPPLIED_EVENT:
        return [
            "The relay delivered something the till could not read. If a customer says they "
            "paid around this time, check the M-Pesa statement.",
            "Mark it resolved once checked.",
        ]
    pattern = detail.get("pattern")
    if pattern == "failures_for_phone":
        return [
            "Many failed payments for one phone: a customer struggling (wrong PIN, no money) "
            "or someone testing the till. Talk to the cashier.",
            "Mark it resolved with what you found.",
        ]
    if pattern == "duplicate_payment":
        return [
            "A sale was paid twice: refund one payment, then mark this resolved.",
        ]
    return [
        "Many failed payments in a short time: check the shop's M-Pesa settings and "
        "connection (Settings, then Verify).",
        "Mark it resolved with what you found.",
    ]
