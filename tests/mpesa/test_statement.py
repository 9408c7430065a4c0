"""The statement protocol layer without a network: SecurityCredential, request builders and
their limits, the C2B / result / pull parsers on Daraja's shapes, and the QR half-block text."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import segno
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.qr import QrImageError, qr_modules, qr_to_half_blocks
from smartduka_tui.mpesa.requests import InvalidRequestError
from smartduka_tui.mpesa.security import SecurityCredentialError, security_credential
from smartduka_tui.mpesa.statement import (
    C2BResponseType,
    MsisdnForm,
    QrCodeResponse,
    ReversalOutcome,
    StatementParseError,
    TransactionStatus,
    parse_async_result,
    parse_c2b_payment,
    parse_payer_phone,
    parse_pull_page,
    reversal_outcome,
)
from smartduka_tui.mpesa.statement_requests import (
    build_pull_query,
    build_qr_code,
    build_register_url,
    build_reversal,
    build_transaction_status,
    normalise_receipt,
)
from tests.support.daraja import PAYLOADS

URL = "https://relay.example/hooks/c2b/shop/tok"


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test only")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CERTIFICATE = _certificate(RSA_KEY)


# --- SecurityCredential --------------------------------------------------------------------


def test_security_credential_decrypts_to_the_password_with_pkcs1_v15() -> None:
    credential = security_credential(SecretStr("Initiator-pass 1"), CERTIFICATE)
    ciphertext = base64.b64decode(credential.get_secret_value())
    assert len(ciphertext) == 256
    assert RSA_KEY.decrypt(ciphertext, padding.PKCS1v15()) == b"Initiator-pass 1"
    assert "Initiator-pass" not in repr(credential)


def test_security_credential_accepts_der_and_differs_each_time() -> None:
    der = x509.load_pem_x509_certificate(CERTIFICATE).public_bytes(serialization.Encoding.DER)
    first = security_credential(SecretStr("pw"), der).get_secret_value()
    second = security_credential(SecretStr("pw"), der).get_secret_value()
    assert first != second  # random padding
    assert RSA_KEY.decrypt(base64.b64decode(second), padding.PKCS1v15()) == b"pw"


@pytest.mark.parametrize(
    ("password", "certificate", "message"),
    [
        ("pw", "junk", "not a PEM or DER X.509 certificate"),
        ("pw", "ec", "does not hold an RSA key"),
        ("", "rsa", "initiator password is empty"),
        ("x" * 246, "rsa", "longer than the 245 bytes"),
    ],
    ids=["not-a-certificate", "not-rsa", "empty-password", "too-long"],
)
def test_security_credential_refusals_say_why_without_the_password(
    password: str, certificate: str, message: str
) -> None:
    pem = {
        "junk": b"not a certificate",
        "ec": _certificate(ec.generate_private_key(ec.SECP256R1())),
        "rsa": CERTIFICATE,
    }[certificate]
    with pytest.raises(SecurityCredentialError, match=message) as refused:
        security_credential(SecretStr(password), pem)
    if password:
        assert password not in str(refused.value)


# --- builders ------------------------------------------------------------------------------


def _status(**changes: Any) -> dict[str, object]:
    arguments: dict[str, Any] = {
        "shortcode": "600984",
        "receipt": "tkq9 zz1a2b",
        "initiator": "apiop",
        "password": SecretStr("pw"),
        "certificate": CERTIFICATE,
        "result_url": URL + "/result",
        "queue_timeout_url": URL + "/timeout",
        **changes,
    }
    return build_transaction_status(**arguments).to_wire()


def test_transaction_status_wire_body() -> None:
    body = _status()
    assert body["CommandID"] == "TransactionStatusQuery"
    assert body["TransactionID"] == "TKQ9ZZ1A2B"
    assert (body["PartyA"], body["IdentifierType"]) == ("600984", "4")
    credential = base64.b64decode(str(body["SecurityCredential"]))
    assert RSA_KEY.decrypt(credential, padding.PKCS1v15()) == b"pw"


def test_reversal_wire_body_keeps_safaricoms_spelling() -> None:
    request = build_reversal(
        shortcode="600984",
        receipt="TKQ9ZZ1A2B",
        amount=150,
        initiator="apiop",
        password=SecretStr("pw"),
        certificate=CERTIFICATE,
        result_url=URL + "/r",
        queue_timeout_url=URL + "/t",
        remarks="paid twice",
    )
    body = request.to_wire()
    assert body["RecieverIdentifierType"] == "11"
    assert "ReceiverIdentifierType" not in body
    assert (body["CommandID"], body["Amount"]) == ("TransactionReversal", 150)
    assert "pw" not in repr(request) and URL not in repr(request)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"receipt": "TKQ9"}, "TransactionID", "10 letters and digits"),
        ({"receipt": "TKQ9ZZ1A2B!"}, "TransactionID", "10 letters and digits"),
        ({"shortcode": "12"}, "PartyA", "5 to 7 digits"),
        ({"initiator": "api op"}, "Initiator", "letters, digits"),
        ({"result_url": "ftp://x"}, "ResultURL", "http:// or https://"),
        ({"production": True}, "ResultURL", "https:// in production"),
        ({"remarks": ""}, "Remarks", "1 to 100 characters"),
        ({"remarks": "r" * 101}, "Remarks", "1 to 100 characters"),
        ({"certificate": b"junk"}, "SecurityCredential", "not a PEM or DER"),
    ],
)
def test_transaction_status_builder_refuses_with_the_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    if changes.get("production"):
        changes["result_url"] = "http://relay.example/r"
    with pytest.raises(InvalidRequestError, match=message) as refused:
        _status(**changes)
    assert refused.value.field == field
    assert "relay.example" not in str(refused.value)


@pytest.mark.parametrize(
    ("amount", "remarks", "field"),
    [
        (Decimal("150.50"), "paid twice", "Amount"),
        (0, "paid twice", "Amount"),
        (250_001, "paid twice", "Amount"),
        (150, "x", "Remarks"),
    ],
)
def test_reversal_builder_refuses_cents_range_and_short_remarks(
    amount: Any, remarks: str, field: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        build_reversal(
            shortcode="600984",
            receipt="TKQ9ZZ1A2B",
            amount=amount,
            initiator="apiop",
            password=SecretStr("pw"),
            certificate=CERTIFICATE,
            result_url=URL,
            queue_timeout_url=URL,
            remarks=remarks,
        )
    assert refused.value.field == field


def test_register_url_builder_checks_banned_words_and_https() -> None:
    request = build_register_url("600984", confirmation_url=URL)
    assert request.to_wire() == {
        "ShortCode": "600984",
        "ResponseType": "Completed",
        "ConfirmationURL": URL,
    }
    with pytest.raises(InvalidRequestError, match="'MPESA'") as banned:
        build_register_url("600984", confirmation_url="https://x.example/mpesa/c2b")
    assert banned.value.field == "ConfirmationURL"
    with pytest.raises(InvalidRequestError, match="https:// in production") as plain:
        build_register_url(
            "600984",
            confirmation_url=URL,
            validation_url="http://x.example/v",
            production=True,
            response_type=C2BResponseType.CANCELLED,
        )
    assert plain.value.field == "ValidationURL"


def test_pull_query_builder_formats_kenya_time_and_keeps_to_48_hours() -> None:
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    request = build_pull_query(
        "600984", start=now - timedelta(hours=2), end=now, offset=100, now=now
    )
    assert request.to_wire() == {
        "ShortCode": "600984",
        "StartDate": "2026-11-26 10:00:00",
        "EndDate": "2026-11-26 12:00:00",
        "OffSetValue": "100",
    }
    with pytest.raises(InvalidRequestError, match="last 48 hours"):
        build_pull_query("600984", start=now - timedelta(hours=49), end=now, offset=0, now=now)
    with pytest.raises(InvalidRequestError, match="after StartDate"):
        build_pull_query("600984", start=now, end=now, offset=0, now=now)
    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        build_pull_query("600984", start=datetime(2026, 11, 26), end=now, offset=0, now=now)
    with pytest.raises(InvalidRequestError, match="0 or more"):
        build_pull_query("600984", start=now - timedelta(hours=1), end=now, offset=-1, now=now)


def test_qr_builder_limits() -> None:
    body = build_qr_code(merchant_name="Mama Duka", reference="SALE-1", amount=10, cpi="9000001")
    assert body.to_wire() == {
        "MerchantName": "Mama Duka",
        "RefNo": "SALE-1",
        "Amount": 10,
        "TrxCode": "BG",
        "CPI": "9000001",
        "Size": "300",
    }
    for changes, field in (
        ({"size": 50}, "Size"),
        ({"cpi": "till"}, "CPI"),
        ({"amount": Decimal("9.99")}, "Amount"),
        ({"merchant_name": ""}, "MerchantName"),
    ):
        arguments: dict[str, Any] = {
            "merchant_name": "Mama Duka",
            "reference": "SALE-1",
            "amount": 10,
            "cpi": "9000001",
            **changes,
        }
        with pytest.raises(InvalidRequestError) as refused:
            build_qr_code(**arguments)
        assert refused.value.field == field


@given(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=10, max_size=10))
def test_receipt_normalising_is_idempotent(receipt: str) -> None:
    assert normalise_receipt(receipt.lower()) == receipt
    assert normalise_receipt(normalise_receipt(receipt)) == receipt


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


# --- QR ------------------------------------------------------------------------------------


def _png(content: str, scale: int) -> bytes:
    buffer = io.BytesIO()
    segno.make_qr(content, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_qr_modules_read_back_exactly_at_any_scale(scale: int) -> None:
    content = "SIMQR|BG|9000001|150|SALE-1|12345-678-1"
    expected = segno.make_qr(content, error="m")
    wanted = [[bool(cell) for cell in row] for row in expected.matrix]
    assert qr_modules(_png(content, scale)) == wanted


def test_qr_half_blocks_fit_80x24_with_a_light_quiet_zone() -> None:
    lines = qr_to_half_blocks(_png("SIMQR|BG|9000001|150|SALE-1|12345-678-1", 4))
    modules = segno.make_qr("SIMQR|BG|9000001|150|SALE-1|12345-678-1", error="m").symbol_size(
        border=2
    )[0]
    assert len(lines) == (modules + 1) // 2 <= 24
    assert {len(line) for line in lines} == {modules} and modules <= 80
    assert set(lines[0]) == {"█"}  # the quiet zone is light
    assert set("".join(lines)) <= {" ", "▀", "▄", "█"}


def test_qr_images_that_cannot_be_read_are_refused() -> None:
    with pytest.raises(QrImageError, match="not a readable PNG"):
        qr_to_half_blocks(b"GIF89a")
    blank = io.BytesIO()
    segno.make_qr("x").save(blank, kind="png", scale=1, dark="white", light="white")
    with pytest.raises(QrImageError, match="blank"):
        qr_to_half_blocks(blank.getvalue())
    with pytest.raises(QrImageError, match="does not fit"):
        qr_to_half_blocks(_png("A" * 300, 2))


def test_qr_response_png_must_be_base64_png() -> None:
    good = QrCodeResponse.model_validate({"QRCode": base64.b64encode(_png("x", 2)).decode()})
    assert good.png().startswith(b"\x89PNG")
    with pytest.raises(StatementParseError, match="not a PNG"):
        QrCodeResponse.model_validate({"QRCode": base64.b64encode(b"GIF89a....").decode()}).png()
    with pytest.raises(StatementParseError, match="not base64"):
        QrCodeResponse.model_validate({"QRCode": "!!!!!!!!"}).png()


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
