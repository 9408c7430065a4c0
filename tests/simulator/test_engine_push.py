"""STK push against the real simulator: the accepted shape, each refusal with its envelope and
HTTP status, Daraja's checking order, and results decided before any prompt (till shape, 17)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import ShortcodeKind
from tests.conftest import unique_phone
from tests.simulator.support import (
    PUSH,
    CallbackReceiver,
    Daraja,
    Shop,
    password,
    register_shop,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

ACCEPTED_TEXT = "Success. Request accepted for processing"
FIELDS_IN_ORDER = [
    "BusinessShortCode",
    "Password",
    "Timestamp",
    "TransactionType",
    "Amount",
    "PartyA",
    "PartyB",
    "PhoneNumber",
    "CallBackURL",
    "AccountReference",
    "TransactionDesc",
]


def envelope_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}, body
    return response.status_code, body["errorCode"], body["errorMessage"]


def invalid(field: str) -> tuple[int, str, str]:
    return 400, "400.002.02", f"Bad Request - Invalid {field}"


async def nothing_accepted(control: SimulatorControl, phone: str) -> bool:
    return await control.transactions(phone=phone) == []


async def test_accepted_push_has_five_strings_and_a_modern_checkout_id(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    response = await daraja.push(phone, receiver.url(), amount=150)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResponseCode",
        "ResponseDescription",
        "CustomerMessage",
    ]
    assert all(isinstance(value, str) for value in body.values())
    assert body["ResponseCode"] == "0"
    assert body["ResponseDescription"] == body["CustomerMessage"] == ACCEPTED_TEXT
    assert re.fullmatch(r"ws_CO_[0-9]{17}" + phone[3:], body["CheckoutRequestID"])
    assert re.fullmatch(
        r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}[0-9]+", body["MerchantRequestID"]
    )
    [seen] = await control.transactions(phone=phone)
    assert (seen.checkout_request_id, seen.amount, seen.state.value) == (
        body["CheckoutRequestID"],
        150,
        "pending",
    )


async def test_numbers_as_strings_and_strings_as_numbers_are_accepted(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    response = await daraja.push(
        phone,
        receiver.url(),
        Amount="25",
        BusinessShortCode=int(daraja.shop.shortcode),
        PartyA=int(phone),
        PartyB=int(daraja.shop.shortcode),
        PhoneNumber=int(phone),
        Remarks="extra fields are ignored",
    )
    assert response.status_code == 200, response.text
    without_desc = daraja.shop.push_body(unique_phone(), receiver.url())
    del without_desc["TransactionDesc"]
    response = await daraja.http.post(PUSH, json=without_desc, headers=await daraja.bearer())
    assert response.status_code == 200, response.text


async def test_a_non_json_content_type_blames_the_shortcode(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    body = json.dumps(daraja.shop.push_body(phone, receiver.url()))
    headers = {**await daraja.bearer(), "Content-Type": "text/plain"}
    response = await daraja.http.post(PUSH, content=body, headers=headers)
    assert envelope_of(response) == invalid("BusinessShortCode")
    assert await nothing_accepted(control, phone)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"text"', b'{"Amount": NaN}', b"\xff\xfe", b""],
    ids=["broken", "array", "string", "nan", "not-utf8", "empty"],
)
async def test_a_body_that_is_not_a_json_object(daraja: Daraja, raw: bytes) -> None:
    headers = {**await daraja.bearer(), "Content-Type": "application/json"}
    response = await daraja.http.post(PUSH, content=raw, headers=headers)
    assert envelope_of(response) == (400, "400.002.05", "Invalid Request Payload")


async def test_an_oversized_body_is_an_invalid_payload(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    body = daraja.shop.push_body(unique_phone(), receiver.url(), Padding="x" * 70_000)
    response = await daraja.http.post(PUSH, json=body, headers=await daraja.bearer())
    assert envelope_of(response) == (400, "400.002.05", "Invalid Request Payload")


MISSING = object()
BAD_VALUES: list[tuple[str, Any]] = [
    ("BusinessShortCode", MISSING),
    ("BusinessShortCode", "12ab5"),
    ("BusinessShortCode", "1234"),
    ("BusinessShortCode", True),
    ("Password", MISSING),
    ("Password", ""),
    ("Password", 12345),
    ("Timestamp", "2026112610300"),
    ("Timestamp", "20261326103000"),
    ("Timestamp", 20261126103000),
    ("TransactionType", "CustomerPay"),
    ("TransactionType", MISSING),
    ("Amount", 0),
    ("Amount", 250_001),
    ("Amount", -5),
    ("Amount", Decimal("10.5")),
    ("Amount", Decimal("10.0")),
    ("Amount", "10.5"),
    ("Amount", " 10"),
    ("Amount", True),
    ("Amount", MISSING),
    ("PartyA", "0712345678"),
    ("PartyA", "+254712345678"),
    ("PartyA", "254812345678"),
    ("PartyB", "12"),
    ("PhoneNumber", "0712345678"),
    ("PhoneNumber", "2547123456789"),
    ("PhoneNumber", MISSING),
    ("CallBackURL", "not a url"),
    ("CallBackURL", "ftp://127.0.0.1/cb"),
    ("CallBackURL", " http://127.0.0.1/cb"),
    ("CallBackURL", MISSING),
    ("AccountReference", "1234567890123"),
    ("AccountReference", ""),
    ("AccountReference", 12345),
    ("AccountReference", MISSING),
    ("TransactionDesc", "12345678901234"),
]


@pytest.mark.parametrize(
    ("field", "value"),
    BAD_VALUES,
    ids=[f"{f}={'missing' if v is MISSING else repr(v)}" for f, v in BAD_VALUES],
)
async def test_each_bad_field_is_named_and_nothing_is_accepted(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver, field: str, value: Any
) -> None:
    phone = unique_phone()
    body = daraja.shop.push_body(phone, receiver.url())
    if value is MISSING:
        del body[field]
    else:
        body[field] = value
    text = json.dumps(body, default=lambda _: "<decimal>")
    if isinstance(value, Decimal):  # a real JSON decimal such as 10.5, not a string
        text = text.replace('"<decimal>"', str(value))
    headers = {**await daraja.bearer(), "Content-Type": "application/json"}
    response = await daraja.http.post(PUSH, content=text, headers=headers)
    assert envelope_of(response) == invalid(field)
    assert await nothing_accepted(control, phone)


async def test_fields_are_checked_in_darajas_order(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    bad = {
        "BusinessShortCode": "x",
        "Password": "",
        "Timestamp": "yesterday",
        "TransactionType": "Pay",
        "Amount": 0,
        "PartyA": "07",
        "PartyB": "x",
        "PhoneNumber": "07",
        "CallBackURL": "nowhere",
        "AccountReference": "",
        "TransactionDesc": "x" * 20,
    }
    good = daraja.shop.push_body(unique_phone(), receiver.url())
    body = dict(bad)
    for field in FIELDS_IN_ORDER:
        response = await daraja.http.post(PUSH, json=body, headers=await daraja.bearer())
        assert envelope_of(response) == invalid(field)
        body[field] = good[field]
    response = await daraja.http.post(PUSH, json=body, headers=await daraja.bearer())
    assert response.status_code == 200


async def test_unknown_shortcode_comes_after_fields_and_before_the_password(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    unknown = "9999991"
    body = daraja.shop.push_body(phone, receiver.url(), BusinessShortCode=unknown, Amount=0)
    response = await daraja.http.post(PUSH, json=body, headers=await daraja.bearer())
    assert envelope_of(response) == invalid("Amount")
    body["Amount"] = 10
    body["Password"] = "wrong"
    response = await daraja.http.post(PUSH, json=body, headers=await daraja.bearer())
    assert envelope_of(response) == (500, "500.001.1001", "Merchant does not exist")
    assert await nothing_accepted(control, phone)


async def test_wrong_password_or_mismatched_timestamp_is_wrong_credentials(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    shop = daraja.shop
    wrong: list[dict[str, Any]] = [
        {"Password": password(shop.shortcode, "not-the-passkey")},
        {"Timestamp": "20261126103001"},  # Password was built for ...103000
        {"Password": password("174379", shop.passkey)},
    ]
    for changes in wrong:
        response = await daraja.push(phone, receiver.url(), **changes)
        assert envelope_of(response) == (500, "500.001.1001", "Wrong credentials")
    assert await nothing_accepted(control, phone)


async def test_a_phone_with_an_open_prompt_cannot_be_locked_again(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await daraja.push_ok(phone, receiver.url(), amount=10)
    response = await daraja.push(phone, receiver.url(), amount=11)
    assert envelope_of(response) == (
        500,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    )
    # Wrong credentials are found before the lock.
    response = await daraja.push(phone, receiver.url(), amount=11, Password="bad")
    assert envelope_of(response)[2] == "Wrong credentials"
    assert len(await control.transactions(phone=phone)) == 1
    await control.advance_clock(2)
    await daraja.push_ok(phone, receiver.url(), amount=11)


async def test_another_shop_cannot_lock_a_busy_phone_either(
    daraja: Daraja, control: SimulatorControl, http: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await daraja.push_ok(phone, receiver.url())
    other = Daraja(http, await register_shop(control))
    response = await other.push(phone, receiver.url())
    assert envelope_of(response)[2].startswith("Unable to lock subscriber")


async def callback_result(control: SimulatorControl, receiver: CallbackReceiver, url: str) -> Any:
    await control.advance_clock(2)
    [received] = receiver.at(url)
    return received.json()["Body"]["stkCallback"]["ResultCode"]


async def test_same_amount_to_the_same_phone_within_two_minutes_is_rule_limited(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    first = receiver.url()
    await daraja.push_ok(phone, first, amount=40)
    assert await callback_result(control, receiver, first) == 0
    again = receiver.url()
    await daraja.push_ok(phone, again, amount=40)
    assert await callback_result(control, receiver, again) == 17
    [limited] = receiver.at(again)
    assert limited.json()["Body"]["stkCallback"]["ResultDesc"] == "Rule limited."
    other_amount = receiver.url()
    await daraja.push_ok(phone, other_amount, amount=41)
    assert await callback_result(control, receiver, other_amount) == 0
    await control.advance_clock(121)
    later = receiver.url()
    await daraja.push_ok(phone, later, amount=40)
    assert await callback_result(control, receiver, later) == 0


async def test_till_pushes_need_buy_goods_and_a_registered_till_number(
    http: httpx.AsyncClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    till_shop: Shop = await register_shop(control, kind=ShortcodeKind.TILL)
    assert till_shop.till_numbers and till_shop.till_numbers[0] != till_shop.shortcode
    daraja = Daraja(http, till_shop)

    right = receiver.url()
    await daraja.push_ok(unique_phone(), right)
    assert await callback_result(control, receiver, right) == 0

    store_as_party_b = receiver.url()
    await daraja.push_ok(unique_phone(), store_as_party_b, PartyB=till_shop.shortcode)
    code = await callback_result(control, receiver, store_as_party_b)
    assert code == "SFC_IC0003"  # a string, as Daraja sends it
    [received] = receiver.at(store_as_party_b)
    assert received.json()["Body"]["stkCallback"]["ResultDesc"] == "The operator does not exist."

    paybill_type = receiver.url()
    await daraja.push_ok(unique_phone(), paybill_type, TransactionType="CustomerPayBillOnline")
    assert await callback_result(control, receiver, paybill_type) == 2028
