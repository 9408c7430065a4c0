"""The simulator's wire shapes against Safaricom's real-shape samples in shared/daraja/payloads:
same keys, same order, same JSON types (the odd ones included)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from smartduka_tui.simulator import codes
from smartduka_tui.simulator.redact import redact, redact_authorization, redact_url
from smartduka_tui.simulator.schemas import AmountStyle, BalanceItem
from smartduka_tui.simulator.wire import (
    CallbackFacts,
    callback_json,
    checkout_request_id,
    envelope,
    new_merchant_request_id,
    new_receipt,
    new_request_id,
    push_accepted_body,
    query_result_body,
    token_body,
)
from tests.support.daraja import PAYLOADS


def sample(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(), parse_float=Decimal)


def shape(value: Any) -> Any:
    """Keys in order and JSON types, values dropped."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def ours(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=Decimal)


FACTS = CallbackFacts(
    merchant_request_id=new_merchant_request_id(),
    checkout_request_id="ws_CO_26112026103000123708374149",
    result_code=0,
    result_desc=codes.describe(0),
    amount=150,
    receipt="TKQ4B7XJ2M",
    transaction_date=datetime(2026, 11, 26, 7, 30, 12, tzinfo=UTC),
    phone="254708374149",
)


def test_success_callback_matches_the_balance_without_value_sample() -> None:
    mine = ours(callback_json(FACTS, BalanceItem.NO_VALUE, AmountStyle.ONE_DECIMAL))
    assert shape(mine) == shape(sample("callback_success_balance_without_value.json"))
    items = {
        i["Name"]: i.get("Value") for i in mine["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    }
    assert items["TransactionDate"] == 20261126103012  # Kenya time, UTC+3


def test_success_callback_without_balance_matches_the_plain_sample() -> None:
    mine = ours(callback_json(FACTS, BalanceItem.OMIT, AmountStyle.TWO_DECIMALS))
    assert shape(mine) == shape(sample("callback_success.json"))


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1032, "callback_cancelled_1032.json"),
        (1037, "callback_unreachable_1037.json"),
        ("SFC_IC0003", "callback_string_code_SFC_IC0003.json"),
    ],
)
def test_failure_callbacks_match_their_samples(code: int | str, name: str) -> None:
    expected = sample(name)
    facts = replace(
        FACTS,
        merchant_request_id=expected["Body"]["stkCallback"]["MerchantRequestID"],
        result_code=code,
        result_desc=codes.describe(code),
    )
    assert ours(callback_json(facts, BalanceItem.NO_VALUE, AmountStyle.TWO_DECIMALS)) == expected


@pytest.mark.parametrize(
    ("style", "text"),
    [
        (AmountStyle.TWO_DECIMALS, "150.00"),
        (AmountStyle.ONE_DECIMAL, "150.0"),
        (AmountStyle.INTEGER, "150"),
    ],
)
def test_amount_is_written_as_exact_number_text(style: AmountStyle, text: str) -> None:
    assert f'{{"Name": "Amount", "Value": {text}}}' in callback_json(FACTS, BalanceItem.OMIT, style)


def test_sync_answers_match_their_samples() -> None:
    checkout = FACTS.checkout_request_id
    merchant = FACTS.merchant_request_id
    assert shape(ours(push_accepted_body(merchant, checkout))) == shape(
        sample("stk_push_response_accepted.json")
    )
    assert ours(
        query_result_body("2654-4b64-97ff-b827b542881d3130", checkout, 0, codes.describe(0))
    ) == sample("query_response_success.json")
    assert ours(
        query_result_body("2654-4b64-97ff-b827b542881d3130", checkout, 1032, codes.describe(1032))
    ) == sample("query_response_cancelled_1032.json")
    assert ours(token_body("c9SQxWWhmdVRlyh0zh8gZDTkubVF", 3599, as_number=False)) == sample(
        "oauth_success_string_expiry.json"
    )
    assert ours(token_body("c9SQxWWhmdVRlyh0zh8gZDTkubVF", 3599, as_number=True)) == sample(
        "oauth_success_number_expiry.json"
    )
    for spec, name in (
        (codes.SPIKE_ARREST, "error_500.003.02_spike_arrest.json"),
        (codes.QUOTA_VIOLATION, "error_500.003.03_quota_violation.json"),
        (codes.WRONG_CREDENTIALS, "error_500.001.1001_wrong_credentials.json"),
        (codes.SUBSCRIBER_LOCKED, "error_500.001.1001_unable_to_lock_subscriber.json"),
        (codes.MERCHANT_NOT_FOUND, "error_500.001.1001_merchant_does_not_exist.json"),
        (codes.INVALID_TOKEN, "error_404.001.03_invalid_access_token.json"),
        (codes.INVALID_PAYLOAD, "error_400.002.05_invalid_payload.json"),
        (codes.invalid_field("Amount"), "error_400.002.02_invalid_amount.json"),
        (codes.invalid_field("PhoneNumber"), "error_400.002.02_invalid_phone.json"),
    ):
        expected = sample(name)
        assert ours(envelope(spec, expected["requestId"])) == expected
    assert ours(envelope(codes.BEING_PROCESSED, checkout)) == sample(
        "query_error_500.001.1001_being_processed.json"
    )


def test_generated_ids_have_daraja_shapes() -> None:
    assert re.fullmatch(
        r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}[0-9]{7}", new_request_id()
    )
    assert re.fullmatch(r"[A-Z]{3}[A-Z0-9]{7}", new_receipt())
    moment = datetime(2026, 11, 26, 7, 30, 0, 123_456, tzinfo=UTC)
    assert checkout_request_id(moment, "254708374149") == "ws_CO_26112026103000123708374149"


def test_redaction_keeps_shape_and_drops_secrets() -> None:
    body = {
        "Password": "cGFzcw==",
        "nested": [{"consumer_secret": "s", "ApiKey": "k", "AccountReference": "A1"}],
        "CallBackURL": "https://user:pw@relay.example.com:8443/hooks/stk/a/b/c/k1.tag?x=1",
        "ResultURL": "not a url",
    }
    assert redact(body) == {
        "Password": "<redacted>",
        "nested": [
            {"consumer_secret": "<redacted>", "ApiKey": "<redacted>", "AccountReference": "A1"}
        ],
        "CallBackURL": "https://relay.example.com:8443/<redacted>",
        "ResultURL": "<redacted>",
    }
    assert redact_url("http://[::1]:9000/") == "http://[::1]:9000"
    assert redact_authorization("Bearer abc") == "Bearer <redacted>"
    assert redact_authorization("abc") == "<redacted>"
    assert redact_authorization(None) is None
