"""Wire models and the STK callback parser, fed the real-shape payloads and hostile input."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from smartduka_tui.mpesa.models import (
    C2BConfirmation,
    CallbackParseError,
    ErrorEnvelope,
    MalformedJson,
    OAuthResponse,
    StkCallback,
    StkPushRequest,
    StkPushResponse,
    StkQueryResponse,
    TransactionType,
    check_callback_shape,
    clean_description,
    normalise_result_code,
    parse_error_envelope,
    parse_stk_callback,
    result_code_key,
    strict_json,
)
from smartduka_tui.mpesa.result_codes import describe_result
from tests.support.daraja import PAYLOADS

# Which model reads which file, by name prefix. A new payload file with no entry fails
# `test_every_payload_file_has_a_model`.
PREFIX_MODEL: list[tuple[str, type[BaseModel] | str]] = [
    ("c2b_confirmation", C2BConfirmation),
    ("callback_", "callback"),
    ("error_", ErrorEnvelope),
    ("query_error_", ErrorEnvelope),
    ("oauth_success", OAuthResponse),
    ("query_response_", StkQueryResponse),
    ("stk_push_request_", StkPushRequest),
    ("stk_push_response_", StkPushResponse),
]
PAYLOAD_FILES = sorted(PAYLOADS.glob("*.json"))


def model_for(name: str) -> type[BaseModel] | str | None:
    for prefix, model in PREFIX_MODEL:
        if name.startswith(prefix):
            return model
    return None


def load(name: str) -> dict[str, Any]:
    data = json.loads((PAYLOADS / name).read_text(), parse_float=Decimal)
    assert isinstance(data, dict)
    return data


def callback_body(**overrides: Any) -> dict[str, Any]:
    body = load("callback_success.json")
    body["Body"]["stkCallback"].update(overrides)
    return body


def with_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    return callback_body(CallbackMetadata={"Item": items})


def test_payload_folder_is_there() -> None:
    assert len(PAYLOAD_FILES) >= 28


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.name)
def test_every_payload_file_has_a_model(path: Path) -> None:
    assert model_for(path.name) is not None, f"no model mapped for {path.name}"


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.name)
def test_every_payload_file_parses_with_its_model(path: Path) -> None:
    model = model_for(path.name)
    raw = path.read_bytes()
    if model == "callback":
        parsed: object = parse_stk_callback(raw)
        assert isinstance(parsed, StkCallback)
        assert parsed.checkout_request_id.startswith("ws_CO_")
    else:
        assert isinstance(model, type)
        parsed = model.model_validate_json(raw)
        assert isinstance(parsed, model)


def test_oauth_expiry_as_string_or_number() -> None:
    as_text = OAuthResponse.model_validate(load("oauth_success_string_expiry.json"))
    as_number = OAuthResponse.model_validate(load("oauth_success_number_expiry.json"))
    assert as_text.expires_in == as_number.expires_in == 3599
    assert as_text.access_token.get_secret_value() == "c9SQxWWhmdVRlyh0zh8gZDTkubVF"
    assert "c9SQ" not in repr(as_text) and "c9SQ" not in str(as_text)


@pytest.mark.parametrize("bad", [True, "soon", -5, 0, "", None, "3599.5", Decimal("3599.5")])
def test_oauth_refuses_nonsense_expiry(bad: object) -> None:
    with pytest.raises(ValidationError, match="expires_in"):
        OAuthResponse.model_validate({"access_token": "tok", "expires_in": bad})


def test_success_callback_reads_metadata_by_name() -> None:
    cb = parse_stk_callback((PAYLOADS / "callback_success.json").read_bytes())
    assert cb.is_success and cb.result_code == 0 and cb.code_key == "0"
    assert cb.amount == Decimal("150.0") and isinstance(cb.amount, Decimal)
    assert cb.receipt == "TKQ4B7XJ2M"
    assert cb.phone == "254708374149"
    assert cb.transaction_date is not None
    assert cb.transaction_date.utcoffset() == timedelta(hours=3)
    assert cb.transaction_date.replace(tzinfo=None) == datetime(2026, 11, 26, 10, 30, 12)
    assert cb.balance is None


def test_reordered_items_read_the_same() -> None:
    plain = parse_stk_callback((PAYLOADS / "callback_success.json").read_bytes())
    reordered = parse_stk_callback((PAYLOADS / "callback_success_items_reordered.json").read_text())
    assert reordered.amount == plain.amount == Decimal(150)
    assert (reordered.receipt, reordered.phone, reordered.transaction_date) == (
        plain.receipt,
        plain.phone,
        plain.transaction_date,
    )


def test_balance_without_value_is_kept_and_marked() -> None:
    cb = parse_stk_callback(load("callback_success_balance_without_value.json"))
    assert cb.balance is None
    balance = next(item for item in cb.metadata if item.name == "Balance")
    assert balance.has_value is False
    assert all(item.has_value for item in cb.metadata if item.name != "Balance")


def test_balance_with_a_number_is_read() -> None:
    items = load("callback_success.json")["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    cb = parse_stk_callback(with_items([*items, {"Name": "Balance", "Value": Decimal("12.50")}]))
    assert cb.balance == Decimal("12.50")


def test_balance_in_an_odd_text_form_is_not_an_error() -> None:
    cb = parse_stk_callback(with_items([{"Name": "Balance", "Value": "{Amount={BasicAmount=1}}"}]))
    assert cb.balance is None


def test_string_result_code_is_kept() -> None:
    cb = parse_stk_callback((PAYLOADS / "callback_string_code_SFC_IC0003.json").read_bytes())
    assert cb.result_code == "SFC_IC0003" and cb.code_key == "SFC_IC0003"
    assert not cb.is_success
    assert cb.amount is None and cb.metadata == ()


def test_prefixed_description_is_cleaned_and_raw_kept() -> None:
    cb = parse_stk_callback((PAYLOADS / "callback_prefixed_desc_1032.json").read_bytes())
    assert cb.description == "Request cancelled by user"
    assert cb.result_desc_raw == "[STK_CB - ]Request cancelled by user"
    assert cb.result_code == 1032


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("[MpesaCB - ]The balance is insufficient", "The balance is insufficient"),
        ("[STK_CB - ]SMSC ACK timeout.", "SMSC ACK timeout."),
        ("  Request cancelled by user ", "Request cancelled by user"),
        ("No prefix [but brackets] inside", "No prefix [but brackets] inside"),
    ],
)
def test_clean_description(raw: str, clean: str) -> None:
    assert clean_description(raw) == clean


def test_numeric_string_result_code_in_a_callback_becomes_int() -> None:
    cb = parse_stk_callback(callback_body(ResultCode="1032", CallbackMetadata=None))
    assert cb.result_code == 1032 and cb.result_code_raw == "1032" and cb.code_key == "1032"


@pytest.mark.parametrize(
    ("raw", "normal", "key"),
    [
        (0, 0, "0"),
        ("0", 0, "0"),
        ("1032", 1032, "1032"),
        ("sfc_ic0003", "SFC_IC0003", "SFC_IC0003"),
        # Not Daraja's spelling of a number: kept as given, so "00" is never "0" (paid).
        ("00", "00", "00"),
        ("-0", "-0", "-0"),
        ("+0", "+0", "+0"),
        (" 1032 ", " 1032 ", " 1032 "),
    ],
)
def test_result_code_normalisation(raw: int | str, normal: int | str, key: str) -> None:
    assert normalise_result_code(raw) == normal
    assert result_code_key(raw) == key


def test_query_response_keeps_raw_code_and_exposes_the_key() -> None:
    answer = StkQueryResponse.model_validate(load("query_response_cancelled_1032.json"))
    assert answer.result_code_raw == "1032"
    assert answer.result_code == 1032 and answer.code_key == "1032"
    assert answer.response_code == "0"
    success = StkQueryResponse.model_validate(load("query_response_success.json"))
    assert success.code_key == "0"


def test_query_response_with_int_codes() -> None:
    body = load("query_response_success.json") | {"ResultCode": 0, "ResponseCode": 0}
    answer = StkQueryResponse.model_validate(body)
    assert answer.result_code_raw == 0 and answer.response_code == "0"


def test_push_request_wire_round_trip_keeps_the_password_out_of_repr() -> None:
    raw = load("stk_push_request_paybill.json")
    request = StkPushRequest.model_validate(raw)
    assert request.transaction_type is TransactionType.PAYBILL
    assert request.to_wire() == raw
    text = repr(request) + str(request)
    assert raw["Password"] not in text
    assert "relay.example.com" not in text  # callback paths are capabilities


def test_till_request_shape() -> None:
    request = StkPushRequest.model_validate(load("stk_push_request_till.json"))
    assert request.transaction_type is TransactionType.BUY_GOODS
    assert (request.business_short_code, request.party_b) == ("1850908", "5501234")


def test_push_response_is_accepted() -> None:
    response = StkPushResponse.model_validate(load("stk_push_response_accepted.json"))
    assert response.accepted
    assert response.checkout_request_id == "ws_CO_26112026103000123708374149"


def test_c2b_confirmation_amounts_are_decimal() -> None:
    c2b = C2BConfirmation.model_validate(load("c2b_confirmation_v2_masked_msisdn.json"))
    assert c2b.trans_amount == Decimal("150.00")
    assert c2b.org_account_balance == Decimal("10450.00")
    assert c2b.msisdn == "2547 ***** 149"


@pytest.mark.parametrize(
    "name",
    [
        "error_400.002.02_invalid_amount.json",
        "error_500.001.1001_unable_to_lock_subscriber.json",
        "query_error_500.001.1001_being_processed.json",
    ],
)
def test_error_envelope_detection(name: str) -> None:
    envelope = parse_error_envelope((PAYLOADS / name).read_bytes())
    assert envelope is not None
    assert envelope == ErrorEnvelope.model_validate(load(name))


@pytest.mark.parametrize(
    "body", [b"", b"<html>Apigee</html>", b"[]", b'{"fault": {}}', b'{"errorCode": 5}', b"\xff"]
)
def test_non_envelopes_are_not_envelopes(body: bytes) -> None:
    assert parse_error_envelope(body) is None


# --- bad callbacks: a clear, specific message that never repeats the input -------------------

SECRETISH = "CANARY-s3cr3t-VALUE"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe{", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"Body": NaN}', "NaN"),
        (b'{"Body": 1e999999999}', "number out of range"),
        (b"[1, 2]", "expected a JSON object"),
        (b'"just text"', "expected a JSON object"),
        (b"{}", "Body: Field required"),
        (b'{"Body": {}}', "Body.stkCallback: Field required"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b" " * (64 * 1024 + 1), "larger than 64 KiB"),
        (json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": "x"}}}), "MerchantRequestID"),
    ],
)
def test_malformed_bodies_are_refused_clearly(body: bytes | str, message: str) -> None:
    with pytest.raises(CallbackParseError, match=message):
        parse_stk_callback(body)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ResultCode": True}, "ResultCode must be a number or a code, not a boolean"),
        ({"ResultCode": Decimal("0.5")}, "ResultCode must be a whole number"),
        ({"ResultCode": f"{SECRETISH} with spaces"}, "ResultCode must be 1-32 letters"),
        ({"ResultCode": 10**40}, "ResultCode is out of range"),
        ({"ResultCode": None}, "ResultCode"),
        ({"CheckoutRequestID": 12345}, "CheckoutRequestID: Input should be a valid string"),
        ({"CheckoutRequestID": ""}, "CheckoutRequestID"),
        ({"ResultDesc": "x" * 5000}, "ResultDesc"),
        ({"CallbackMetadata": {"Item": "nope"}}, "CallbackMetadata.Item"),
        ({"CallbackMetadata": {"Item": [{"Value": 1}]}}, r"Item\.0\.Name: Field required"),
    ],
)
def test_bad_fields_are_named_without_echoing_values(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(CallbackParseError, match=message) as caught:
        parse_stk_callback(callback_body(**overrides))
    assert SECRETISH not in str(caught.value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"Name": "Amount", "Value": "a lot"}, "metadata Amount is not a number"),
        ({"Name": "Amount", "Value": True}, "metadata Amount is not a number"),
        ({"Name": "Amount", "Value": Decimal(-5)}, "metadata Amount is out of range"),
        ({"Name": "Amount", "Value": Decimal("1E+20")}, "metadata Amount is out of range"),
        ({"Name": "Amount", "Value": Decimal("1E+999999")}, "body contains a number out of range"),
        ({"Name": "MpesaReceiptNumber", "Value": f"<{SECRETISH}>"}, "MpesaReceiptNumber must be"),
        ({"Name": "MpesaReceiptNumber", "Value": 12}, "MpesaReceiptNumber must be"),
        ({"Name": "PhoneNumber", "Value": Decimal("1E+999999999")}, "number out of range"),
        ({"Name": "PhoneNumber", "Value": Decimal("254708374149.5")}, "PhoneNumber is not a phone"),
        ({"Name": "PhoneNumber", "Value": SECRETISH}, "PhoneNumber is not a phone"),
        ({"Name": "TransactionDate", "Value": 20261399103012}, "TransactionDate is not"),
        ({"Name": "TransactionDate", "Value": "yesterday"}, "TransactionDate is not"),
        ({"Name": "Amount", "Value": {"nested": 1}}, r"Item\.0\.Value"),
        ({"Name": "Amount", "Value": "9" * 300}, "longer than 256"),
    ],
)
def test_bad_metadata_is_refused_by_name(item: dict[str, Any], message: str) -> None:
    with pytest.raises(CallbackParseError, match=message) as caught:
        parse_stk_callback(with_items([item]))
    assert SECRETISH not in str(caught.value)


def test_duplicate_metadata_names_are_refused() -> None:
    items = [{"Name": "Amount", "Value": 1}, {"Name": "Amount", "Value": 100000}]
    with pytest.raises(CallbackParseError, match="metadata item Amount appears more than once"):
        parse_stk_callback(with_items(items))
    strange = [{"Name": SECRETISH, "Value": 1}, {"Name": SECRETISH, "Value": 2}]
    with pytest.raises(CallbackParseError, match="metadata item name appears") as caught:
        parse_stk_callback(with_items(strange))
    assert SECRETISH not in str(caught.value)


def test_metadata_in_other_accepted_forms() -> None:
    cb = parse_stk_callback(
        with_items(
            [
                {"Name": "Amount", "Value": "150.00"},
                {"Name": "PhoneNumber", "Value": "254708374149"},
                {"Name": "TransactionDate", "Value": "20261126103012"},
                {"Name": "Unheard", "Value": None},
            ]
        )
    )
    assert cb.amount == Decimal("150.00")
    assert cb.phone == "254708374149"
    assert cb.transaction_date is not None and cb.transaction_date.day == 26
    assert cb.receipt is None


def test_mapping_input_turns_floats_into_decimal() -> None:
    body = json.loads((PAYLOADS / "callback_success.json").read_text())  # floats, on purpose
    cb = parse_stk_callback(body)
    assert cb.amount == Decimal("150.0") and isinstance(cb.amount, Decimal)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Body": float("nan")}, "not finite"),
        ({"Body": {1: 2}}, "key that is not text"),
        ({"Body": object()}, "JSON cannot carry"),
    ],
)
def test_bad_mappings_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(CallbackParseError, match=message):
        parse_stk_callback(body)


def test_wrong_argument_type_is_a_parse_error() -> None:
    with pytest.raises(CallbackParseError, match="bytes, text or a mapping"):
        parse_stk_callback(42)  # type: ignore[arg-type]


# --- Hypothesis: nothing but CallbackParseError ever escapes ----------------------------------

# Nested JSON is slow to generate; a hundred examples per run keeps this file quick under the
# long local profile while CI's bounded profile stays as it is.
bounded = settings(max_examples=min(settings().max_examples, 100))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
metadata_names = st.sampled_from(
    ["Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber", "Other"]
)
callback_like = st.fixed_dictionaries(
    {
        "Body": st.fixed_dictionaries(
            {
                "stkCallback": st.fixed_dictionaries(
                    {
                        "MerchantRequestID": st.text(max_size=10) | json_values,
                        "CheckoutRequestID": st.text(max_size=10) | json_values,
                        "ResultCode": st.integers() | st.text(max_size=12) | json_values,
                        "ResultDesc": st.text(max_size=30) | json_values,
                        "CallbackMetadata": st.fixed_dictionaries(
                            {
                                "Item": st.lists(
                                    st.fixed_dictionaries(
                                        {"Name": metadata_names | json_values, "Value": json_values}
                                    ),
                                    max_size=6,
                                )
                            }
                        )
                        | json_values,
                    }
                )
            }
        )
    }
)


def parse_or_refuse(body: bytes | str | dict[str, Any]) -> None:
    with contextlib.suppress(CallbackParseError):
        parse_stk_callback(body)


@bounded
@given(json_values)
def test_arbitrary_json_only_ever_raises_callback_parse_error(value: object) -> None:
    parse_or_refuse(json.dumps(value))
    if isinstance(value, dict):
        parse_or_refuse(value)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_callback_parse_error(body: bytes) -> None:
    parse_or_refuse(body)


@bounded
@given(callback_like)
def test_callback_shaped_json_only_ever_raises_callback_parse_error(value: dict[str, Any]) -> None:
    parse_or_refuse(json.dumps(value))
    parse_or_refuse(value)


@bounded
@given(
    amount=st.decimals(min_value=1, max_value=250_000, places=2),
    phone=st.integers(min_value=254_100_000_000, max_value=254_799_999_999),
    receipt=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=10, max_size=10),
    order=st.permutations(range(4)),
)
def test_valid_success_callbacks_always_parse(
    amount: Decimal, phone: int, receipt: str, order: list[int]
) -> None:
    items: list[dict[str, Any]] = [
        {"Name": "Amount", "Value": amount},
        {"Name": "MpesaReceiptNumber", "Value": receipt},
        {"Name": "TransactionDate", "Value": 20260115120000},
        {"Name": "PhoneNumber", "Value": phone},
    ]
    body = with_items([items[i] for i in order])
    text = json.dumps(body, default=str).replace(f'"{amount}"', str(amount))
    cb = parse_stk_callback(text)
    assert (cb.amount, cb.receipt, cb.phone) == (amount, receipt, str(phone))


# --- the relay's quick check ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [p for p in PAYLOAD_FILES if p.name.startswith("callback_")])
def test_the_relay_check_passes_every_callback_payload(path: Path) -> None:
    check_callback_shape(path.read_bytes())


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",
        b'{"Body": {"other": 1}}',
        b'{"Body": {"stkCallback": []}}',
        b'{"Body": {"stkCallback": {"MerchantRequestID": "", "CheckoutRequestID": "c", '
        b'"ResultCode": 0}}}',
        b'{"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": "c", '
        b'"ResultCode": true}}}',
        b'{"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": "c", '
        b'"ResultCode": 0, "CallbackMetadata": {"Item": {"Name": "Amount"}}}}}',
        b'{"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": "c", '
        b'"ResultCode": NaN}}}',
        b"\xff\xfe not text",
        b'{"Body": ',
        b" " * (64 * 1024 + 1),
    ],
)
def test_the_relay_check_refuses_what_is_not_a_callback(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        check_callback_shape(body)
    with pytest.raises(CallbackParseError):
        parse_stk_callback(body)


metadata_values = (
    st.none()
    | st.integers(min_value=0, max_value=10**12)
    | st.decimals(min_value=0, max_value=300_000, places=2)
    | st.text(max_size=12)
)
# Mostly well-formed, with one odd part now and then: enough of them parse to test the rule.
nearly_callbacks = st.fixed_dictionaries(
    {
        "Body": st.fixed_dictionaries(
            {
                "stkCallback": st.fixed_dictionaries(
                    {
                        "MerchantRequestID": st.text(min_size=1, max_size=12),
                        "CheckoutRequestID": st.text(min_size=1, max_size=12) | st.integers(),
                        "ResultCode": st.sampled_from([0, 1, 1032, "0", "1037", "SFC_IC0003"])
                        | st.integers()
                        | st.text(max_size=4),
                    },
                    optional={
                        "ResultDesc": st.text(max_size=30) | st.integers(),
                        "CallbackMetadata": st.none()
                        | st.fixed_dictionaries(
                            {},
                            optional={
                                "Item": st.lists(
                                    st.fixed_dictionaries(
                                        {"Name": metadata_names},
                                        optional={"Value": metadata_values},
                                    ),
                                    max_size=5,
                                    unique_by=lambda item: item["Name"],
                                )
                            },
                        )
                        | json_values,
                    },
                )
            }
        )
    }
)


@bounded
@given(callback_like | nearly_callbacks)
def test_the_relay_check_is_never_stricter_than_the_parser(value: dict[str, Any]) -> None:
    raw = json.dumps(value, default=str).encode()
    try:
        parse_stk_callback(raw)
    except CallbackParseError:
        with contextlib.suppress(CallbackParseError):
            check_callback_shape(raw)
        return
    check_callback_shape(raw)


@given(st.binary(max_size=300))
def test_the_relay_check_only_ever_raises_callback_parse_error(body: bytes) -> None:
    with contextlib.suppress(CallbackParseError):
        check_callback_shape(body)


# --- Only 0 is success (issue #11 case 4) ---------------------------------------------------

# Spellings that look like zero to a lenient parser: signs, leading zeros, padding.
zero_lookalikes = st.builds(
    lambda sign, zeros, left, right: f"{left}{sign}{'0' * zeros}{right}",
    st.sampled_from(["", "+", "-"]),
    st.integers(min_value=1, max_value=4),
    st.sampled_from(["", " ", "\t", "0"]),
    st.sampled_from(["", " ", "\n", "0"]),
).filter(lambda text: text != "0")


@given(zero_lookalikes)
def test_no_spelling_of_zero_but_the_exact_one_is_success(code: str) -> None:
    body = callback_body(ResultCode=code)
    try:
        callback = parse_stk_callback(body)
    except CallbackParseError:
        return  # refused outright (padding is no code): not success either
    assert not callback.is_success and callback.code_key != "0"
    assert not describe_result(callback.code_key).known


@given(st.sampled_from([0, "0"]))
def test_integer_zero_and_the_string_zero_are_success(code: int | str) -> None:
    callback = parse_stk_callback(callback_body(ResultCode=code))
    assert callback.is_success and callback.code_key == "0"


@given(st.integers(min_value=1, max_value=99999))
def test_a_number_and_its_exact_text_are_one_code_but_padded_text_is_not(code: int) -> None:
    assert result_code_key(code) == result_code_key(str(code)) == str(code)
    assert result_code_key("0" + str(code)) != str(code)


def test_strict_json_strips_one_utf8_bom_and_refuses_what_is_not_utf8() -> None:
    bom = b"\xef\xbb\xbf"
    assert strict_json(bom + b'{"a": 1}') == {"a": 1}
    assert strict_json(b'{"a": "\xc3\xa9"}') == {"a": "\u00e9"}
    with pytest.raises(MalformedJson, match="not valid JSON"):
        strict_json(bom + bom + b'{"a": 1}')
    with pytest.raises(MalformedJson, match="not UTF-8"):
        strict_json(b'{"a": "\xff"}')
