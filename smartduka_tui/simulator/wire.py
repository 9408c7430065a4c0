"""Daraja's wire shapes, parsed and written the simulator's own way.

Requests are validated field by field in the order Daraja reports them, so that the first bad
field becomes "Bad Request - Invalid <Field>". Answers keep Daraja's odd types: strings in the
push and query answers, an integer ResultCode in the callback (a string only for codes like
SFC_IC0003), numbers for TransactionDate and PhoneNumber, a Balance item without a Value.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from smartduka_tui.simulator.codes import (
    PUSH_ACCEPTED_TEXT,
    QUERY_ACCEPTED_TEXT,
    ErrorSpec,
)
from smartduka_tui.simulator.schemas import AmountStyle, BalanceItem

KENYA = timezone(timedelta(hours=3), "EAT")
"""Kenya keeps UTC+3 all year, so a fixed offset needs no zone files."""

MIN_AMOUNT = 1
MAX_AMOUNT = 250_000
MAX_ACCOUNT_REFERENCE = 12
MAX_TRANSACTION_DESC = 13

_DIGITS_5_TO_7 = re.compile(r"^[0-9]{5,7}$")
_MSISDN = re.compile(r"^254[17][0-9]{8}$")
_TIMESTAMP = re.compile(r"^[0-9]{14}$")
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,7}$")
_CHECKOUT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ALNUM_UPPER = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


class TransactionType(StrEnum):
    PAYBILL = "CustomerPayBillOnline"
    BUY_GOODS = "CustomerBuyGoodsOnline"


def number_text(value: object) -> str:
    """Daraja takes numeric fields as JSON numbers or digit strings; nothing else (so do the
    statement APIs, for every field they read as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValueError("not a number")


def check_shortcode(value: object) -> str:
    """A business shortcode field (STK push, statement APIs): 5 to 7 digits."""
    text = number_text(value)
    if not _DIGITS_5_TO_7.fullmatch(text):
        raise ValueError("5 to 7 digits")
    return text


def check_msisdn(value: object) -> str:
    """A phone number field: 2547XXXXXXXX or 2541XXXXXXXX."""
    text = number_text(value)
    if not _MSISDN.fullmatch(text):
        raise ValueError("2547XXXXXXXX or 2541XXXXXXXX")
    return text


def _password(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 512:
        raise ValueError("a non-empty string")
    return value


def _timestamp(value: object) -> str:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise ValueError("YYYYMMDDHHmmss")
    try:
        datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise ValueError("not a real date and time") from exc
    return value


def _transaction_type(value: object) -> TransactionType:
    if not isinstance(value, str):
        raise ValueError("a string")
    try:
        return TransactionType(value)
    except ValueError as exc:
        raise ValueError("CustomerPayBillOnline or CustomerBuyGoodsOnline") from exc


def _amount(value: object) -> int:
    # JSON decimals arrive as Decimal and fall through to the refusal: whole shillings only.
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
        amount = int(value)
    else:
        raise ValueError("a whole number")
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise ValueError("between 1 and 250000")
    return amount


def _callback_url(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise ValueError("a URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("no spaces")
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise ValueError("a URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL")
    return value


def _account_reference(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ACCOUNT_REFERENCE:
        raise ValueError("1 to 12 characters")
    return value


def _transaction_desc(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TRANSACTION_DESC:
        raise ValueError("at most 13 characters")
    return value


def _checkout_request_id(value: object) -> str:
    if not isinstance(value, str) or not _CHECKOUT_ID.fullmatch(value):
        raise ValueError("an id")
    return value


class StkPushRequest(BaseModel):
    """The STK push body. Fields are declared in the order Daraja checks them."""

    model_config = ConfigDict(extra="ignore")

    BusinessShortCode: Annotated[str, BeforeValidator(check_shortcode)]
    Password: Annotated[str, BeforeValidator(_password)]
    Timestamp: Annotated[str, BeforeValidator(_timestamp)]
    TransactionType: Annotated[TransactionType, BeforeValidator(_transaction_type)]
    Amount: Annotated[int, BeforeValidator(_amount)]
    PartyA: Annotated[str, BeforeValidator(check_msisdn)]
    PartyB: Annotated[str, BeforeValidator(check_shortcode)]
    PhoneNumber: Annotated[str, BeforeValidator(check_msisdn)]
    CallBackURL: Annotated[str, BeforeValidator(_callback_url)]
    AccountReference: Annotated[str, BeforeValidator(_account_reference)]
    TransactionDesc: Annotated[str | None, BeforeValidator(_transaction_desc)] = None


class StkQueryRequest(BaseModel):
    """The STK query body, in Daraja's checking order."""

    model_config = ConfigDict(extra="ignore")

    BusinessShortCode: Annotated[str, BeforeValidator(check_shortcode)]
    Password: Annotated[str, BeforeValidator(_password)]
    Timestamp: Annotated[str, BeforeValidator(_timestamp)]
    CheckoutRequestID: Annotated[str, BeforeValidator(_checkout_request_id)]


def first_invalid_field(error: ValidationError) -> str:
    """The Daraja field name to blame: the first error in declaration (= checking) order."""
    return str(error.errors()[0]["loc"][0])


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """A JSON object with decimals as Decimal, or None when the body is not one."""
    try:
        parsed = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def is_json_content_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """base64(shortcode + passkey + timestamp), the STK Password."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


def daraja_timestamp(moment: datetime) -> str:
    return moment.astimezone(KENYA).strftime("%Y%m%d%H%M%S")


def parse_daraja_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=KENYA)


def _hex(length: int) -> str:
    return secrets.token_hex((length + 1) // 2)[:length]


def _digits(length: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


def new_request_id() -> str:
    """The new-style envelope requestId, e.g. 1c5b-4ba8-815c-ac45c57a3db01495926."""
    return f"{_hex(4)}-{_hex(4)}-{_hex(4)}-{_hex(12)}{_digits(7)}"


def new_merchant_request_id() -> str:
    """e.g. 2654-4b64-97ff-b827b542881d3130 (hex groups with a numeric tail)."""
    return f"{_hex(4)}-{_hex(4)}-{_hex(4)}-{_hex(12)}{_digits(6)}"


def checkout_request_id(moment: datetime, phone: str) -> str:
    """The 2022-onward shape: ws_CO_ + DDMMYYYYHHMMSS + milliseconds + the 9-digit local MSISDN."""
    local = moment.astimezone(KENYA)
    return f"ws_CO_{local:%d%m%Y%H%M%S}{local.microsecond // 1000:03d}{phone[3:]}"


def new_receipt() -> str:
    """Ten uppercase letters and digits, starting with letters like real M-Pesa receipts."""
    head = "".join(secrets.choice(string.ascii_uppercase) for _ in range(3))
    return head + "".join(secrets.choice(_ALNUM_UPPER) for _ in range(7))


def new_access_token() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(28))


def envelope(spec: ErrorSpec, request_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "requestId": request_id or new_request_id(),
            "errorCode": spec.code,
            "errorMessage": spec.message,
        }
    ).encode()


def token_body(token: str, expires_in: int, as_number: bool) -> bytes:
    return json.dumps(
        {"access_token": token, "expires_in": expires_in if as_number else str(expires_in)}
    ).encode()


def push_accepted_body(merchant_request_id: str, checkout_id: str) -> bytes:
    return json.dumps(
        {
            "MerchantRequestID": merchant_request_id,
            "CheckoutRequestID": checkout_id,
            "ResponseCode": "0",
            "ResponseDescription": PUSH_ACCEPTED_TEXT,
            "CustomerMessage": PUSH_ACCEPTED_TEXT,
        }
    ).encode()


def query_result_body(
    merchant_request_id: str, checkout_id: str, result_code: int | str, result_desc: str
) -> bytes:
    """A resolved query: every value a string, ResultCode included."""
    return json.dumps(
        {
            "ResponseCode": "0",
            "ResponseDescription": QUERY_ACCEPTED_TEXT,
            "MerchantRequestID": merchant_request_id,
            "CheckoutRequestID": checkout_id,
            "ResultCode": str(result_code),
            "ResultDesc": result_desc,
        }
    ).encode()


GATEWAY_ERROR_BODY = (
    b"<html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>"
)


@dataclass(frozen=True, slots=True)
class CallbackFacts:
    """What a callback says about one resolved push."""

    merchant_request_id: str
    checkout_request_id: str
    result_code: int | str
    result_desc: str
    amount: int
    receipt: str
    transaction_date: datetime
    phone: str


def _amount_literal(amount: int, style: AmountStyle) -> str:
    # Written as JSON number text directly so the amount never passes through a float.
    if style is AmountStyle.TWO_DECIMALS:
        return f"{amount}.00"
    if style is AmountStyle.ONE_DECIMAL:
        return f"{amount}.0"
    return str(amount)


def callback_json(facts: CallbackFacts, balance: BalanceItem, amount_style: AmountStyle) -> str:
    """The STK callback body exactly as Daraja writes it; metadata only on ResultCode 0."""
    head = json.dumps(
        {
            "MerchantRequestID": facts.merchant_request_id,
            "CheckoutRequestID": facts.checkout_request_id,
            "ResultCode": facts.result_code,
            "ResultDesc": facts.result_desc,
        }
    )
    if facts.result_code == 0:
        items = [
            f'{{"Name": "Amount", "Value": {_amount_literal(facts.amount, amount_style)}}}',
            json.dumps({"Name": "MpesaReceiptNumber", "Value": facts.receipt}),
        ]
        if balance is BalanceItem.NO_VALUE:
            items.append(json.dumps({"Name": "Balance"}))
        items.append(
            json.dumps(
                {"Name": "TransactionDate", "Value": int(daraja_timestamp(facts.transaction_date))}
            )
        )
        items.append(json.dumps({"Name": "PhoneNumber", "Value": int(facts.phone)}))
        metadata = '{"Item": [' + ", ".join(items) + "]}"
        head = head[:-1] + ', "CallbackMetadata": ' + metadata + "}"
    return '{"Body": {"stkCallback": ' + head + "}}"
