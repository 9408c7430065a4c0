"""STK query against the real simulator: pending and resolved answers with Daraja's odd types,
unknown ids, its own checks, and scripted query anomalies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.simulator.support import QUERY, CallbackReceiver, Daraja, password, register_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")

TYPO = "The service request has been accepted successsfully"


def envelope_of(response: httpx.Response) -> tuple[int, str, str, str]:
    body = response.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}, body
    return response.status_code, body["requestId"], body["errorCode"], body["errorMessage"]


async def test_pending_then_resolved(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    response = await daraja.push(unique_phone(), receiver.url())
    pushed = response.json()
    checkout_id = pushed["CheckoutRequestID"]
    pending = await daraja.query(checkout_id)
    assert envelope_of(pending) == (
        500,
        checkout_id,  # the requestId is the CheckoutRequestID itself
        "500.001.1001",
        "The transaction is being processed",
    )
    await control.advance_clock(2)
    resolved = await daraja.query(checkout_id)
    assert resolved.status_code == 200
    assert resolved.json() == {
        "ResponseCode": "0",
        "ResponseDescription": TYPO,
        "MerchantRequestID": pushed["MerchantRequestID"],
        "CheckoutRequestID": checkout_id,
        "ResultCode": "0",
        "ResultDesc": "The service request is processed successfully.",
    }
    assert list(resolved.json()) == [
        "ResponseCode",
        "ResponseDescription",
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResultCode",
        "ResultDesc",
    ]
    [truth] = await control.transactions(checkout_request_id=checkout_id)
    assert truth.queries == 2


async def test_a_failure_reads_as_a_string_code(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, result_code=1032)
    checkout_id = await daraja.push_ok(phone, receiver.url())
    await control.advance_clock(2)
    body = (await daraja.query(checkout_id)).json()
    assert (body["ResultCode"], body["ResultDesc"]) == ("1032", "Request cancelled by user")


async def test_unknown_checkout_ids_get_the_configured_answer(
    http: httpx.AsyncClient, control: SimulatorControl, daraja: Daraja, receiver: CallbackReceiver
) -> None:
    unknown = "ws_CO_01012026000000000700000000"
    status, request_id, code, message = envelope_of(await daraja.query(unknown))
    assert (status, code, message) == (400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")
    assert request_id != unknown

    processing = Daraja(
        http, await register_shop(control, settings={"unknown_checkout_answer": "being_processed"})
    )
    assert envelope_of(await processing.query(unknown)) == (
        500,
        unknown,
        "500.001.1001",
        "The transaction is being processed",
    )
    missing = Daraja(
        http, await register_shop(control, settings={"unknown_checkout_answer": "does_not_exist"})
    )
    assert envelope_of(await missing.query(unknown))[2:] == (
        "500.001.1001",
        "The transaction does not exist",
    )

    # Another shop's transaction is unknown to this one.
    theirs = await processing.push_ok(unique_phone(), receiver.url())
    assert envelope_of(await daraja.query(theirs))[0] == 400


async def test_query_checks_fields_then_merchant_then_password(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    checkout_id = await daraja.push_ok(unique_phone(), receiver.url())
    shop = daraja.shop
    cases: list[tuple[dict[str, Any], tuple[int, str, str]]] = [
        (
            {"CheckoutRequestID": None},
            (400, "400.002.02", "Bad Request - Invalid CheckoutRequestID"),
        ),
        (
            {"CheckoutRequestID": "has space"},
            (400, "400.002.02", "Bad Request - Invalid CheckoutRequestID"),
        ),
        ({"Timestamp": "2026"}, (400, "400.002.02", "Bad Request - Invalid Timestamp")),
        (
            {"BusinessShortCode": "9999992", "Password": "x"},
            (500, "500.001.1001", "Merchant does not exist"),
        ),
        (
            {"Password": password(shop.shortcode, "wrong")},
            (500, "500.001.1001", "Wrong credentials"),
        ),
    ]
    for changes, expected in cases:
        response = await daraja.query(checkout_id, **changes)
        status, _, code, message = envelope_of(response)
        assert (status, code, message) == expected, changes


async def test_query_needs_post_and_a_token(
    daraja: Daraja, http: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    response = await http.get(QUERY, headers=await daraja.bearer())
    assert envelope_of(response)[0::2] == (405, "405.001")
    response = await http.post(QUERY, json=daraja.shop.query_body("ws_CO_1"))
    assert envelope_of(response)[2:] == ("404.001.03", "Invalid Access Token")
    response = await http.post(
        "/mpesa/stkpushquery/v2/query", json={}, headers=await daraja.bearer()
    )
    assert envelope_of(response)[0::2] == (404, "404.001.01")


async def test_stuck_pending_for_the_first_queries_only(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, query_anomaly="stuck_pending", query_anomaly_times=2)
    checkout_id = await daraja.push_ok(phone, receiver.url())
    await control.advance_clock(5)
    answers = [(await daraja.query(checkout_id)).status_code for _ in range(3)]
    assert answers == [500, 500, 200]


@pytest.mark.parametrize(
    ("anomaly", "code", "message"),
    [
        ("spike_arrest", "500.003.02", "Error Occurred: Spike Arrest Violation"),
        ("quota", "500.003.03", "Quota Violation"),
    ],
)
async def test_throttled_queries(
    daraja: Daraja,
    control: SimulatorControl,
    receiver: CallbackReceiver,
    anomaly: str,
    code: str,
    message: str,
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, query_anomaly=anomaly)
    checkout_id = await daraja.push_ok(phone, receiver.url())
    await control.advance_clock(2)
    status, _, got_code, got_message = envelope_of(await daraja.query(checkout_id))
    assert (status, got_code, got_message) == (500, code, message)


async def test_gateway_error_without_an_envelope_and_a_query_that_disagrees(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(
        phone, query_anomaly="gateway_error", query_anomaly_times=1, query_result_code=1032
    )
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url)
    await control.advance_clock(2)
    broken = await daraja.query(checkout_id)
    assert broken.status_code == 503 and broken.headers["content-type"].startswith("text/html")
    body = (await daraja.query(checkout_id)).json()
    assert (body["ResultCode"], body["ResultDesc"]) == ("1032", "Request cancelled by user")
    [callback] = receiver.at(url)
    assert callback.json()["Body"]["stkCallback"]["ResultCode"] == 0  # the callback said paid
