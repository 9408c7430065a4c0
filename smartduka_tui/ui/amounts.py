"""Sale totals as the checkout takes them: whole shillings, from digits or from item lines.

The limits are DESIGN.md section 7's (what M-Pesa takes in one STK push); the payment service
checks them again and is the authority. Checking them here too lets the checkout say what is
wrong while the cashier types, instead of after the phone number. A test holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_AMOUNT = 1
MAX_AMOUNT = 250_000
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
    amount = int(text)
    if amount < MIN_AMOUNT:
        return f"The total must be at least KES {MIN_AMOUNT}."
    if amount > MAX_AMOUNT:
        return f"M-Pesa takes at most KES {MAX_AMOUNT:,} in one payment."
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
