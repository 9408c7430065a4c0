"""Amounts and item lines as typed at the counter (ui/amounts.py): read exactly, or refused
saying why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartduka_tui.mpesa.requests import MAX_AMOUNT
from smartduka_tui.ui.amounts import (
    SaleItem,
    amount_of,
    amount_problem,
    item_of,
    item_problem,
    items_total,
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "Type the total in whole shillings."),
        ("0", "The total must be from KES 1 to KES 250,000, got 0."),
        ("250001", "The total must be from KES 1 to KES 250,000, got 250,001."),
        ("10.50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("10.", "The total: whole shillings only (M-Pesa takes no cents)."),
        (".50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("1,000.50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("-5", "The total cannot be negative."),
        ("+5", "The total takes no sign: type the digits only."),
        ("5e3", "The total must be plain digits: 5e3 is not read as a power of ten."),
        ("1,00", "The total: put commas only between groups of three digits (1,250)."),
        ("1,0000", "The total: put commas only between groups of three digits (1,250)."),
        ("1 000", "The total must be digits without spaces."),
        ("1_000", "The total must be whole shillings in digits (0 to 9)."),
        ("１２", "The total must be whole shillings in digits (0 to 9)."),
        ("12x", "The total must be whole shillings in digits (0 to 9)."),
    ],
)
def test_amount_problems_say_what_is_wrong(text: str, problem: str) -> None:
    assert amount_problem(text) == problem
    assert amount_of(text) is None


@pytest.mark.parametrize(("text", "amount"), [("37,100", 37_100), ("1,250", 1250), ("050", 50)])
def test_thousands_grouped_as_the_counter_writes_them_are_read_exactly(
    text: str, amount: int
) -> None:
    assert amount_problem(text) is None
    assert amount_of(text) == amount


@given(st.text(alphabet="0123456789.,-+e ", max_size=9))
def test_a_typed_total_is_its_digits_or_refused(text: str) -> None:
    """Never another number: accepted text is digits (commas only as thousands), and reads as
    exactly those digits."""
    amount = amount_of(text)
    if amount is None:
        assert amount_problem(text)
    else:
        assert text.strip().replace(",", "").isdigit()
        assert amount == int(text.strip().replace(",", ""))


@given(st.integers(min_value=1, max_value=MAX_AMOUNT))
def test_every_amount_mpesa_takes_is_accepted(amount: int) -> None:
    assert amount_problem(str(amount)) is None


@pytest.mark.parametrize(
    ("name", "qty", "price", "problem"),
    [
        ("", "1", "10", "Name the item."),
        ("x" * 31, "1", "10", "Keep the item name to 30 characters."),
        ("Sugar", "0", "10", "The quantity must be a whole number from 1 to 999."),
        ("Sugar", "", "10", "The quantity must be a whole number from 1 to 999."),
        ("Sugar", "1.5", "10", "The quantity must be a whole number from 1 to 999."),
        ("Sugar", "2", "0", "The price must be at least KES 1."),
        ("Sugar", "2", "250001", "The price must be at most KES 250,000."),
        ("Sugar", "2", "185.50", "The price: whole shillings only (M-Pesa takes no cents)."),
        ("Sugar", "2", "-185", "The price cannot be negative."),
        ("Sugar", "2", "", "The price is empty: type it in whole shillings."),
    ],
)
def test_item_problems(name: str, qty: str, price: str, problem: str) -> None:
    assert item_problem(name, qty, price) == problem
    assert item_of(name, qty, price) is None


def test_an_item_line_reads_its_price_exactly() -> None:
    assert item_of(" Sugar ", "2", "1,185") == SaleItem("Sugar", 2, 1185)


def test_items_total_is_exact_integer_shillings() -> None:
    items = [SaleItem("Sugar 1kg", 2, 185), SaleItem("Bread", 1, 65)]
    assert items_total(items) == 435
    assert isinstance(items_total(items), int)
