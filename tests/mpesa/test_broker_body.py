"""The brokered STK body (`mpesa.broker_body`): the models the till sends and the relay reads."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from smartduka_tui.mpesa.broker_body import (
    INVALID_FIELD,
    INVALID_PAYLOAD,
    BrokeredPush,
    BrokeredQuery,
    BrokerStatus,
    refusal,
)

GOOD: dict[str, Any] = {
    "amount": 100,
    "phone": "254708374149",
    "reference": "S1",
    "description": "SmartDuka",
    "callback_url": "https://relay.example.com/hooks/stk/s/t/a/k1.tag",
}


def refused(model: type[BrokeredPush | BrokeredQuery], data: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as error:
        model.model_validate(data)
    return refusal(error.value)


def test_the_body_the_till_sends_is_the_body_the_relay_reads() -> None:
    body = BrokeredPush(**GOOD)
    assert BrokeredPush.model_validate(body.model_dump()) == body
    assert list(body.model_dump()) == list(GOOD)
    assert GOOD["callback_url"] not in repr(body), "the callback URL is a capability"
    query = BrokeredQuery(checkout_request_id="ws_CO_1")
    assert query.model_dump() == {"checkout_request_id": "ws_CO_1"}


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"amount": 0}, INVALID_FIELD, "Bad Request - Invalid Amount (Input should be greater"),
        ({"amount": 250_001}, INVALID_FIELD, "Invalid Amount"),
        ({"amount": "100"}, INVALID_FIELD, "Invalid Amount (Input should be a valid integer"),
        ({"amount": 10.0}, INVALID_FIELD, "Invalid Amount"),
        ({"phone": ""}, INVALID_FIELD, "Invalid PhoneNumber"),
        ({"reference": "R" * 13}, INVALID_FIELD, "Invalid AccountReference"),
        ({"description": "D" * 14}, INVALID_FIELD, "Invalid TransactionDesc"),
        ({"callback_url": ""}, INVALID_FIELD, "Invalid CallBackURL"),
        ({"shortcode": "174379"}, INVALID_PAYLOAD, "unknown field 'shortcode'"),
    ],
)
def test_a_bad_push_body_is_refused_in_darajas_terms(
    changes: dict[str, Any], code: str, words: str
) -> None:
    got_code, message = refused(BrokeredPush, {**GOOD, **changes})
    assert got_code == code
    assert words in message


def test_a_refusal_never_quotes_the_value() -> None:
    _, message = refused(BrokeredPush, {**GOOD, "reference": "SECRETVALUE-XYZ"})
    assert "SECRETVALUE" not in message
    code, message = refused(BrokeredQuery, {"checkout_request_id": ""})
    assert (code, message.split(" (")[0]) == (
        INVALID_FIELD,
        "Bad Request - Invalid CheckoutRequestID",
    )


def test_the_status_answer_knows_three_states() -> None:
    assert BrokerStatus.model_validate_json(b'{"daraja": "reachable"}').daraja == "reachable"
    with pytest.raises(ValidationError):
        BrokerStatus.model_validate_json(b'{"daraja": "fine"}')
