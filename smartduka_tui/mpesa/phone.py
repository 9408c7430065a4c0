"""Kenyan mobile numbers: normalise what a cashier types to Daraja's MSISDN form.

Daraja wants `2547XXXXXXXX` or `2541XXXXXXXX` ("Bad Request - Invalid PhoneNumber" otherwise).
Cashiers type 07.., 01.., 2547.., 2541.. or +254.., with spaces or dashes. Operator prefixes are
deliberately not checked: numbers are ported between networks, so 07xx may be any operator.
"""

from __future__ import annotations

import re
from typing import Final

COUNTRY_CODE: Final = "254"
LOCAL_DIGITS: Final = 9
MSISDN = re.compile(r"^254[17]\d{8}$")
_SEPARATORS = re.compile(r"[\s\-]+")


class PhoneNumberError(ValueError):
    """A phone number that is not a Kenyan mobile number; the message says exactly why."""


def _count(n: int) -> str:
    return f"{n} digit" if n == 1 else f"{n} digits"


def _digits_of(raw: str) -> str:
    """The digits of `raw` after a leading '+', refusing anything but digits and separators."""
    text = raw.strip()
    if not text:
        raise PhoneNumberError("phone number is empty: type it like 0712 345 678")
    plus = text.startswith("+")
    body = _SEPARATORS.sub("", text[1:] if plus else text)
    for char in body:
        if char.isascii() and char.isdigit():
            continue
        if char.isalpha():
            raise PhoneNumberError("contains letters: a phone number is digits only")
        if char == "+":
            raise PhoneNumberError("'+' may only come first, as in +254 712 345 678")
        raise PhoneNumberError(
            f"contains {char!r}: use only digits, spaces, dashes and a leading '+'"
        )
    if not body:
        raise PhoneNumberError("phone number has no digits: type it like 0712 345 678")
    if plus and not body.startswith(COUNTRY_CODE):
        if COUNTRY_CODE.startswith(body):
            raise PhoneNumberError("too short: +254 must be followed by 9 digits")
        raise PhoneNumberError("not a Kenyan mobile number: +254 is Kenya's country code")
    return body


def normalise_phone(raw: str) -> str:
    """`raw` as `2547XXXXXXXX`/`2541XXXXXXXX`, or PhoneNumberError saying what is wrong."""
    if not isinstance(raw, str):
        raise PhoneNumberError("phone number must be text, e.g. 0712 345 678")
    digits = _digits_of(raw)
    if digits.startswith(COUNTRY_CODE):
        local, written = digits[len(COUNTRY_CODE) :], "254"
    elif digits.startswith("0"):
        local, written = digits[1:], "0"
    elif COUNTRY_CODE.startswith(digits):
        raise PhoneNumberError(
            f"too short: {_count(len(digits))}, a full number is 2547 and 8 more"
        )
    else:
        raise PhoneNumberError(
            "not a Kenyan mobile number: it must start with 07, 01, 2547, 2541 or +254"
        )
    if local and local[0] not in "71":
        raise PhoneNumberError(
            f"not a Kenyan mobile number: after {written} it must continue with 7 or 1"
        )
    if len(local) < LOCAL_DIGITS:
        raise PhoneNumberError(
            f"too short: {_count(len(local))} after {written}, a Kenyan mobile number has 9"
        )
    if len(local) > LOCAL_DIGITS:
        raise PhoneNumberError(
            f"too long: {_count(len(local))} after {written}, a Kenyan mobile number has 9"
        )
    return COUNTRY_CODE + local


def mask_phone(msisdn: str) -> str:
    """For screens, logs and exports: `254712345649` -> `2547******49`."""
    digits = _SEPARATORS.sub("", msisdn)
    if len(digits) < 8:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 6) + digits[-2:]


def format_local(msisdn: str) -> str:
    """The way Kenyans write it: `254712345678` -> `0712 345 678`. Accepts any accepted form."""
    local = normalise_phone(msisdn)[len(COUNTRY_CODE) :]
    return f"0{local[:3]} {local[3:6]} {local[6:]}"
