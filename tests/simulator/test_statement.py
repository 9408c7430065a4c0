"""The statement APIs of the real simulator process over loopback: C2B register URL and direct
payments (with validation), Dynamic QR, Transaction Status, Reversal and Pull Transactions, each
with its quirks, async results (delay, drop, duplicate, timeout) and Daraja's error envelopes.

The SecurityCredential is made here with `cryptography` directly (not with `smartduka_tui.mpesa`),
so a mistake on either side cannot hide behind the same mistake on the other.
"""

from __future__ import annotations

import base64
import io
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from smartduka_tui.simulator.control import SimulatorControl, SimulatorControlError
from smartduka_tui.simulator.schemas import ShortcodeKind
from smartduka_tui.simulator.statement_schemas import NoticeKind, ValidationOutcome
from tests.conftest import unique_phone
from tests.simulator.conftest import InProcess
from tests.simulator.support import CallbackReceiver, Daraja, Shop, register_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")

REGISTER = "/mpesa/c2b/v2/registerurl"
STATUS = "/mpesa/transactionstatus/v1/query"
REVERSAL = "/mpesa/reversal/v1/request"
PULL_REGISTER = "/pulltransactions/v1/register"
PULL_QUERY = "/pulltransactions/v1/query"
QR = "/mpesa/qrcode/v1/generate"
INITIATOR = "apiop"
INITIATOR_PASSWORD = "Safaricom-test-only-1"


def envelope(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["errorCode"], body["errorMessage"]


async def credential(control: SimulatorControl, password: str = INITIATOR_PASSWORD) -> str:
    certificate = x509.load_pem_x509_certificate(await control.certificate())
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return base64.b64encode(key.encrypt(password.encode(), padding.PKCS1v15())).decode()


async def post(daraja: Daraja, path: str, body: dict[str, Any]) -> httpx.Response:
    return await daraja.http.post(path, json=body, headers=await daraja.bearer())


async def register_urls(daraja: Daraja, receiver: CallbackReceiver, **changes: Any) -> str:
    url = receiver.url("c2b")
    body = {
        "ShortCode": daraja.shop.shortcode,
        "ResponseType": "Completed",
        "ConfirmationURL": url,
        **changes,
    }
    response = await post(daraja, REGISTER, body)
    assert response.status_code == 200, response.text
    return url


async def status_body(
    daraja: Daraja, control: SimulatorControl, receipt: str, receiver: CallbackReceiver
) -> dict[str, Any]:
    return {
        "Initiator": INITIATOR,
        "SecurityCredential": await credential(control),
        "CommandID": "TransactionStatusQuery",
        "TransactionID": receipt,
        "PartyA": daraja.shop.shortcode,
        "IdentifierType": "4",
        "ResultURL": receiver.url("result"),
        "QueueTimeOutURL": receiver.url("timeout"),
        "Remarks": "receipt check",
        "Occasion": "sale 12",
    }


async def reversal_body(
    daraja: Daraja,
    control: SimulatorControl,
    receipt: str,
    amount: int,
    receiver: CallbackReceiver,
) -> dict[str, Any]:
    return {
        "Initiator": INITIATOR,
        "SecurityCredential": await credential(control),
        "CommandID": "TransactionReversal",
        "TransactionID": receipt,
        "Amount": amount,
        "ReceiverParty": daraja.shop.shortcode,
        "RecieverIdentifierType": "11",
        "ResultURL": receiver.url("result"),
        "QueueTimeOutURL": receiver.url("timeout"),
        "Remarks": "paid twice",
        "Occasion": "",
    }


def result_of(receiver: CallbackReceiver, url: str) -> dict[str, Any]:
    [received] = receiver.at(url)
    result: dict[str, Any] = received.json()["Result"]
    return result


def parameters(result: dict[str, Any]) -> dict[str, Any]:
    return {p["Key"]: p["Value"] for p in result["ResultParameters"]["ResultParameter"]}


async def paid_shop(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver, amount: str = "150"
) -> tuple[str, str]:
    """URLs registered, an initiator set, one direct payment made: (confirmation URL, receipt)."""
    url = await register_urls(daraja, receiver)
    await control.set_initiator(daraja.shop.shortcode, INITIATOR, INITIATOR_PASSWORD)
    paid = await control.pay_till(daraja.shop.shortcode, unique_phone(), amount)
    return url, paid.trans_id


# --- C2B register URL ----------------------------------------------------------------------


async def test_register_url_answers_with_safaricoms_misspelt_key(daraja: Daraja) -> None:
    body = {
        "ShortCode": daraja.shop.shortcode,
        "ResponseType": "Completed",
        "ConfirmationURL": "http://127.0.0.1:9/c2b/confirm/tok",
        "ValidationURL": "http://127.0.0.1:9/c2b/validate/tok",
    }
    response = await post(daraja, REGISTER, body)
    answer = response.json()
    assert response.status_code == 200
    assert set(answer) == {"OriginatorCoversationID", "ResponseCode", "ResponseDescription"}
    assert (answer["ResponseCode"], answer["ResponseDescription"]) == ("0", "Success")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ResponseType": "completed"}, "Bad Request - Invalid ResponseType"),
        ({"ShortCode": "12"}, "Bad Request - Invalid ShortCode"),
        ({"ConfirmationURL": "not a url"}, "Bad Request - Invalid ConfirmationURL"),
        ({"ConfirmationURL": None}, "Bad Request - Invalid ConfirmationURL"),
    ],
)
async def test_register_url_bad_fields_get_400_002_02(
    daraja: Daraja, receiver: CallbackReceiver, changes: dict[str, Any], message: str
) -> None:
    body = {
        "ShortCode": daraja.shop.shortcode,
        "ResponseType": "Completed",
        "ConfirmationURL": receiver.url("c2b"),
        **changes,
    }
    assert envelope(await post(daraja, REGISTER, body)) == (400, "400.002.02", message)


@pytest.mark.parametrize("word", ["MPESA", "mpesa", "Safaricom", "query", "exec", "cmd", "sql"])
async def test_register_url_refuses_banned_words(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver, word: str
) -> None:
    body = {
        "ShortCode": daraja.shop.shortcode,
        "ResponseType": "Completed",
        "ConfirmationURL": f"http://127.0.0.1:{receiver.port}/{word}/confirm",
    }
    status, code, message = envelope(await post(daraja, REGISTER, body))
    assert (status, code) == (400, "400.003.02")
    assert message.startswith("Bad Request - Invalid ConfirmationURL - URL has the word ")
    # Nothing was registered: a payment now sends no confirmation anywhere.
    paid = await control.pay_till(daraja.shop.shortcode, unique_phone(), "10")
    assert paid.confirmation_registered is False


async def test_production_registers_once_and_needs_https(
    http: httpx.AsyncClient, control: SimulatorControl
) -> None:
    shop = await register_shop(control, settings={"environment": "production"})
    daraja = Daraja(http, shop)
    body = {"ShortCode": shop.shortcode, "ResponseType": "Completed"}
    plain = await post(daraja, REGISTER, {**body, "ConfirmationURL": "http://127.0.0.1:9/c2b/a"})
    assert envelope(plain) == (400, "400.002.02", "Bad Request - Invalid ConfirmationURL")
    first = await post(daraja, REGISTER, {**body, "ConfirmationURL": "https://127.0.0.1:9/c2b/a"})
    assert first.status_code == 200
    again = await post(daraja, REGISTER, {**body, "ConfirmationURL": "https://127.0.0.1:9/c2b/b"})
    assert envelope(again) == (500, "500.003.1001", "Urls are already registered.")


async def test_sandbox_lets_urls_be_registered_again(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    first = await register_urls(daraja, receiver)
    second = await register_urls(daraja, receiver)
    await control.pay_till(daraja.shop.shortcode, unique_phone(), "20")
    await control.advance_clock(2)
    assert receiver.at(first) == []
    assert len(receiver.at(second)) == 1


async def test_register_url_for_another_apps_shortcode_is_merchant_not_found(
    daraja: Daraja, control: SimulatorControl
) -> None:
    other = await register_shop(control)
    body = {
        "ShortCode": other.shortcode,
        "ResponseType": "Completed",
        "ConfirmationURL": "http://127.0.0.1:9/c2b/x",
    }
    assert envelope(await post(daraja, REGISTER, body)) == (
        500,
        "500.001.1001",
        "Merchant does not exist",
    )


# --- C2B payments and confirmations --------------------------------------------------------


async def test_direct_payment_confirms_with_flat_string_body_and_masked_msisdn(
    http: httpx.AsyncClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = await register_shop(control, kind=ShortcodeKind.TILL)
    daraja = Daraja(http, shop)
    url = await register_urls(daraja, receiver)
    phone = unique_phone()
    paid = await control.pay_till(shop.shortcode, phone, "150", first_name="MARY")
    assert receiver.at(url) == []  # confirmations are asynchronous
    await control.advance_clock(2)
    [received] = receiver.at(url)
    body = received.json()
    assert all(isinstance(value, str) for value in body.values())
    assert body["TransactionType"] == "Buy Goods"
    assert body["TransID"] == paid.trans_id
    assert body["TransAmount"] == "150.00"
    assert body["MSISDN"] == f"{phone[:4]} ***** {phone[-3:]}"
    assert body["FirstName"] == "MARY"
    assert body["BusinessShortCode"] == shop.shortcode
    assert body["OrgAccountBalance"] == "150.00"
    assert len(body["TransTime"]) == 14


async def test_payment_with_cents_keeps_them_exact(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = await register_urls(daraja, receiver)
    paid = await control.pay_till(daraja.shop.shortcode, unique_phone(), "150.50")
    assert paid.amount == Decimal("150.50")
    await control.advance_clock(2)
    [received] = receiver.at(url)
    assert received.json()["TransAmount"] == "150.50"
    assert received.json()["TransactionType"] == "Pay Bill"


async def test_pay_till_refuses_bad_control_input(
    daraja: Daraja, control: SimulatorControl
) -> None:
    shortcode = daraja.shop.shortcode
    with pytest.raises(SimulatorControlError) as bad_phone:
        await control.pay_till(shortcode, "0712345678", "10")
    assert bad_phone.value.status == 422
    assert "phone" in bad_phone.value.message
    with pytest.raises(SimulatorControlError) as bad_amount:
        await control.pay_till(shortcode, unique_phone(), "10.001")
    assert bad_amount.value.status == 422
    with pytest.raises(SimulatorControlError) as unknown:
        await control.pay_till("99999", unique_phone(), "10")
    assert unknown.value.status == 404
    assert await control.c2b_payments(shortcode) == []


async def test_async_scenario_duplicates_delays_and_drops_confirmations(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = await register_urls(daraja, receiver)
    shortcode = daraja.shop.shortcode
    await control.set_async_results(shortcode, duplicates=1, delay_s=30, times=1)
    twice = await control.pay_till(shortcode, unique_phone(), "30")
    await control.advance_clock(2)
    assert receiver.at(url) == []  # delayed
    await control.advance_clock(30)
    assert [r.json()["TransID"] for r in receiver.at(url)] == [twice.trans_id] * 2
    await control.set_async_results(shortcode, drop=True, times=1)
    dropped = await control.pay_till(shortcode, unique_phone(), "31")
    normal = await control.pay_till(shortcode, unique_phone(), "32")
    await control.advance_clock(2)
    sent = [r.json()["TransID"] for r in receiver.at(url)]
    assert dropped.trans_id not in sent
    assert normal.trans_id in sent
    notices = await control.notices(shortcode=shortcode, kind=NoticeKind.C2B_CONFIRMATION)
    assert all("/<redacted>" in n.url for n in notices)


async def test_external_validation_accepts_rejects_or_defaults(
    http: httpx.AsyncClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = await register_shop(control, settings={"c2b_external_validation": True})
    daraja = Daraja(http, shop)
    # The receiver answers {"ResultCode": 0} (accept) on ordinary paths and 500 on /status/500.
    confirm = await register_urls(daraja, receiver, ValidationURL=receiver.url("validate"))
    accepted = await control.pay_till(shop.shortcode, unique_phone(), "40")
    assert accepted.validation is ValidationOutcome.ACCEPTED
    failing = f"http://127.0.0.1:{receiver.port}/status/500/validate"
    await register_urls(daraja, receiver, ValidationURL=failing, ResponseType="Cancelled")
    cancelled = await control.pay_till(shop.shortcode, unique_phone(), "41")
    assert cancelled.validation is ValidationOutcome.DEFAULTED
    assert cancelled.completed is False  # Cancelled is the registered default
    rejecting = f"http://127.0.0.1:{receiver.port}/reject/validate"
    await register_urls(daraja, receiver, ValidationURL=rejecting)
    rejected = await control.pay_till(shop.shortcode, unique_phone(), "42")
    assert (rejected.validation, rejected.completed) == (ValidationOutcome.REJECTED, False)
    await control.advance_clock(2)
    assert [r.json()["TransID"] for r in receiver.at(confirm)] == [accepted.trans_id]


# --- Transaction Status --------------------------------------------------------------------


async def test_transaction_status_result_arrives_async_with_the_receipts_facts(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver, "150")
    body = await status_body(daraja, control, receipt, receiver)
    response = await post(daraja, STATUS, body)
    answer = response.json()
    assert response.status_code == 200
    assert answer["ResponseCode"] == "0"
    assert answer["ResponseDescription"] == "Accept the service request successfully."
    assert receiver.at(body["ResultURL"]) == []
    await control.advance_clock(2)
    result = result_of(receiver, body["ResultURL"])
    assert result["ResultCode"] == 0
    assert result["OriginatorConversationID"] == answer["OriginatorConversationID"]
    assert result["ReferenceData"]["ReferenceItem"] == {"Key": "Occasion", "Value": "sale 12"}
    facts = parameters(result)
    assert facts["ReceiptNo"] == receipt
    assert facts["Amount"] == 150  # a number here, not "150.00"
    assert facts["TransactionStatus"] == "Completed"
    assert "*****" in facts["DebitPartyName"]
    assert isinstance(facts["FinalisedTime"], int)


async def test_transaction_status_finds_a_paid_stk_push(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    await control.set_initiator(daraja.shop.shortcode, INITIATOR, INITIATOR_PASSWORD)
    phone = unique_phone()
    await daraja.push_ok(phone, receiver.url(), amount=75)
    await control.advance_clock(2)
    [transaction] = await control.transactions(phone=phone)
    assert transaction.receipt is not None
    body = await status_body(daraja, control, transaction.receipt, receiver)
    await post(daraja, STATUS, body)
    await control.advance_clock(2)
    assert parameters(result_of(receiver, body["ResultURL"]))["Amount"] == 75


@pytest.mark.parametrize("wrong", ["initiator", "password"])
async def test_transaction_status_with_wrong_initiator_ends_2001(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver, wrong: str
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver)
    body = await status_body(daraja, control, receipt, receiver)
    if wrong == "initiator":
        body["Initiator"] = "someoneelse"
    else:
        body["SecurityCredential"] = await credential(control, "not-the-password")
    assert (await post(daraja, STATUS, body)).status_code == 200  # accepted all the same
    await control.advance_clock(2)
    result = result_of(receiver, body["ResultURL"])
    assert (result["ResultCode"], result["ResultDesc"]) == (
        2001,
        "The initiator information is invalid.",
    )
    assert "ResultParameters" not in result


async def test_transaction_status_of_unknown_or_foreign_receipt_is_not_found(
    http: httpx.AsyncClient,
    daraja: Daraja,
    control: SimulatorControl,
    receiver: CallbackReceiver,
) -> None:
    await paid_shop(daraja, control, receiver)
    other = Daraja(http, await register_shop(control))
    _, foreign = await paid_shop(other, control, receiver)
    for receipt in ("ZZZ0000000", foreign):
        body = await status_body(daraja, control, receipt, receiver)
        await post(daraja, STATUS, body)
        await control.advance_clock(2)
        assert result_of(receiver, body["ResultURL"])["ResultCode"] == "R000002"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"CommandID": None, "Command ID": "TransactionStatusQuery"}, "CommandID"),
        ({"TransactionID": "bad receipt"}, "TransactionID"),
        ({"IdentifierType": "9"}, "IdentifierType"),
        ({"ResultURL": "ftp://x"}, "ResultURL"),
        ({"Remarks": ""}, "Remarks"),
        ({"Initiator": ""}, "Initiator"),
    ],
)
async def test_transaction_status_bad_fields_get_400_002_02(
    daraja: Daraja,
    control: SimulatorControl,
    receiver: CallbackReceiver,
    changes: dict[str, Any],
    field: str,
) -> None:
    body = await status_body(daraja, control, "ZZZ0000000", receiver)
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    assert envelope(await post(daraja, STATUS, body)) == (
        400,
        "400.002.02",
        f"Bad Request - Invalid {field}",
    )
    await control.advance_clock(2)
    assert receiver.at(body["ResultURL"]) == []


async def test_queue_timeout_goes_to_queue_timeout_url(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver)
    await control.set_async_results(daraja.shop.shortcode, timeout=True, times=1)
    body = await status_body(daraja, control, receipt, receiver)
    await post(daraja, STATUS, body)
    await control.advance_clock(2)
    assert receiver.at(body["ResultURL"]) == []
    assert result_of(receiver, body["QueueTimeOutURL"])["ResultType"] == 1


# --- Reversal ------------------------------------------------------------------------------


async def test_reversal_succeeds_once_then_is_already_reversed(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver, "200")
    first = await reversal_body(daraja, control, receipt, 200, receiver)
    accepted = await post(daraja, REVERSAL, first)
    assert accepted.json()["ResponseCode"] == "0"
    [payment] = await control.c2b_payments(daraja.shop.shortcode)
    await control.advance_clock(2)
    result = result_of(receiver, first["ResultURL"])
    assert result["ResultCode"] == 0
    facts = parameters(result)
    assert facts["OriginalTransactionID"] == receipt
    assert facts["Amount"] == 200
    [payment] = await control.c2b_payments(daraja.shop.shortcode)
    assert payment.reversed is True
    again = await reversal_body(daraja, control, receipt, 200, receiver)
    await post(daraja, REVERSAL, again)
    await control.advance_clock(2)
    result = result_of(receiver, again["ResultURL"])
    assert result["ResultCode"] == "R000001"  # a string, unlike 0
    assert "ResultParameters" not in result


async def test_a_paid_stk_push_can_be_reversed_once(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    await control.set_initiator(daraja.shop.shortcode, INITIATOR, INITIATOR_PASSWORD)
    phone = unique_phone()
    await daraja.push_ok(phone, receiver.url(), amount=60)
    await control.advance_clock(2)
    [transaction] = await control.transactions(phone=phone)
    assert transaction.receipt is not None
    codes = []
    for _ in range(2):
        body = await reversal_body(daraja, control, transaction.receipt, 60, receiver)
        await post(daraja, REVERSAL, body)
        await control.advance_clock(2)
        codes.append(result_of(receiver, body["ResultURL"])["ResultCode"])
    assert codes == [0, "R000001"]
    status = await status_body(daraja, control, transaction.receipt, receiver)
    await post(daraja, STATUS, status)
    await control.advance_clock(2)
    assert parameters(result_of(receiver, status["ResultURL"]))["TransactionStatus"] == "Reversed"


async def test_reversal_of_unknown_receipt_or_wrong_amount_is_r000002(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver, "200")
    for wrong_receipt, amount in (("ZZZ0000000", 200), (receipt, 199)):
        body = await reversal_body(daraja, control, wrong_receipt, amount, receiver)
        await post(daraja, REVERSAL, body)
        await control.advance_clock(2)
        assert result_of(receiver, body["ResultURL"])["ResultCode"] == "R000002"
    [payment] = await control.c2b_payments(daraja.shop.shortcode)
    assert payment.reversed is False


async def test_reversal_needs_safaricoms_spelling(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver)
    body = await reversal_body(daraja, control, receipt, 150, receiver)
    body["ReceiverIdentifierType"] = body.pop("RecieverIdentifierType")
    assert envelope(await post(daraja, REVERSAL, body)) == (
        400,
        "400.002.02",
        "Bad Request - Invalid RecieverIdentifierType",
    )
    await control.advance_clock(2)
    [payment] = await control.c2b_payments(daraja.shop.shortcode)
    assert payment.reversed is False


async def test_reversal_forced_result_code_and_dropped_result(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver)
    shortcode = daraja.shop.shortcode
    await control.set_async_results(shortcode, result_code=2006, times=1)
    forced = await reversal_body(daraja, control, receipt, 150, receiver)
    await post(daraja, REVERSAL, forced)
    await control.advance_clock(2)
    assert result_of(receiver, forced["ResultURL"])["ResultCode"] == 2006
    assert (await control.c2b_payments(shortcode))[0].reversed is False
    # A dropped result still reverses: the notice is lost, not the money movement.
    await control.set_async_results(shortcode, drop=True, times=1)
    dropped = await reversal_body(daraja, control, receipt, 150, receiver)
    await post(daraja, REVERSAL, dropped)
    await control.advance_clock(2)
    assert receiver.at(dropped["ResultURL"]) == []
    assert (await control.c2b_payments(shortcode))[0].reversed is True


# --- Pull Transactions ---------------------------------------------------------------------


async def test_pull_register_once_then_1001(daraja: Daraja, receiver: CallbackReceiver) -> None:
    body = {
        "ShortCode": daraja.shop.shortcode,
        "RequestType": "Pull",
        "NominatedNumber": unique_phone(),
        "CallBackURL": receiver.url("pull"),
    }
    first = (await post(daraja, PULL_REGISTER, body)).json()
    assert (first["ResponseStatus"], first["ResponseDescription"]) == (
        "1000",
        "Shortcode Registered Successfully",
    )
    again = await post(daraja, PULL_REGISTER, body)
    assert again.status_code == 200
    assert again.json()["ResponseStatus"] == "1001"


async def test_pull_query_pages_payments_and_stk_receipts(
    http: httpx.AsyncClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = await register_shop(control, settings={"pull_page_size": 2})
    daraja = Daraja(http, shop)
    body = {
        "ShortCode": shop.shortcode,
        "StartDate": "2020-01-01 0:00:00",  # unpadded hour, as in Safaricom's sample
        "EndDate": "2099-12-31 23:59:59",
        "OffSetValue": "0",
    }
    unregistered = (await post(daraja, PULL_QUERY, body)).json()
    assert (unregistered["ResponseCode"], unregistered["Transaction"]) == ("1001", "[[]]")
    register = {
        "ShortCode": shop.shortcode,
        "RequestType": "Pull",
        "NominatedNumber": unique_phone(),
        "CallBackURL": receiver.url("pull"),
    }
    await post(daraja, PULL_REGISTER, register)
    paid = [await control.pay_till(shop.shortcode, unique_phone(), str(n)) for n in (11, 12)]
    phone = unique_phone()
    await daraja.push_ok(phone, receiver.url(), amount=13)
    await control.advance_clock(2)
    [stk] = await control.transactions(phone=phone)
    seen: list[dict[str, Any]] = []
    for offset in ("0", "2", "4"):
        page = await post(daraja, PULL_QUERY, {**body, "OffSetValue": offset})
        assert page.status_code == 200
        answer = page.json()
        if answer["ResponseCode"] == "1001":
            break
        assert answer["ResponseCode"] == "1000"
        [rows] = answer["Response"]
        assert len(rows) <= 2
        seen.extend(rows)
    assert [r["transactionId"] for r in seen] == [p.trans_id for p in paid] + [stk.receipt]
    assert [r["amount"] for r in seen] == ["11.00", "12.00", "13.00"]
    assert seen[0]["transactiontype"] == "c2b-pay-bill-debit"


async def test_pull_query_bad_dates_get_400_002_02(daraja: Daraja) -> None:
    body = {
        "ShortCode": daraja.shop.shortcode,
        "StartDate": "04/08/2020",
        "EndDate": "2099-12-31 23:59:59",
        "OffSetValue": "0",
    }
    assert envelope(await post(daraja, PULL_QUERY, body)) == (
        400,
        "400.002.02",
        "Bad Request - Invalid StartDate",
    )
    body.update(StartDate="2020-01-01 00:00:00", OffSetValue="-1")
    assert envelope(await post(daraja, PULL_QUERY, body))[2] == "Bad Request - Invalid OffSetValue"


async def test_pull_covers_only_the_last_48_hours(inproc: InProcess) -> None:
    shop: Shop = await register_shop(inproc.control)
    daraja = Daraja(inproc.http, shop)
    register = {
        "ShortCode": shop.shortcode,
        "RequestType": "Pull",
        "NominatedNumber": unique_phone(),
        "CallBackURL": "http://127.0.0.1:9/pull",
    }
    await post(daraja, PULL_REGISTER, register)
    old = await inproc.control.pay_till(shop.shortcode, unique_phone(), "50")
    await inproc.control.advance_clock(47 * 3600)
    recent = await inproc.control.pay_till(shop.shortcode, unique_phone(), "51")
    await inproc.control.advance_clock(2 * 3600)
    daraja = Daraja(inproc.http, shop)  # the first token expired meanwhile
    body = {
        "ShortCode": shop.shortcode,
        "StartDate": "2000-01-01 00:00:00",
        "EndDate": "2099-12-31 23:59:59",
        "OffSetValue": "0",
    }
    [rows] = (await post(daraja, PULL_QUERY, body)).json()["Response"]
    assert [r["transactionId"] for r in rows] == [recent.trans_id]
    assert old.trans_id != recent.trans_id


# --- Dynamic QR ----------------------------------------------------------------------------


async def test_qr_returns_a_real_png_and_its_payment_confirms(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = await register_urls(daraja, receiver)
    body = {
        "MerchantName": "Mama Duka",
        "RefNo": "SALE-77",
        "Amount": 250,
        "TrxCode": "PB",
        "CPI": daraja.shop.shortcode,
        "Size": "300",
    }
    response = await post(daraja, QR, body)
    answer = response.json()
    assert response.status_code == 200
    assert answer["ResponseDescription"] == "QR Code Successfully Generated."
    assert answer["ResponseCode"].startswith("AG_")
    image = Image.open(io.BytesIO(base64.b64decode(answer["QRCode"])))
    assert image.format == "PNG"
    assert 200 <= image.size[0] <= 300
    with pytest.raises(SimulatorControlError) as wrong_amount:
        await control.pay_till(
            daraja.shop.shortcode, unique_phone(), "249", qr_request_id=answer["RequestID"]
        )
    assert wrong_amount.value.status == 422
    paid = await control.pay_till(
        daraja.shop.shortcode, unique_phone(), "250", qr_request_id=answer["RequestID"]
    )
    await control.advance_clock(2)
    assert [json.loads(r.body)["TransID"] for r in receiver.at(url)] == [paid.trans_id]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"TrxCode": "XX"}, "TrxCode"),
        ({"Amount": 10.5}, "Amount"),
        ({"Size": "5"}, "Size"),
        ({"MerchantName": ""}, "MerchantName"),
    ],
)
async def test_qr_bad_fields_get_400_002_02(
    daraja: Daraja, changes: dict[str, Any], field: str
) -> None:
    body = {
        "MerchantName": "Mama Duka",
        "RefNo": "SALE-77",
        "Amount": 250,
        "TrxCode": "BG",
        "CPI": "9000001",
        "Size": "300",
        **changes,
    }
    assert envelope(await post(daraja, QR, body)) == (
        400,
        "400.002.02",
        f"Bad Request - Invalid {field}",
    )


async def test_statement_apis_need_a_bearer_token(http: httpx.AsyncClient) -> None:
    for path in (REGISTER, STATUS, REVERSAL, PULL_REGISTER, PULL_QUERY, QR):
        response = await http.post(path, json={})
        assert envelope(response) == (404, "404.001.03", "Invalid Access Token"), path


async def test_request_log_redacts_the_security_credential(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    _, receipt = await paid_shop(daraja, control, receiver)
    body = await status_body(daraja, control, receipt, receiver)
    await post(daraja, STATUS, body)
    entries = [
        e for e in await control.requests(shortcode=daraja.shop.shortcode) if e.path == STATUS
    ]
    assert entries
    logged = json.dumps([e.body for e in entries])
    assert body["SecurityCredential"] not in logged
    assert "<redacted>" in logged


FUZZ_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
STATEMENT_FIELDS = {
    STATUS: [
        "Initiator",
        "SecurityCredential",
        "CommandID",
        "TransactionID",
        "PartyA",
        "IdentifierType",
        "ResultURL",
        "QueueTimeOutURL",
        "Remarks",
        "Occasion",
    ],
    REVERSAL: ["TransactionID", "Amount", "ReceiverParty", "RecieverIdentifierType", "Remarks"],
    REGISTER: ["ShortCode", "ResponseType", "ConfirmationURL", "ValidationURL"],
    PULL_QUERY: ["ShortCode", "StartDate", "EndDate", "OffSetValue"],
    QR: ["MerchantName", "RefNo", "Amount", "TrxCode", "CPI", "Size"],
}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_arbitrary_statement_bodies_get_a_daraja_answer(
    inproc: InProcess, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(sorted(STATEMENT_FIELDS)))
    body = data.draw(
        st.dictionaries(st.sampled_from(STATEMENT_FIELDS[path]), FUZZ_VALUES, max_size=6)
    )
    shop = await register_shop(inproc.control)
    daraja = Daraja(inproc.http, shop)
    response = await post(daraja, path, body)
    answer = response.json()
    if response.status_code == 200:
        assert "ResponseCode" in answer or "ResponseStatus" in answer
    else:
        assert response.status_code in (400, 500)
        assert set(answer) == {"requestId", "errorCode", "errorMessage"}
