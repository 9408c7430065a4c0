"""Phone numbers: every accepted form normalises to one MSISDN; junk is refused saying why."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smartduka_tui.mpesa.phone import (
    MSISDN,
    PhoneNumberError,
    format_local,
    mask_phone,
    normalise_phone,
)


@pytest.mark.parametrize(
    "raw",
    [
        "0712345678",
        "0712 345 678",
        "0712-345-678",
        " 0712 345-678 ",
        "254712345678",
        "+254712345678",
        "+254 712 345 678",
        "+254-712-345-678",
        "254 712 345678",
        "0712\t345 678",
    ],
)
def test_safaricom_style_forms_normalise(raw: str) -> None:
    assert normalise_phone(raw) == "254712345678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0110 123 456", "254110123456"),
        ("0111123456", "254111123456"),
        ("254110123456", "254110123456"),
        ("+254 111 123 456", "254111123456"),
        # Ported numbers: no operator-prefix filtering.
        ("0733 123 456", "254733123456"),
        ("0100 000 000", "254100000000"),
        ("0799999999", "254799999999"),
    ],
)
def test_01_and_other_operator_prefixes_are_accepted(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "phone number is empty"),
        ("   ", "phone number is empty"),
        ("+", "phone number has no digits"),
        ("- -", "phone number has no digits"),
        ("07123", "too short: 4 digits after 0, a Kenyan mobile number has 9"),
        ("0", "too short: 0 digits after 0"),
        ("2547", "too short: 1 digit after 254"),
        ("25", "too short: 2 digits, a full number is 2547"),
        ("+2", "too short: +254 must be followed by 9 digits"),
        ("07123456789", "too long: 10 digits after 0, a Kenyan mobile number has 9"),
        ("2547123456789", "too long: 10 digits after 254"),
        ("0712abc678", "contains letters"),
        ("O712345678", "contains letters"),
        ("0712.345.678", "contains '.'"),
        ("(0712) 345 678", "contains '('"),
        ("07١٢345678", "contains '١'"),
        ("0712+345678", "'+' may only come first"),
        ("+1 555 123 4567", "not a Kenyan mobile number: +254 is Kenya's country code"),
        ("+255712345678", "not a Kenyan mobile number: +254 is Kenya's country code"),
        ("712345678", "not a Kenyan mobile number: it must start with 07, 01, 2547, 2541 or +254"),
        ("00254712345678", "not a Kenyan mobile number: after 0 it must continue with 7 or 1"),
        ("0202345678", "not a Kenyan mobile number: after 0 it must continue with 7 or 1"),
        ("254812345678", "not a Kenyan mobile number: after 254 it must continue with 7 or 1"),
    ],
)
def test_bad_numbers_say_exactly_what_is_wrong(raw: str, message: str) -> None:
    with pytest.raises(PhoneNumberError) as caught:
        normalise_phone(raw)
    assert message in str(caught.value)


def test_non_text_is_refused() -> None:
    with pytest.raises(PhoneNumberError, match="must be text"):
        normalise_phone(712345678)  # type: ignore[arg-type]


def test_phone_number_error_is_a_value_error() -> None:
    assert issubclass(PhoneNumberError, ValueError)


def test_mask_and_local_format() -> None:
    assert mask_phone("254712345649") == "2547******49"
    assert format_local("254712345678") == "0712 345 678"
    assert format_local("+254 110 123 456") == "0110 123 456"
    assert mask_phone("12345") == "*****"
    with pytest.raises(PhoneNumberError):
        format_local("12345")


# --- Hypothesis ------------------------------------------------------------------------------

locals_ = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("71"),
    st.text(alphabet="0123456789", min_size=8, max_size=8),
)


separators = st.lists(st.sampled_from(["", "", "", " ", "-", "  "]), min_size=13, max_size=13)


def spaced(text: str, gaps: list[str]) -> str:
    """`text` with the given spaces or dashes after its characters."""
    return "".join(char + gap for char, gap in zip(text, gaps, strict=False)).rstrip(" -")


@given(locals_, separators, separators, separators)
def test_every_accepted_form_of_one_number_normalises_the_same(
    local: str, gaps_0: list[str], gaps_254: list[str], gaps_plus: list[str]
) -> None:
    msisdn = "254" + local
    assert normalise_phone(spaced("0" + local, gaps_0)) == msisdn
    assert normalise_phone(spaced("254" + local, gaps_254)) == msisdn
    assert normalise_phone(spaced("+254" + local, gaps_plus)) == msisdn
    assert MSISDN.fullmatch(msisdn)


@given(locals_)
def test_round_trips(local: str) -> None:
    msisdn = "254" + local
    assert normalise_phone(msisdn) == msisdn
    assert normalise_phone(format_local(msisdn)) == msisdn
    assert format_local(format_local(msisdn)) == format_local(msisdn)
    masked = mask_phone(msisdn)
    assert masked[:4] == msisdn[:4] and masked[-2:] == msisdn[-2:]
    assert masked[4:-2] == "******"


@given(st.text(max_size=25))
def test_junk_is_refused_with_phone_number_error_only(raw: str) -> None:
    try:
        result = normalise_phone(raw)
    except PhoneNumberError as error:
        assert str(error)
    else:
        assert MSISDN.fullmatch(result)


@given(st.text(alphabet="0123456789 -+", max_size=20))
def test_digit_soup_is_normalised_or_refused(raw: str) -> None:
    digits = raw.replace(" ", "").replace("-", "")
    assume(digits)
    try:
        result = normalise_phone(raw)
    except PhoneNumberError:
        return
    assert MSISDN.fullmatch(result)
    assert result.endswith(digits[-9:])
