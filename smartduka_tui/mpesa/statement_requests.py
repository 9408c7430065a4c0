"""Building the statement APIs' requests, with Daraja's limits checked before anything is sent.

Every refusal is `InvalidRequestError(field, message)` with Daraja's field name, as for STK; no
message repeats a password, credential or URL (URLs here carry tokens).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from pydantic import SecretStr

from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.phone import PhoneNumberError, normalise_phone
from smartduka_tui.mpesa.requests import InvalidRequestError, check_amount
from smartduka_tui.mpesa.security import SecurityCredentialError, security_credential
from smartduka_tui.mpesa.statement import (
    PULL_DATE_FORMAT,
    C2BResponseType,
    PullQueryRequest,
    PullRegisterRequest,
    QrCodeRequest,
    QrTransactionCode,
    RegisterUrlRequest,
    ReversalRequest,
    TransactionStatusRequest,
)

PULL_WINDOW: Final = timedelta(hours=48)
QR_SIZE_MIN: Final = 100
QR_SIZE_MAX: Final = 1000
REMARKS_MAX: Final = 100
# Safaricom refuses C2B URLs containing these, in any case (CustomerToBusinessRegisterURL).
BANNED_URL_WORDS: Final = ("m-pesa", "mpesa", "safaricom", "exec", "exe", "cmd", "sql", "query")
_SHORTCODE = re.compile(r"^\d{5,7}$")
_RECEIPT = re.compile(r"^[A-Z0-9]{10}$")
_INITIATOR = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_PLAIN = re.compile(r"^[A-Za-z0-9 _.,:/#'\-]*$")


def _shortcode(field: str, value: str) -> str:
    if not _SHORTCODE.fullmatch(value):
        raise InvalidRequestError(field, "must be 5 to 7 digits")
    return value


def _url(field: str, url: str, *, https_only: bool, c2b: bool = False) -> str:
    if not url or any(ch.isspace() for ch in url):
        raise InvalidRequestError(field, "must be a URL without spaces")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidRequestError(field, "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidRequestError(field, "must be an http:// or https:// URL with a host")
    if https_only and parts.scheme != "https":
        raise InvalidRequestError(field, "must be https:// in production")
    if c2b:
        lowered = url.lower()
        for word in BANNED_URL_WORDS:
            if word in lowered:
                raise InvalidRequestError(
                    field, f"must not contain the word {word.upper()!r} (Safaricom refuses it)"
                )
    return url


def normalise_receipt(code: str) -> str:
    """A receipt as a cashier may type it ("tkq9 zz1a2b") in M-Pesa's form ("TKQ9ZZ1A2B")."""
    text = re.sub(r"[\s-]", "", code).upper()
    if not _RECEIPT.fullmatch(text):
        raise InvalidRequestError(
            "TransactionID", "must be an M-Pesa receipt: 10 letters and digits, e.g. TKQ9ZZ1A2B"
        )
    return text


def _text(field: str, value: str, low: int, high: int) -> str:
    if value != value.strip():
        raise InvalidRequestError(field, "must not start or end with spaces")
    if not low <= len(value) <= high:
        raise InvalidRequestError(field, f"must be {low} to {high} characters, got {len(value)}")
    if not _PLAIN.fullmatch(value):
        raise InvalidRequestError(field, "may hold only letters, digits, spaces and . , : / # ' -")
    return value


def check_remarks(remarks: str) -> str:
    """A reversal's Remarks as Daraja takes them, or InvalidRequestError saying why not."""
    return _text("Remarks", remarks, 2, REMARKS_MAX)


def _initiator(name: str) -> str:
    if not _INITIATOR.fullmatch(name):
        raise InvalidRequestError(
            "Initiator", "must be 1 to 64 letters, digits, '_', '.' or '-' (the API operator)"
        )
    return name


def _credential(password: SecretStr, certificate: bytes) -> SecretStr:
    try:
        return security_credential(password, certificate)
    except SecurityCredentialError as exc:
        raise InvalidRequestError("SecurityCredential", str(exc)) from None


def build_register_url(
    shortcode: str,
    *,
    confirmation_url: str,
    validation_url: str | None = None,
    response_type: C2BResponseType = C2BResponseType.COMPLETED,
    production: bool = False,
) -> RegisterUrlRequest:
    """Register a shortcode's C2B URLs (once per shortcode in production)."""
    return RegisterUrlRequest(
        short_code=_shortcode("ShortCode", shortcode),
        response_type=response_type,
        confirmation_url=_url("ConfirmationURL", confirmation_url, https_only=production, c2b=True),
        validation_url=(
            ""
            if validation_url is None
            else _url("ValidationURL", validation_url, https_only=production, c2b=True)
        ),
    )


def build_transaction_status(
    *,
    shortcode: str,
    receipt: str,
    initiator: str,
    password: SecretStr,
    certificate: bytes,
    result_url: str,
    queue_timeout_url: str,
    remarks: str = "Receipt check",
    occasion: str = "",
    production: bool = False,
) -> TransactionStatusRequest:
    """Ask M-Pesa about one receipt of `shortcode`; the answer comes to `result_url`."""
    return TransactionStatusRequest(
        initiator=_initiator(initiator),
        security_credential=_credential(password, certificate),
        transaction_id=normalise_receipt(receipt),
        party_a=_shortcode("PartyA", shortcode),
        result_url=_url("ResultURL", result_url, https_only=production),
        queue_timeout_url=_url("QueueTimeOutURL", queue_timeout_url, https_only=production),
        remarks=_text("Remarks", remarks, 1, REMARKS_MAX),
        occasion=_text("Occasion", occasion, 0, REMARKS_MAX),
    )


def build_reversal(
    *,
    shortcode: str,
    receipt: str,
    amount: int,
    initiator: str,
    password: SecretStr,
    certificate: bytes,
    result_url: str,
    queue_timeout_url: str,
    remarks: str,
    occasion: str = "",
    production: bool = False,
) -> ReversalRequest:
    """Reverse one payment of `amount` shillings to `shortcode`; remarks 2 to 100 characters."""
    return ReversalRequest(
        initiator=_initiator(initiator),
        security_credential=_credential(password, certificate),
        transaction_id=normalise_receipt(receipt),
        amount=check_amount(amount),
        receiver_party=_shortcode("ReceiverParty", shortcode),
        result_url=_url("ResultURL", result_url, https_only=production),
        queue_timeout_url=_url("QueueTimeOutURL", queue_timeout_url, https_only=production),
        remarks=_text("Remarks", remarks, 2, REMARKS_MAX),
        occasion=_text("Occasion", occasion, 0, REMARKS_MAX),
    )


def build_pull_register(
    shortcode: str, *, nominated_number: str, callback_url: str, production: bool = False
) -> PullRegisterRequest:
    try:
        nominated = normalise_phone(nominated_number)
    except PhoneNumberError as exc:
        raise InvalidRequestError("NominatedNumber", str(exc)) from None
    return PullRegisterRequest(
        short_code=_shortcode("ShortCode", shortcode),
        nominated_number=nominated,
        callback_url=_url("CallBackURL", callback_url, https_only=production),
    )


def _pull_moment(field: str, moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequestError(field, "must be a timezone-aware time")
    return moment.astimezone(KENYA_TZ).strftime(PULL_DATE_FORMAT)


def build_pull_query(
    shortcode: str, *, start: datetime, end: datetime, offset: int, now: datetime
) -> PullQueryRequest:
    """One page of `shortcode`'s transactions from `start` to `end`, within the last 48 hours."""
    start_text = _pull_moment("StartDate", start)
    end_text = _pull_moment("EndDate", end)
    if end <= start:
        raise InvalidRequestError("EndDate", "must be after StartDate")
    if start < now - PULL_WINDOW:
        raise InvalidRequestError("StartDate", "Pull Transactions covers only the last 48 hours")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 10**9:
        raise InvalidRequestError("OffSetValue", "must be a whole number, 0 or more")
    return PullQueryRequest(
        short_code=_shortcode("ShortCode", shortcode),
        start_date=start_text,
        end_date=end_text,
        offset_value=str(offset),
    )


def build_qr_code(
    *,
    merchant_name: str,
    reference: str,
    amount: int,
    cpi: str,
    trx_code: QrTransactionCode = QrTransactionCode.BUY_GOODS,
    size: int = 300,
) -> QrCodeRequest:
    """A Dynamic QR for one sale: `cpi` is the till (BG), paybill (PB) or phone."""
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not QR_SIZE_MIN <= size <= QR_SIZE_MAX
    ):
        raise InvalidRequestError("Size", f"must be {QR_SIZE_MIN} to {QR_SIZE_MAX} pixels")
    if not re.fullmatch(r"^\d{5,12}$", cpi):
        raise InvalidRequestError("CPI", "must be a till, paybill or phone number (digits)")
    return QrCodeRequest(
        merchant_name=_text("MerchantName", merchant_name, 1, 40),
        ref_no=_text("RefNo", reference, 1, 20),
        amount=check_amount(amount),
        trx_code=trx_code,
        cpi=cpi,
        size=size,
    )
