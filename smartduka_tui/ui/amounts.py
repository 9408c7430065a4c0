"""Sale totals as the checkout takes them: whole shillings, from digits or from item lines.

Every character the cashier types reaches the field; what M-Pesa cannot take is refused with a
line that says why ("10.50": whole shillings only), never read as another number (1050). The
range check is the payment service's own `check_amount`, so the checkout says what is wrong
before the phone number is asked for, in the service's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QUANTITY = 999
MAX_ITEM_NAME = 30

_DIGITS = re.compile(r"[0-9]+")
# Thousands written the way the counter shows them (1,250 or 37,100); a comma anywhere else
# (1,25) could be a decimal comma, so it is refused rather than guessed at.
_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")
_DECIMAL = re.compile(r"[0-9,]*[.][0-9]*")


class AmountRefused(ValueError):
    """Typed text that is not a whole number of shillings; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def read_shillings(text: str, what: str = "The total") -> int:
    """`text` as whole shillings (digits, optionally grouped by commas), or AmountRefused.

    `what` names the field in the message ("The total", "The price"). The range is not
    checked here: callers apply their own (the service's 1 to 250,000 for a total).
    """
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    if _GROUPED.fullmatch(text):
        return int(text.replace(",", ""))
    if not text:
        raise AmountRefused(f"{what} is empty: type it in whole shillings.")
    if text[0] == "-":
        raise AmountRefused(f"{what} cannot be negative.")
    if text[0] == "+":
        raise AmountRefused(f"{what} takes no sign: type the digits only.")
    if _DECIMAL.fullmatch(text):
        raise AmountRefused(f"{what}: whole shillings only (M-Pesa takes no cents).")
    if any(letter in text for letter in "eE") and not text.isalpha():
        raise AmountRefused(f"{what} must be plain digits: {text} is not read as a power of ten.")
    if "," in text:
        raise AmountRefused(f"{what}: put commas only between groups of three digits (1,250).")
    if " " in text:
        raise AmountRefused(f"{what} must be digits without spaces.")
    raise AmountRefused(f"{what} must be whole shillings in digits (0 to 9).")


def amount_problem(text: str) -> str | None:
    """What is wrong with `text` as a sale total, or None if M-Pesa can take it."""
    if not text.strip():
        return "Type the total in whole shillings."
    # Here rather than at the top: the checkout paints before the payment modules load.
    from smartduka_tui.payments.api import InvalidPaymentInput
    from smartduka_tui.payments.inputs import check_amount

    try:
        check_amount(read_shillings(text))
    except AmountRefused as error:
        return error.message
    except InvalidPaymentInput as error:
        return f"The total {error.message}."
    return None


def amount_of(text: str) -> int | None:
    """The total typed as `text`, when M-Pesa can take it."""
    return None if amount_problem(text) else read_shillings(text)


def item_problem(name: str, quantity: str, unit_price: str) -> str | None:
    """What is wrong with an item line as typed, or None."""
    if not name.strip():
        return "Name the item."
    if len(name.strip()) > MAX_ITEM_NAME:
        return f"Keep the item name to {MAX_ITEM_NAME} characters."
    if not _DIGITS.fullmatch(quantity.strip()) or not 1 <= int(quantity) <= MAX_QUANTITY:
        return f"The quantity must be a whole number from 1 to {MAX_QUANTITY}."
    try:
        price = read_shillings(unit_price, "The price")
    except AmountRefused as error:
        return error.message
    if price < 1:
        return "The price must be at least KES 1."
    from smartduka_tui.mpesa.requests import MAX_AMOUNT

    if price > MAX_AMOUNT:
        return f"The price must be at most KES {MAX_AMOUNT:,}."
    return None


def item_of(name: str, quantity: str, unit_price: str) -> SaleItem | None:
    """The item line typed, when it has no problem."""
    if item_problem(name, quantity, unit_price):
        return None
    return SaleItem(name.strip(), int(quantity), read_shillings(unit_price, "The price"))
