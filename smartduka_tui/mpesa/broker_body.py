"""The brokered STK body: what a till of a platform shop sends the relay's Daraja broker.

The till (`payments/broker_gateway.py`) builds these models and the relay
(`callback_relay/broker.py`) validates them, so the two sides cannot drift apart. The broker's
answers keep Daraja's own bodies (`StkPushResponse`, `StkQueryResponse` and the error envelope
in `models`); the broker's own answers are `BrokerStatus` and `{"ready": true}`.

A body the broker cannot use is refused in Daraja's terms (`refusal`): an unknown field as
`400.002.05` "Invalid Request Payload", a bad value as `400.002.02` naming Daraja's field
(`Amount`, `PhoneNumber`, ...), so a till reads it as "nothing was started".
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

READY_PATH: Final = "/v1/daraja/ready"
PUSH_PATH: Final = "/v1/daraja/stk-push"
QUERY_PATH: Final = "/v1/daraja/stk-query"
STATUS_PATH: Final = "/v1/daraja/status"

INVALID_FIELD: Final = "400.002.02"
INVALID_PAYLOAD: Final = "400.002.05"

DarajaState = Literal["reachable", "unreachable", "unknown"]


class BrokeredPush(BaseModel):
    """What a till asks the broker to push. The relay adds shortcode, passkey and the shop's
    account prefix in front of `reference`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: int = Field(strict=True, ge=1, le=250_000)
    phone: str = Field(min_length=1, max_length=32)
    reference: str = Field(min_length=1, max_length=12)
    description: str = Field(min_length=1, max_length=13)
    callback_url: str = Field(min_length=1, max_length=1024, repr=False)


class BrokeredQuery(BaseModel):
    """An STK query for one of the shop's own pushes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkout_request_id: str = Field(min_length=1, max_length=128)


class BrokerStatus(BaseModel):
    """The broker's view of Daraja, from its real calls and a TCP probe."""

    model_config = ConfigDict(frozen=True)

    daraja: DarajaState


# Daraja's names for the body's fields, so a refusal reads as Daraja's would.
_DARAJA_FIELD: Final = {
    "amount": "Amount",
    "phone": "PhoneNumber",
    "reference": "AccountReference",
    "description": "TransactionDesc",
    "callback_url": "CallBackURL",
    "checkout_request_id": "CheckoutRequestID",
}


def refusal(error: ValidationError) -> tuple[str, str]:
    """Daraja's error code and message for a body that failed validation (its first problem);
    never the value itself."""
    first = error.errors(include_url=False, include_input=False)[0]
    name = str(first["loc"][0]) if first["loc"] else "body"
    if first["type"] == "extra_forbidden":
        return INVALID_PAYLOAD, f"Invalid Request Payload: unknown field {name[:32]!r}."
    field = _DARAJA_FIELD.get(name, name)
    return INVALID_FIELD, f"Bad Request - Invalid {field} ({first['msg']})"
