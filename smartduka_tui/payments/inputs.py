"""Checking what a cashier or script gives `start_payment` and `retry`.

Each check returns the clean value or raises `InvalidPaymentInput(field, message)` saying what
is wrong and how to put it right; nothing is stored before every check has passed.
"""

from __future__ import annotations

import re

from smartduka_tui.mpesa import requests
from smartduka_tui.mpesa.phone import PhoneNumberError, normalise_phone
from smartduka_tui.payments.api import InvalidPaymentInput

_SALE_REF = re.compile(r"^[A-Za-z0-9]+$")


def check_sale_ref(sale_ref: object, prefix: str) -> str:
    """The sale number: letters and digits that, after the shop's prefix, make M-Pesa's
    AccountReference (at most 12 characters, shown to the customer in the prompt)."""
    if not isinstance(sale_ref, str):
        raise InvalidPaymentInput("sale_ref", "must be text, e.g. S1042")
    value = sale_ref.strip()
    longest = requests.ACCOUNT_REFERENCE_MAX - len(prefix)
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
            f"{requests.ACCOUNT_REFERENCE_MAX}",
        )
    return value


def check_amount(amount: object) -> int:
    """Whole Kenya shillings, 1 to 250,000 (M-Pesa takes no cents; 250,000 is its limit)."""
    try:
        return requests.check_amount(amount)
    except requests.InvalidRequestError as error:
        raise InvalidPaymentInput("amount", error.message) from None


def check_phone(phone: object) -> str:
    """A Kenyan mobile number as 2547XXXXXXXX or 2541XXXXXXXX (07.., 01.., 2547.., 2541..,
    +254.., with spaces or dashes); operator prefixes are not checked (numbers are ported)."""
    if not isinstance(phone, str):
        raise InvalidPaymentInput("phone", "must be text, e.g. 0712 345 678")
    try:
        return normalise_phone(phone)
    except PhoneNumberError as error:
        raise InvalidPaymentInput("phone", str(error)) from None


def account_reference(prefix: str, sale_ref: str) -> str:
    return prefix + sale_ref
