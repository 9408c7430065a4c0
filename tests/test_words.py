"""The words both faces say of a receipt check (`smartduka_tui.words`): the engine returns the
verdict as values, and the sentence is built here, in Kenya time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from smartduka_tui.payments.statement import ReceiptRefusal, ReceiptVerdict
from smartduka_tui.words import day_and_time, exact_shillings, verdict_words


def test_an_accepted_receipt_for_a_sale_names_the_sale() -> None:
    verdict = ReceiptVerdict(
        True, "", receipt="TKQ9ZZ1A2B", amount_paid=Decimal("1500"), sale_ref="0115007"
    )
    assert verdict_words(verdict) == "Paid: receipt TKQ9ZZ1A2B, KES 1,500 for sale 0115007."


def test_a_check_only_names_the_shortcode_and_the_kenya_time() -> None:
    verdict = ReceiptVerdict(
        True,
        "",
        receipt="TKQ9ZZ1A2B",
        amount_paid=Decimal("99.50"),
        paid_at=datetime(2026, 1, 14, 22, 5, tzinfo=UTC),
        paid_to="600123",
    )
    assert verdict_words(verdict) == (
        "Receipt TKQ9ZZ1A2B: KES 99.50 paid to 600123 at 15 Jan 01:05; no sale holds it."
    )
    untimed = ReceiptVerdict(True, "", receipt="R", amount_paid=Decimal(5), paid_to="600123")
    assert verdict_words(untimed) == "Receipt R: KES 5 paid to 600123; no sale holds it."


def test_a_refusal_keeps_its_own_words() -> None:
    refused = ReceiptVerdict(
        False, "Receipt R was reversed: the money went back.", refusal=ReceiptRefusal.REVERSED
    )
    assert verdict_words(refused) == "Receipt R was reversed: the money went back."


def test_amounts_and_times() -> None:
    assert [exact_shillings(v) for v in (0, 1500, Decimal("1500.00"), Decimal("2.5"))] == [
        "KES 0",
        "KES 1,500",
        "KES 1,500",
        "KES 2.50",
    ]
    assert day_and_time(datetime(2026, 12, 31, 21, 0, tzinfo=UTC)) == "01 Jan 00:00"
