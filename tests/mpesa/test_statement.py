"""The statement protocol's parsers (mpesa/statement.py) without a network: the C2B, result and
pull parsers on Daraja's shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.statement import (
    MsisdnForm,
    ReversalOutcome,
    StatementParseError,
    TransactionStatus,
    parse_async_result,
    parse_c2b_payment,
    parse_payer_phone,
    parse_pull_page,
    reversal_outcome,
)
from tests.support.daraja import PAYLOADS

# --- parsers -------------------------------------------------------------------------------


def _c2b(**changes: str) -> bytes:
    body = json.loads((PAYLOADS / "c2b_confirmation_v2_masked_msisdn.json").read_text())
    body.update(changes)
    return json.dumps(body).encode()


def test_c2b_sample_parses_with_a_masked_payer() -> None:
    payment = parse_c2b_payment(_c2b())
    assert (payment.trans_id, payment.amount, payment.shortcode) == ("TKQ9ZZ1A2B", 150, "5501234")
    assert payment.payer.form is MsisdnForm.MASKED
    assert payment.payer.shown == "2547***149"
    assert payment.payer.could_be("254708374149")
    assert not payment.payer.could_be("254708374148")
    assert payment.paid_at.utcoffset() == timedelta(hours=3)
    assert payment.org_account_balance == Decimal("10450.00")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"TransAmount": "150.50"}, "cents"),
        ({"TransAmount": "0.00"}, "KES 1 to 250,000"),
        ({"TransAmount": "abc"}, "TransAmount"),
        ({"MSISDN": ""}, "MSISDN is missing"),
        ({"MSISDN": "hello"}, "neither a number"),
        ({"TransID": "tk-1"}, "TransID"),
        ({"TransTime": "20261332104501"}, "not a real date"),
        ({"TransactionType": "Send Money"}, "TransactionType"),
    ],
)
def test_c2b_bad_confirmations_are_refused_without_echoing_values(
    changes: dict[str, str], message: str
) -> None:
    with pytest.raises(StatementParseError, match=message) as refused:
        parse_c2b_payment(_c2b(**changes))
    for value in changes.values():
        if len(value) > 4:
            assert value not in str(refused.value)


def test_payer_phone_forms() -> None:
    assert parse_payer_phone("254712345678").could_be("254712345678")
    assert parse_payer_phone("a" * 64).form is MsisdnForm.HASHED
    assert parse_payer_phone("2547 ***** 126").suffix == "126"
    with pytest.raises(StatementParseError, match="not a Kenyan"):
        parse_payer_phone("4477 ***** 126")


def _result(code: object, parameters: object = None) -> bytes:
    result: dict[str, object] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": "x",
        "OriginatorConversationID": "1-2-1",
        "ConversationID": "AG_1",
        "TransactionID": "TKQ9ZZ1A2B",
        "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": "sale 12"}},
    }
    if parameters is not None:
        result["ResultParameters"] = {"ResultParameter": parameters}
    return json.dumps({"Result": result}).encode()


def test_transaction_status_result_parses_numbers_and_times() -> None:
    body = _result(
        0,
        [
            {"Key": "ReceiptNo", "Value": "TKQ9ZZ1A2B"},
            {"Key": "Amount", "Value": 150},
            {"Key": "TransactionStatus", "Value": "Completed"},
            {"Key": "FinalisedTime", "Value": 20261126104501},
            {"Key": "DebitPartyName", "Value": "2547 ***** 149 - JOHN"},
        ],
    )
    result = parse_async_result(body)
    assert result.occasion == "sale 12"
    status = TransactionStatus.from_result(result)
    assert (status.receipt, status.amount, status.status) == (
        "TKQ9ZZ1A2B",
        Decimal(150),
        "Completed",
    )
    assert status.finalised_at == datetime(2026, 11, 26, 7, 45, 1, tzinfo=UTC)


def test_a_single_result_parameter_may_be_an_object() -> None:
    result = parse_async_result(_result(0, {"Key": "Amount", "Value": 1.5}))
    assert result.amount() == Decimal("1.5")


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, ReversalOutcome.REVERSED),
        ("R000001", ReversalOutcome.ALREADY_REVERSED),
        ("r000002", ReversalOutcome.INVALID_ORIGINAL),
        ("2001", ReversalOutcome.FAILED),
        (2006, ReversalOutcome.FAILED),
    ],
)
def test_reversal_outcome_from_the_result_code(code: object, outcome: ReversalOutcome) -> None:
    assert reversal_outcome(parse_async_result(_result(code))) is outcome


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "not a JSON object"),
        (b"{}", "no Result object"),
        (b'{"Result": {"ResultCode": true}}', "ResultCode"),
        (b'{"Result": {"ResultCode": 0, "ResultParameters": 5}}', "not an object"),
        (_result(0, [{"Value": 1}]), "has no Key"),
        (_result(0, [{"Key": "Amount", "Value": [1]}]), "not a plain value"),
        (b"x" * (64 * 1024 + 1), "larger than 64 KiB"),
    ],
)
def test_bad_results_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(StatementParseError, match=message):
        parse_async_result(body)


def test_transaction_status_needs_a_success_with_receipt_and_amount() -> None:
    with pytest.raises(StatementParseError, match="only a ResultCode 0"):
        TransactionStatus.from_result(parse_async_result(_result("R000002")))
    with pytest.raises(StatementParseError, match="lacks ReceiptNo or Amount"):
        TransactionStatus.from_result(parse_async_result(_result(0, [])))


def test_pull_page_shapes() -> None:
    none = parse_pull_page(b'{"ResponseCode": "1001", "Transaction": "[[]]"}')
    assert none.empty
    rows = [
        {
            "transactionId": "TKQ9ZZ1A2B",
            "trxDate": "2026-11-26 10:45:01",
            "msisdn": "2547 ***** 149",
            "transactiontype": "c2b-pay-bill-debit",
            "billreference": "DUKA12",
            "amount": "150.00",
            "organizationname": "Shop",
        }
    ]
    page = parse_pull_page(json.dumps({"ResponseCode": "1000", "Response": [rows]}))
    [row] = page.transactions
    assert (row.transaction_id, row.amount, row.bill_reference) == (
        "TKQ9ZZ1A2B",
        Decimal("150.00"),
        "DUKA12",
    )
    assert row.trx_date.utcoffset() == timedelta(hours=3)
    with pytest.raises(StatementParseError, match="neither 1000 nor 1001"):
        parse_pull_page(b'{"ResponseCode": "500"}')
    with pytest.raises(StatementParseError, match="transactionId"):
        parse_pull_page(json.dumps({"ResponseCode": "1000", "Response": [[{"amount": 1}]]}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26 10:45:01", datetime(2026, 11, 26, 10, 45, 1, tzinfo=KENYA_TZ)),
        (" 2026-02-28 23:59:59 ", datetime(2026, 2, 28, 23, 59, 59, tzinfo=KENYA_TZ)),
        ("2026-1-5 7:05:09", datetime(2026, 1, 5, 7, 5, 9, tzinfo=KENYA_TZ)),
        ("2026-11-26T10:45:01+0300", datetime(2026, 11, 26, 7, 45, 1, tzinfo=UTC)),
        ("2026-11-26T07:45:01.250+0000", datetime(2026, 11, 26, 7, 45, 1, 250000, tzinfo=UTC)),
    ],
)
def test_pull_dates_read_as_kenya_time_unless_they_say_their_zone(
    text: str, expected: datetime
) -> None:
    """Safaricom's own layout takes the fast path; its looser and ISO forms still read."""
    row = {"transactionId": "TKQ9ZZ1A2B", "trxDate": text, "amount": "1"}
    [parsed] = parse_pull_page(
        json.dumps({"ResponseCode": "1000", "Response": [[row]]})
    ).transactions
    assert parsed.trx_date == expected and parsed.trx_date.utcoffset() is not None


@pytest.mark.parametrize(
    "text", ["2026-02-30 10:00:00", "2026-11-26 24:00:00", "2026-11-26", "26/11/2026 10:45:01"]
)
def test_a_pull_date_that_is_no_time_refuses_the_page(text: str) -> None:
    row = {"transactionId": "TKQ9ZZ1A2B", "trxDate": text, "amount": "1"}
    with pytest.raises(StatementParseError, match="trxDate"):
        parse_pull_page(json.dumps({"ResponseCode": "1000", "Response": [[row]]}))


def test_a_pull_page_may_exceed_a_callbacks_64_kib_but_is_still_bounded() -> None:
    row = {
        "transactionId": "TKQ9ZZ1A2B",
        "trxDate": "2026-11-26 10:45:01",
        "msisdn": "2547 ***** 149",
        "transactiontype": "c2b-pay-bill-debit",
        "billreference": "",
        "amount": "150.00",
        "organizationname": "Shop",
    }
    page = json.dumps({"ResponseCode": "1000", "Response": [[row] * 1000]})
    assert len(page) > 64 * 1024
    assert len(parse_pull_page(page).transactions) == 1000
    with pytest.raises(StatementParseError, match="larger than 8192 KiB"):
        parse_pull_page(b" " * (8 * 1024 * 1024 + 1))
