"""Callbacks from the real simulator to a real receiver on loopback: shapes and odd types, the
magic numbers, scripted drops, duplicates, late and early delivery, and delivery failures."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.simulator.support import (
    CallbackReceiver,
    Daraja,
    Received,
    closed_port_url,
    register_shop,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def stk(received: Received) -> dict[str, Any]:
    callback: dict[str, Any] = received.json()["Body"]["stkCallback"]
    return callback


def metadata(received: Received) -> dict[str, Any]:
    return {
        item["Name"]: item.get("Value", "<no value>")
        for item in stk(received)["CallbackMetadata"]["Item"]
    }


async def test_success_callback_has_darajas_shape_and_types(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    url = receiver.url()
    response = await daraja.push(phone, url, amount=150)
    pushed = response.json()
    assert receiver.at(url) == []
    result = await control.advance_clock(2)
    assert result.callbacks_delivered >= 1
    [received] = receiver.at(url)
    assert received.content_type == "application/json"
    text = received.body.decode()
    assert '"ResultCode": 0,' in text  # an integer, not "0"
    assert '{"Name": "Amount", "Value": 150.00}' in text
    assert '{"Name": "Balance"}' in text  # no Value at all
    callback = stk(received)
    assert list(callback) == [
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResultCode",
        "ResultDesc",
        "CallbackMetadata",
    ]
    assert callback["MerchantRequestID"] == pushed["MerchantRequestID"]
    assert callback["CheckoutRequestID"] == pushed["CheckoutRequestID"]
    assert callback["ResultDesc"] == "The service request is processed successfully."
    names = [item["Name"] for item in callback["CallbackMetadata"]["Item"]]
    assert names == ["Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber"]
    items = metadata(received)
    assert items["Amount"] == Decimal("150.00")
    assert re.fullmatch(r"[A-Z0-9]{10}", items["MpesaReceiptNumber"])
    assert isinstance(items["TransactionDate"], int) and len(str(items["TransactionDate"])) == 14
    assert items["PhoneNumber"] == int(phone)
    [truth] = await control.transactions(checkout_request_id=pushed["CheckoutRequestID"])
    assert truth.receipt == items["MpesaReceiptNumber"]
    assert truth.state.value == "resolved" and truth.callbacks_sent == 1


async def test_balance_and_amount_shapes_are_settings(
    http: httpx.AsyncClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = await register_shop(
        control, settings={"balance_item": "omit", "amount_style": "integer"}
    )
    url = receiver.url()
    await Daraja(http, shop).push_ok(unique_phone(), url, amount=75)
    await control.advance_clock(2)
    [received] = receiver.at(url)
    assert '{"Name": "Amount", "Value": 75}' in received.body.decode()
    assert "Balance" not in metadata(received)


@pytest.mark.parametrize(
    ("phone", "code", "desc"),
    [
        ("254700000001", 1032, "Request cancelled by user"),
        ("254700000002", 1, "The balance is insufficient for the transaction."),
        ("254700000003", 2001, "The initiator information is invalid."),
        ("254700000004", 1037, "DS timeout user cannot be reached"),
    ],
)
async def test_magic_numbers_fail_the_way_they_say(
    daraja: Daraja,
    control: SimulatorControl,
    receiver: CallbackReceiver,
    phone: str,
    code: int,
    desc: str,
) -> None:
    url = receiver.url()
    await daraja.push_ok(phone, url)
    await control.advance_clock(2)
    [received] = receiver.at(url)
    callback = stk(received)
    assert (callback["ResultCode"], callback["ResultDesc"]) == (code, desc)
    assert "CallbackMetadata" not in callback


async def test_magic_success_and_sandbox_msisdn_pay(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    for phone in ("254700000000", "254708374149"):
        url = receiver.url()
        await daraja.push_ok(phone, url, amount=13)
        await control.advance_clock(2)
        [received] = receiver.at(url)
        assert stk(received)["ResultCode"] == 0


async def test_magic_no_callback_is_settled_by_the_query(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = receiver.url()
    checkout_id = await daraja.push_ok("254700000005", url)
    await control.advance_clock(600)
    assert receiver.at(url) == []
    response = await daraja.query(checkout_id)
    assert response.status_code == 200
    assert response.json()["ResultCode"] == "0"


async def test_magic_unanswered_prompt_expires_with_1037(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = receiver.url()
    checkout_id = await daraja.push_ok("254700000007", url)
    await control.advance_clock(60)
    assert receiver.at(url) == []
    assert (await daraja.query(checkout_id)).status_code == 500  # still being processed
    await control.advance_clock(31)
    [received] = receiver.at(url)
    assert stk(received)["ResultCode"] == 1037
    assert (await daraja.query(checkout_id)).json()["ResultCode"] == "1037"


async def test_magic_duplicate_and_late_callbacks(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    twice = receiver.url()
    await daraja.push_ok("254700000008", twice)
    await control.advance_clock(3)
    first, second = receiver.at(twice)
    assert first.body == second.body

    late = receiver.url()
    checkout_id = await daraja.push_ok("254700000009", late)
    await control.advance_clock(2)
    assert (await daraja.query(checkout_id)).json()["ResultCode"] == "0"
    assert receiver.at(late) == []
    await control.advance_clock(60)
    [received] = receiver.at(late)
    assert stk(received)["ResultCode"] == 0


async def test_magic_push_timeout_still_charges(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = receiver.url()
    body = daraja.shop.push_body("254700000006", url)
    headers = await daraja.bearer()
    with pytest.raises(httpx.ReadTimeout):
        await daraja.http.post(
            "/mpesa/stkpush/v1/processrequest", json=body, headers=headers, timeout=0.5
        )
    [truth] = [
        t
        for t in await control.transactions(phone="254700000006")
        if t.shortcode == daraja.shop.shortcode
    ]
    await control.advance_clock(2)
    [received] = receiver.at(url)
    assert stk(received)["CheckoutRequestID"] == truth.checkout_request_id
    assert stk(received)["ResultCode"] == 0


async def test_magic_gateway_error_after_acceptance(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = receiver.url()
    response = await daraja.push("254700000010", url)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()
    await control.advance_clock(2)
    [received] = receiver.at(url)
    assert stk(received)["ResultCode"] == 0


async def test_magic_callback_before_the_push_response(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    url = receiver.url()
    checkout_id = await daraja.push_ok("254700000011", url)
    [received] = receiver.at(url)  # already there when the push answered
    assert stk(received)["CheckoutRequestID"] == checkout_id


async def test_scripted_string_code_and_prefixed_description(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, result_code="SFC_IC0003")
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url)
    await control.advance_clock(2)
    [received] = receiver.at(url)
    assert '"ResultCode": "SFC_IC0003"' in received.body.decode()
    assert (await daraja.query(checkout_id)).json()["ResultCode"] == "SFC_IC0003"

    await control.set_phone_scenario(
        phone, result_code=1032, result_desc="[STK_CB - ]Request cancelled by user"
    )
    url = receiver.url()
    await daraja.push_ok(phone, url, amount=99)
    await control.advance_clock(2)
    [received] = receiver.at(url)
    assert stk(received)["ResultDesc"] == "[STK_CB - ]Request cancelled by user"


async def test_duplicates_n_times_and_drop(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, duplicates=3, duplicate_interval_s=0.5)
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url)
    await control.advance_clock(5)
    copies = receiver.at(url)
    assert len(copies) == 4 and len({c.body for c in copies}) == 1
    deliveries = await control.callbacks(checkout_request_id=checkout_id)
    assert [d.copy_number for d in deliveries] == [1, 2, 3, 4]

    await control.set_phone_scenario(phone, drop_callback=True)
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url, amount=12)
    await control.advance_clock(120)
    assert receiver.at(url) == []
    [truth] = await control.transactions(checkout_request_id=checkout_id)
    assert (truth.state.value, truth.callbacks_planned, truth.callbacks_sent) == ("resolved", 0, 0)


async def test_callbacks_for_two_attempts_arrive_out_of_order(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, result_code=1032, late_callback_s=30)
    first_url = receiver.url("order")
    first = await daraja.push_ok(phone, first_url, amount=20)
    await control.advance_clock(2)  # first attempt resolved; its callback is 30 s away
    await control.set_phone_scenario(phone, result_code=0)
    second_url = receiver.url("order")
    second = await daraja.push_ok(phone, second_url, amount=21)
    await control.advance_clock(40)
    order = [
        stk(r)["CheckoutRequestID"]
        for r in receiver.received
        if r.path in (httpx.URL(first_url).path, httpx.URL(second_url).path)
    ]
    assert order == [second, first]


async def test_a_scripted_delay_and_a_manual_answer(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, callback_delay_s=30)
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url)
    await control.advance_clock(2)
    assert receiver.at(url) == []
    await control.advance_clock(29)
    assert len(receiver.at(url)) == 1

    await control.set_phone_scenario(phone, unanswered=True)
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url, amount=33)
    await control.resolve(checkout_id, result_code=1032)
    await control.advance_clock(0.01)
    [received] = receiver.at(url)
    assert stk(received)["ResultCode"] == 1032


async def test_callbacks_fall_due_in_real_time_too(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, callback_delay_s=0.2)
    url = receiver.url()
    await daraja.push_ok(phone, url)
    for _ in range(500):  # a bounded wait, not a timing assertion
        if receiver.at(url):
            break
        await asyncio.sleep(0.02)
    assert len(receiver.at(url)) == 1


async def test_delivery_failures_are_recorded_and_never_retried(
    http: httpx.AsyncClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = await register_shop(control, settings={"callback_timeout_s": 0.3})
    daraja = Daraja(http, shop)
    refused = await daraja.push_ok(unique_phone(), closed_port_url())
    server_error = await daraja.push_ok(unique_phone(), receiver.url("status/500"))
    slow = await daraja.push_ok(unique_phone(), receiver.url("slow"))
    accepted = await daraja.push_ok(unique_phone(), receiver.url("status/202"))
    await control.advance_clock(2)
    await control.advance_clock(600)
    outcomes = {
        d.checkout_request_id: (d.status, d.error)
        for d in await control.callbacks(shortcode=shop.shortcode)
    }
    assert outcomes == {
        refused: (None, "could not connect"),
        server_error: (500, None),
        slow: (None, "no answer within 0.3 s"),
        accepted: (202, None),
    }
    deliveries = await control.callbacks(shortcode=shop.shortcode)
    assert len(deliveries) == 4  # one attempt each: Daraja does not retry
    for delivery in deliveries:
        assert delivery.url.endswith("/<redacted>") and "/cb/" not in delivery.url
