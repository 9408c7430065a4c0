"""Checking what a cashier or script gives `start_payment` and `retry`.

Each check returns the clean value or raises `InvalidPaymentInput(field, message)` saying what
is wrong and how to put it right; nothing is stored before every check has passed.
"""

from __future__ import annotations

import re
from decimal import Decimal

from smartduka_tui.payments.api import InvalidPaymentInput

MIN_AMOUNT = 1
MAX_AMOUNT = 250_000
ACCOUNT_REFERENCE_MAX = 12
_SALE_REF = re.compile(r"^[A-Za-z0-9]+$")
_PHONE_TEXT = re.compile(r"^\+?[0-9][0-9 \-]*$")


def check_sale_ref(sale_ref: object, prefix: str) -> str:
    """The sale number: letters and digits that, after the shop's prefix, make M-Pesa's
    AccountReference (at most 12 characters, shown to the customer in the prompt)."""
    if not isinstance(sale_ref, str):
        raise InvalidPaymentInput("sale_ref", "must be text, e.g. S1042")
    value = sale_ref.strip()
    longest = ACCOUNT_REFERENCE_MAX - len(prefix)
    if not value:
        raise InvalidPaymentInput("sale_ref", "must not be empty")
    if not _SALE_REF.fullmatch(value):
        raise InvalidPaymentInput(
            "sale_ref",
            "must be letters and digits only (it becomes the M-Pesa account reference)",
        )
    if len(value) > longest:
        raise InvalidPaymentInput(
            "sale_ref",
            f"must be at most {longest} characters, got {len(value)}: the shop's prefix "
            f"{prefix!r} and the sale number make the M-Pesa account reference, at most "
            f"{ACCOUNT_REFERENCE_MAX}",
        )
    return value


def check_amount(amount: object) -> int:
    """Whole Kenya shillings, 1 to 250,000 (M-Pesa takes no cents; 250,000 is its limit)."""
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise InvalidPaymentInput(
            "amount", "must be a whole number of shillings (an integer), e.g. 150"
        )
    if isinstance(amount, Decimal):
        if not amount.is_finite() or amount != amount.to_integral_value():
            raise InvalidPaymentInput("amount", "must be whole shillings: M-Pesa takes no cents")
        amount = int(amount)
    if amount < MIN_AMOUNT:
        raise InvalidPaymentInput("amount", f"must be at least KES {MIN_AMOUNT}, got {amount:,}")
    if amount > MAX_AMOUNT:
        raise InvalidPaymentInput(
            "amount",
            f"must be at most KES {MAX_AMOUNT:,} (M-Pesa's limit per payment), got {amount:,}",
        )
    return amount


def check_phone(phone: object) -> str:
    """A Kenyan mobile number as 2547XXXXXXXX or 2541XXXXXXXX.

    Accepts 07.., 01.., 2547.., 2541.., +254.., with spaces or dashes. Operator prefixes are
    not checked: numbers are ported between networks.
    """
    if not isinstance(phone, str):
        raise InvalidPaymentInput("phone", "must be text, e.g. 0712 345 678")
    text = phone.strip()
    if not text:
        raise InvalidPaymentInput("phone", "must not be empty")
    if not _PHONE_TEXT.fullmatch(text):
        raise InvalidPaymentInput(
            "phone", "may hold only digits, spaces, dashes and a leading '+', e.g. 0712 345 678"
        )
    digits = re.sub(r"[ \-]", "", text).lstrip("+")
    if text.startswith("+") and not digits.startswith("254"):
        raise InvalidPaymentInput("phone", "must be a Kenyan number: +254 followed by 9 digits")
    if digits.startswith("254"):
        local = digits[3:]
    elif digits.startswith("0"):
        local = digits[1:]
    else:
        raise InvalidPaymentInput(
            "phone", "must start with 07, 01, 2547, 2541 or +254 (a Kenyan mobile number)"
        )
    if len(local) < 9:
        raise InvalidPaymentInput(
            "phone",
            f"is too short: a Kenyan mobile number has 9 digits after 0 or 254, got {len(local)}",
        )
    if len(local) > 9:
        raise InvalidPaymentInput(
            "phone",
            f"is too long: a Kenyan mobile number has 9 digits after 0 or 254, got {len(local)}",
        )
    if local[0] not in "17":
        raise InvalidPaymentInput(
            "phone", "is not a Kenyan mobile number: after 0 or 254 it must start with 7 or 1"
        )
    return "254" + local


def mask_phone(phone: str) -> str:
    """For screens and logs: 254712345678 -> 2547*****678."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:4] + "*" * (len(phone) - 7) + phone[-3:]


def account_reference(prefix: str, sale_ref: str) -> str:
    return prefix + sale_ref
