"""Words both faces say the same way: the cashier's receipt-check screen and
`smartduka verify-receipt` print one sentence for an accepted receipt, so it is written once
here rather than in each face or in the engine, which returns the verdict as values (the
receipt, the amount, when it was paid, to which shortcode, for which sale).

A refusal's words stay with the refusal (`ReceiptVerdict.message`): an error says what went
wrong where it is found. Times here are Kenya time, the shop's wall clock.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from smartduka_tui.mpesa.kenya_time import KENYA_TZ

if TYPE_CHECKING:
    from smartduka_tui.payments.statement import ReceiptVerdict


def exact_shillings(amount: Decimal | int) -> str:
    """KES in whole shillings when whole ("KES 1,500"), else with cents (M-Pesa's amounts
    are decimals; the till's are whole)."""
    value = Decimal(amount)
    text = f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"
    return f"KES {text}"


def day_and_time(moment: datetime) -> str:
    """`15 Jan 14:05` in Kenya time."""
    return moment.astimezone(KENYA_TZ).strftime("%d %b %H:%M")


def verdict_words(verdict: ReceiptVerdict) -> str:
    """What the cashier reads after a receipt check."""
    if not verdict.accepted or verdict.amount_paid is None:
        return verdict.message
    paid = exact_shillings(verdict.amount_paid)
    if verdict.sale_ref is not None:
        return f"Paid: receipt {verdict.receipt}, {paid} for sale {verdict.sale_ref}."
    when = "" if verdict.paid_at is None else f" at {day_and_time(verdict.paid_at)}"
    return f"Receipt {verdict.receipt}: {paid} paid to {verdict.paid_to}{when}; no sale holds it."
