"""The statement APIs' request builders and their limits (mpesa/statement_requests.py), without a
network."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from smartduka_tui.mpesa.requests import InvalidRequestError
from smartduka_tui.mpesa.statement import (
    C2BResponseType,
)
from smartduka_tui.mpesa.statement_requests import (
    build_pull_query,
    build_qr_code,
    build_register_url,
    build_reversal,
    build_transaction_status,
    normalise_receipt,
)
from tests.mpesa.test_security import CERTIFICATE, RSA_KEY

URL = "https://relay.example/hooks/c2b/shop/tok"


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
