"""Words for a payment view: the headline each stage gets on screen, and the one-line summary
the app shows when an attempt nobody is watching settles (after "stop waiting", say).

Presentation only: which state an attempt is in, whether a retry is allowed and the cashier's
message all come from the payment service.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartduka_tui.payments.api import PaymentView, Stage
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.widgets.notice import Severity

STAGE_WORDS: dict[Stage, str] = {
    Stage.SENDING: "Sending the payment request to M-Pesa…",
    Stage.WAITING_FOR_PIN: "Sent. Waiting for the customer to enter their M-Pesa PIN.",
    Stage.CONFIRMING: "Confirming with M-Pesa…",
    Stage.OUTCOME_UNKNOWN: (
        "M-Pesa may or may not have received the request. Checking with M-Pesa: "
        "do not send it again."
    ),
    Stage.PAID: "Paid",
    Stage.PAID_RECEIPT_TO_FOLLOW: "Paid; receipt pending",
    Stage.FAILED: "Not paid",
    Stage.EXPIRED: "Outcome unknown: no answer from M-Pesa in time",
    Stage.NEEDS_REVIEW: "Needs a manager",
}

PROMPT_TIME_UP = (
    "The prompt time is up. Checking with M-Pesa whether the customer paid: "
    "the payment may still complete."
)


@dataclass(frozen=True, slots=True)
class Summary:
    title: str
    text: str
    severity: Severity


def outcome_summary(view: PaymentView) -> Summary:
    """One toast-sized summary of an attempt that reached a final state."""
    what = f"Sale {view.sale_ref}, {shillings(view.amount)}, {view.phone_masked}"
    if view.is_paid:
        if view.duplicate_payment:
            return Summary(
                "Paid twice: refund needed",
                f"{what}: paid again although the sale was already paid. A manager must refund.",
                "error",
            )
        receipt = view.receipt or "receipt pending"
        late = " (late: after it had ended)" if view.late else ""
        return Summary(
            "Paid" + late, f"{what}: {receipt}.", "warning" if view.late else "information"
        )
    title = STAGE_WORDS.get(view.stage, view.stage.value)
    return Summary(title, f"{what}: {view.cashier_message}", "warning")
