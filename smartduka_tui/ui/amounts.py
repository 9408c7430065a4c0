"""Sale totals as the checkout takes them: whole shillings, from digits or from item lines.

A total is checked with the payment service's own `check_amount` while the cashier types, so
the checkout says what is wrong before the phone number is asked for, in the service's words.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartduka_tui.mpesa.requests import MAX_AMOUNT, MIN_AMOUNT
from smartduka_tui.payments.api import InvalidPaymentInput
from smartduka_tui.payments.inputs import check_amount

MAX_QUANTITY = 999
MAX_ITEM_NAME = 30


@dataclass(frozen=True, slots=True)
class SaleItem:
    """One line of a sale: a name, a quantity and a unit price in whole shillings."""

    name: str
    quantity: int
    unit_price: int

    @property
    def line_total(self) -> int:
        return self.quantity * self.unit_price


def items_total(items: list[SaleItem]) -> int:
    return sum(item.line_total for item in items)


def amount_problem(text: str) -> str | None:
    """What is wrong with `text` as a sale total, or None if M-Pesa can take it."""
    text = text.strip()
    if not text:
        return "Type the total in whole shillings."
    if not text.isascii() or not text.isdigit():
        return "The total must be whole shillings: digits only, no cents."
    try:
        check_amount(int(text))
    except InvalidPaymentInput as error:
        return f"The total {error.message}."
    return None


def item_problem(name: str, quantity: str, unit_price: str) -> str | None:
    """What is wrong with an item line as typed, or None."""
    if not name.strip():
        return "Name the item."
    if len(name.strip()) > MAX_ITEM_NAME:
        return f"Keep the item name to {MAX_ITEM_NAME} characters."
    if not quantity.isascii() or not quantity.isdigit() or not 1 <= int(quantity) <= MAX_QUANTITY:
        return f"The quantity must be a whole number from 1 to {MAX_QUANTITY}."
    if not unit_price.isascii() or not unit_price.isdigit() or int(unit_price) < MIN_AMOUNT:
        return "The price must be whole shillings, at least KES 1."
    if int(unit_price) > MAX_AMOUNT:
        return f"The price must be at most KES {MAX_AMOUNT:,}."
    return None
