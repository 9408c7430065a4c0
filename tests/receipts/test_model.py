"""The receipt model and its text: exact shillings, Kenya time, COPY on a reprint."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from smartduka_tui.receipts import ReceiptLine, Tender, TenderKind, render_text
from tests.receipts.conftest import PAID_SALE, expected


def test_text_matches_the_stored_receipt() -> None:
    assert render_text(PAID_SALE) == expected("S1001.txt").decode()


def test_a_reprint_says_copy_at_both_ends_and_nothing_else_changes() -> None:
    copy = render_text(PAID_SALE.as_copy())
    assert copy == expected("S1001-copy.txt").decode()
    lines = copy.splitlines()
    assert lines[0].strip() == lines[-1].strip() == "*** COPY ***"
    assert lines[1:-1] == render_text(PAID_SALE).splitlines()


def test_time_is_kenya_time_and_every_line_fits_the_roll() -> None:
    text = render_text(PAID_SALE)
    assert "2026-01-15 09:00:19 EAT" in text.splitlines()  # 06:00:19 UTC
    assert max(len(line) for line in text.splitlines()) <= 32
    assert max(len(line) for line in render_text(PAID_SALE, columns=48).splitlines()) == 48


def test_items_with_quantities_and_the_cashier_are_shown() -> None:
    receipt = replace(
        PAID_SALE,
        cashier="Wanjiku",
        lines=(ReceiptLine("Unga 2kg", 2, 100), ReceiptLine("Sukari 1kg with a long name", 1, 50)),
    )
    lines = render_text(receipt).splitlines()
    assert "Cashier                  Wanjiku" in lines
    assert "Unga 2kg" in lines
    assert "  2 x 100                KES 200" in lines
    assert "Sukari 1kg with a long n~ KES 50" in lines
    assert "TOTAL                    KES 250" in lines


def test_large_amounts_keep_every_shilling() -> None:
    receipt = replace(
        PAID_SALE,
        lines=(ReceiptLine("Fridge", 1, 249_999),),
        tenders=(Tender(TenderKind.MPESA_C2B, 249_999, "SDK9Z8Y7X6"),),
    )
    text = render_text(receipt)
    assert "TOTAL                KES 249,999" in text.splitlines()
    assert "M-Pesa (direct)      KES 249,999" in text.splitlines()


@pytest.mark.parametrize(
    ("change", "tenders", "message"),
    [
        (0, (Tender(TenderKind.MPESA_STK, 200),), "tenders of 200 less change of 0 do not cover"),
        (0, (), "tenders of 0 less change of 0 do not cover the total of 250"),
        (-1, (Tender(TenderKind.MPESA_STK, 249),), "change cannot be negative"),
    ],
)
def test_tenders_must_cover_the_total_exactly(
    change: int, tenders: tuple[Tender, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        replace(PAID_SALE, tenders=tenders, change=change)


def test_a_tender_is_at_least_one_shilling_and_time_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="a tender is at least 1 shilling"):
        Tender(TenderKind.MPESA_STK, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(PAID_SALE, paid_at=datetime(2026, 1, 15, 9, 0, 18))
