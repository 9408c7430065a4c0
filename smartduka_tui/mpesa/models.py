"""Daraja wire shapes (pydantic v2) and the STK callback parser.

Every model here parses the real-world variants in `shared/daraja/payloads/`: `expires_in` as a
string or a number, `ResultCode` as an int in callbacks but a string in query answers (and
non-numeric codes such as `SFC_IC0003`), `Balance` items without a `Value`, metadata in any order,
and `[STK_CB - ]`-style prefixes on `ResultDesc`. Money is `Decimal` or int, never float.

`parse_stk_callback` is the one door for callback bodies. It raises only `CallbackParseError`,
whose message says what is wrong and never repeats values from the body. The relay, which stores
bodies without reading them, only asks `check_callback_shape` (never stricter than the parser).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from smartduka_tui.mpesa.kenya_time import parse_kenya_timestamp

# The relay refuses bodies over 64 KiB while streaming; the parser keeps the same ceiling so it
# is safe on its own too.
MAX_CALLBACK_BYTES: Final = 64 * 1024
_MAX_DEPTH: Final = 32
_MAX_ITEMS: Final = 64
_MAX_EXPONENT: Final = 30
# ResultCodes are small; anything with more digits is hostile or broken (and str() of a huge int
# is slow).
_MAX_CODE_DIGITS: Final = 12
_CODE_TEXT = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
# A number as Daraja writes one: no sign, no leading zero, no spaces (so "0" but never "00").
_CANONICAL_NUMBER = re.compile(r"^(?:0|[1-9][0-9]{0,11})$")
_DESC_PREFIX = re.compile(r"^(?:\s*\[[^\]\n]{0,40}\])+\s*")
_RECEIPT = re.compile(r"^[A-Za-z0-9]{1,32}$")
_PHONE_TEXT = re.compile(r"^[0-9][0-9 *+\-]{0,23}$")
_DECIMAL_TEXT = re.compile(r"^\d{1,12}(?:\.\d{1,6})?$")

JsonScalar = str | int | Decimal | bool | None
_T = TypeVar("_T")
_KNOWN_ITEMS: Final = frozenset(
    {"Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber"}
)


class CallbackParseError(ValueError):
    """A body that is not a well-formed STK callback. The message names the problem, not values."""


class MalformedJson(CallbackParseError):
    """A body that is not strict JSON at all (see `strict_json`), let alone a callback."""


class TransactionType(StrEnum):
    """Daraja's TransactionType: paybill or Buy Goods (till)."""

    PAYBILL = "CustomerPayBillOnline"
    BUY_GOODS = "CustomerBuyGoodsOnline"


def normalise_result_code(raw: int | str) -> int | str:
    """Numeric codes in their one canonical spelling as int ("1032" -> 1032); anything else
    upper-cased as given ("sfc_ic0003" -> "SFC_IC0003", "00" stays "00", "+0" stays "+0").

    Only the integer 0 or the exact string "0" is success: "00", "-0", "+0" or " 0" are not
    how Daraja writes it, so they stay codes nobody knows (a manager looks), never "paid".
    """
    if isinstance(raw, bool):
        raise ValueError("a result code is not a boolean")
    if isinstance(raw, int):
        return raw
    if _CANONICAL_NUMBER.fullmatch(raw):
        return int(raw)
    return raw.upper()


def result_code_key(raw: int | str) -> str:
    """The code as one comparable string: 0 and "0" are both "0", "sfc_ic0003" is "SFC_IC0003"."""
    return str(normalise_result_code(raw))


def clean_description(raw: str) -> str:
    """ResultDesc without the `[STK_CB - ]`/`[MpesaCB - ]` prefixes older Daraja versions added."""
    return _DESC_PREFIX.sub("", raw, count=1).strip()


def _result_code(value: object) -> int | str:
    if isinstance(value, bool):
        raise ValueError("ResultCode must be a number or a code, not a boolean")
    if isinstance(value, int):
        if abs(value) >= 10**_MAX_CODE_DIGITS:
            raise ValueError("ResultCode is out of range")
        return value
    if isinstance(value, str):
        # Not stripped: " 0" is not Daraja's "0", and a code with spaces is no code at all.
        if not _CODE_TEXT.fullmatch(value):
            raise ValueError("ResultCode must be 1-32 letters, digits, '_', '.' or '-'")
        return value
    raise ValueError("ResultCode must be a whole number or a code string")


def _response_code(value: object) -> str:
    """Sync ResponseCode: Daraja sends "0"; some SDKs saw 0. Kept as text."""
    if isinstance(value, bool):
        raise ValueError("ResponseCode must be a number or a code, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    raise ValueError("ResponseCode must be a whole number or a code string")


def _digit_string(value: object) -> object:
    """Shortcodes and MSISDNs arrive as numbers or strings; we hold them as digit strings."""
    if isinstance(value, bool):
        raise ValueError("expected digits, not a boolean")
    if isinstance(value, int):
        return str(value)
    return value


def _expires_in(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expires_in must be a number of seconds, not a boolean")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        seconds = int(value.strip())
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if value.adjusted() > 9:
            raise ValueError("expires_in is out of range")
        seconds = int(value)
    else:
        raise ValueError("expires_in must be a whole number of seconds")
    if not 0 < seconds <= 10**8:
        raise ValueError("expires_in must be a positive number of seconds")
    return seconds


ResultCode = Annotated[int | str, BeforeValidator(_result_code)]
ResponseCode = Annotated[str, BeforeValidator(_response_code)]
DigitString = Annotated[str, BeforeValidator(_digit_string), Field(pattern=r"^\d{1,20}$")]
Timestamp = Annotated[str, Field(pattern=r"^\d{14}$")]


class WireModel(BaseModel):
    """Base of Daraja's shapes: PascalCase aliases on the wire, snake_case in Python."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    def to_wire(self) -> dict[str, object]:
        """The JSON body to send, secrets (Password, SecurityCredential) revealed: only ever
        handed to httpx."""
        body = self.model_dump(by_alias=True, mode="json")
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                body[info.alias or name] = value.get_secret_value()
        return body


# --- OAuth ---------------------------------------------------------------------------------


class OAuthResponse(WireModel):
    """`GET /oauth/v1/generate`: the token (kept secret) and its lifetime in seconds."""

    access_token: SecretStr = Field(min_length=1)
    expires_in: Annotated[int, BeforeValidator(_expires_in)]


# --- Error envelope ------------------------------------------------------------------------


class ErrorEnvelope(WireModel):
    """Daraja's error body `{requestId, errorCode, errorMessage}`, on any HTTP status."""

    request_id: str = Field(default="", alias="requestId", max_length=256)
    error_code: str = Field(alias="errorCode", min_length=1, max_length=64)
    error_message: str = Field(default="", alias="errorMessage", max_length=2048)


def parse_error_envelope(body: bytes | str) -> ErrorEnvelope | None:
    """The envelope in `body`, or None when the body is anything else (empty, HTML, other JSON)."""
    try:
        data = strict_json(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "errorCode" not in data:
        return None
    try:
        return ErrorEnvelope.model_validate(data)
    except ValidationError:
        return None


# --- STK push ------------------------------------------------------------------------------


class StkPushRequest(WireModel):
    """`POST /mpesa/stkpush/v1/processrequest` body. Build it with `requests.build_stk_push`."""

    business_short_code: DigitString = Field(alias="BusinessShortCode")
    password: SecretStr = Field(alias="Password")
    timestamp: Timestamp = Field(alias="Timestamp")
    transaction_type: TransactionType = Field(alias="TransactionType")
    amount: int = Field(alias="Amount", ge=1, le=250_000, strict=True)
    party_a: DigitString = Field(alias="PartyA")
    party_b: DigitString = Field(alias="PartyB")
    phone_number: DigitString = Field(alias="PhoneNumber")
    # The callback path is a capability (DESIGN.md section 4): kept out of reprs and logs.
    callback_url: str = Field(alias="CallBackURL", min_length=1, max_length=1024, repr=False)
    account_reference: str = Field(alias="AccountReference", min_length=1, max_length=12)
    transaction_desc: str = Field(alias="TransactionDesc", min_length=1, max_length=13)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_from_text(cls, value: object) -> object:
        # Daraja's own sample sends "1"; accept whole-number text when reading, never bool.
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 7:
            return int(value.strip())
        return value


class StkPushResponse(WireModel):
    """Sync answer to a push: the request was accepted; the outcome comes later."""

    merchant_request_id: str = Field(alias="MerchantRequestID", min_length=1, max_length=128)
    checkout_request_id: str = Field(alias="CheckoutRequestID", min_length=1, max_length=128)
    response_code: ResponseCode = Field(alias="ResponseCode")
    response_description: str = Field(default="", alias="ResponseDescription", max_length=2048)
    customer_message: str = Field(default="", alias="CustomerMessage", max_length=2048)

    @property
    def accepted(self) -> bool:
        return self.response_code == "0"


# --- STK query -----------------------------------------------------------------------------


class StkQueryRequest(WireModel):
    """`POST /mpesa/stkpushquery/v1/query` body. Build it with `requests.build_stk_query`."""

    business_short_code: DigitString = Field(alias="BusinessShortCode")
    password: SecretStr = Field(alias="Password")
    timestamp: Timestamp = Field(alias="Timestamp")
    checkout_request_id: str = Field(alias="CheckoutRequestID", min_length=1, max_length=128)


class StkQueryResponse(WireModel):
    """A query answer that carries a result. ResultCode is usually a string here ("1032")."""

    response_code: ResponseCode = Field(alias="ResponseCode")
    response_description: str = Field(default="", alias="ResponseDescription", max_length=2048)
    merchant_request_id: str = Field(default="", alias="MerchantRequestID", max_length=128)
    checkout_request_id: str = Field(alias="CheckoutRequestID", min_length=1, max_length=128)
    result_code_raw: ResultCode = Field(alias="ResultCode")
    result_desc_raw: str = Field(default="", alias="ResultDesc", max_length=2048)

    @property
    def result_code(self) -> int | str:
        return normalise_result_code(self.result_code_raw)

    @property
    def code_key(self) -> str:
        return result_code_key(self.result_code_raw)

    @property
    def description(self) -> str:
        return clean_description(self.result_desc_raw)


# --- C2B (direct till payments; read when matching, not sent by us) --------------------------


def _decimal_text(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if not _DECIMAL_TEXT.fullmatch(text):
            raise ValueError("expected an amount such as 150.00")
        return Decimal(text)
    return value


class C2BConfirmation(WireModel):
    """C2B v2 validation/confirmation body: flat, every value a string, MSISDN masked."""

    transaction_type: str = Field(alias="TransactionType")
    trans_id: str = Field(alias="TransID", min_length=1, max_length=32)
    trans_time: Timestamp = Field(alias="TransTime")
    trans_amount: Annotated[Decimal, BeforeValidator(_decimal_text)] = Field(alias="TransAmount")
    business_short_code: DigitString = Field(alias="BusinessShortCode")
    bill_ref_number: str = Field(default="", alias="BillRefNumber", max_length=64)
    invoice_number: str = Field(default="", alias="InvoiceNumber", max_length=64)
    org_account_balance: Annotated[Decimal | None, BeforeValidator(_decimal_text)] = Field(
        default=None, alias="OrgAccountBalance"
    )
    third_party_trans_id: str = Field(default="", alias="ThirdPartyTransID", max_length=64)
    msisdn: str = Field(default="", alias="MSISDN", max_length=64)
    first_name: str = Field(default="", alias="FirstName", max_length=64)
    middle_name: str = Field(default="", alias="MiddleName", max_length=64)
    last_name: str = Field(default="", alias="LastName", max_length=64)


# --- STK callback --------------------------------------------------------------------------


class _Wire(BaseModel):
    """The callback as it arrives: Daraja's own names, unknown keys ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class _WireMetadataItem(_Wire):
    Name: str = Field(min_length=1, max_length=64)
    Value: str | int | Decimal | bool | None = None

    @field_validator("Value")
    @classmethod
    def _bounded(cls, value: JsonScalar) -> JsonScalar:
        if isinstance(value, str) and len(value) > 256:
            raise ValueError("metadata Value text is longer than 256 characters")
        return value


class _WireMetadata(_Wire):
    Item: list[_WireMetadataItem] = Field(default_factory=list, max_length=_MAX_ITEMS)


class _WireStkCallback(_Wire):
    MerchantRequestID: str = Field(min_length=1, max_length=128)
    CheckoutRequestID: str = Field(min_length=1, max_length=128)
    ResultCode: ResultCode
    ResultDesc: str = Field(default="", max_length=2048)
    CallbackMetadata: _WireMetadata | None = None


class _WireBody(_Wire):
    stkCallback: _WireStkCallback


class _WireCallbackEnvelope(_Wire):
    Body: _WireBody


class MetadataItem(BaseModel):
    """One `CallbackMetadata.Item` as received; `has_value` is False when `Value` was absent."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: JsonScalar = None
    has_value: bool = True


class StkCallback(BaseModel):
    """An STK callback, metadata read by Name (never position), money as Decimal."""

    model_config = ConfigDict(frozen=True)

    merchant_request_id: str
    checkout_request_id: str
    result_code: int | str
    result_code_raw: int | str
    result_desc_raw: str
    description: str
    amount: Decimal | None = None
    receipt: str | None = None
    phone: str | None = None
    transaction_date: datetime | None = None
    balance: Decimal | None = None
    metadata: tuple[MetadataItem, ...] = ()

    @property
    def code_key(self) -> str:
        return result_code_key(self.result_code)

    @property
    def is_success(self) -> bool:
        return self.code_key == "0"


def _refuse_constant(name: str) -> object:
    raise MalformedJson(f"body contains {name}, which is not a JSON number")


def _checked_decimal(number: Decimal) -> Decimal:
    # A huge exponent ("1e999999999") is cheap to write and ruinously slow to turn into an int
    # further on; no Daraja number comes near this range.
    if not number.is_finite():
        raise CallbackParseError("body contains a number that is not finite")
    if number and not -_MAX_EXPONENT <= number.adjusted() <= _MAX_EXPONENT:
        raise CallbackParseError("body contains a number out of range")
    return number


def _parse_float(text: str) -> Decimal:
    return _checked_decimal(Decimal(text))


_EXACT_DECODER: Final = json.JSONDecoder(parse_float=_parse_float, parse_constant=_refuse_constant)
_QUICK_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def strict_json(body: bytes | str, *, exact: bool = True) -> object:
    """JSON as everything here reads a body from Daraja or the relay: UTF-8 (a BOM allowed), no
    NaN or Infinity, and with `exact` every number with a fraction or exponent a finite Decimal
    of sane size (`exact=False` leaves them floats, for a check that never reads them).

    Raises `MalformedJson` saying what is wrong, or `CallbackParseError` for a number out of
    range; both are ValueErrors.
    """
    try:
        # Strip one BOM by hand: the "utf-8-sig" codec runs Python code per call, "utf-8" none.
        text = body.removeprefix(codecs.BOM_UTF8).decode() if isinstance(body, bytes) else body
        return (_EXACT_DECODER if exact else _QUICK_DECODER).decode(text)
    except CallbackParseError:
        raise
    except UnicodeDecodeError:
        raise MalformedJson("body is not UTF-8 text") from None
    except RecursionError:
        raise MalformedJson("body is nested too deeply") from None
    except ValueError:
        raise MalformedJson("body is not valid JSON") from None


def _load_json(body: bytes | str, *, exact: bool = True) -> object:
    if len(body) > MAX_CALLBACK_BYTES:
        raise CallbackParseError("body is larger than 64 KiB")
    return strict_json(body, exact=exact)


def _plain(value: object, depth: int = 0) -> object:
    """A caller's already-decoded mapping as JSON-like data, floats turned into Decimal."""
    if depth > _MAX_DEPTH:
        raise CallbackParseError("body is nested too deeply")
    if isinstance(value, Decimal):
        return _checked_decimal(value)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return _checked_decimal(Decimal(repr(value)))
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CallbackParseError("body has an object key that is not text")
            out[key] = _plain(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    raise CallbackParseError("body holds a value that JSON cannot carry")


def _describe_validation(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"not an STK callback: {where}: {message}{more}"


def _whole_number(value: JsonScalar) -> int | None:
    """An integral int or Decimal as int, guarding against huge exponents."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() > 20 or value != value.to_integral_value():
            return None
        return int(value)
    return None


def _amount(value: JsonScalar, name: str) -> Decimal:
    number: Decimal | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
    if number is None or not number.is_finite():
        raise CallbackParseError(f"metadata {name} is not a number")
    if number < 0 or number.adjusted() > 12:
        raise CallbackParseError(f"metadata {name} is out of range")
    return number


def _phone(value: JsonScalar) -> str:
    whole = _whole_number(value)
    if whole is not None and 0 < whole < 10**15:
        return str(whole)
    if isinstance(value, str) and _PHONE_TEXT.fullmatch(value.strip()):
        return value.strip()
    raise CallbackParseError("metadata PhoneNumber is not a phone number")


def _transaction_date(value: JsonScalar) -> datetime:
    whole = _whole_number(value)
    text = str(whole) if whole is not None else value if isinstance(value, str) else ""
    try:
        return parse_kenya_timestamp(text.strip())
    except ValueError:
        raise CallbackParseError("metadata TransactionDate is not YYYYMMDDHHmmss") from None


def _receipt(value: JsonScalar) -> str:
    if isinstance(value, str) and _RECEIPT.fullmatch(value.strip()):
        return value.strip()
    raise CallbackParseError("metadata MpesaReceiptNumber must be 1-32 letters and digits")


def _balance(value: JsonScalar) -> Decimal | None:
    # Balance is the merchant's, not ours to check; real callbacks send it without a Value or
    # in odd text forms, so anything but a plain number is simply not read.
    try:
        return _amount(value, "Balance")
    except CallbackParseError:
        return None


def _interpret(wire: _WireStkCallback) -> StkCallback:
    items = wire.CallbackMetadata.Item if wire.CallbackMetadata is not None else []
    by_name: dict[str, _WireMetadataItem] = {}
    kept: list[MetadataItem] = []
    for item in items:
        if item.Name in by_name:
            shown = item.Name if item.Name in _KNOWN_ITEMS else "name"
            raise CallbackParseError(f"metadata item {shown} appears more than once")
        by_name[item.Name] = item
        kept.append(
            MetadataItem(
                name=item.Name, value=item.Value, has_value="Value" in item.model_fields_set
            )
        )

    def read(name: str, parse: Callable[[JsonScalar], _T]) -> _T | None:
        """The item's value as `parse` reads it; None when the item or its Value is absent."""
        value = by_name[name].Value if name in by_name else None
        return None if value is None else parse(value)

    try:
        return StkCallback(
            merchant_request_id=wire.MerchantRequestID,
            checkout_request_id=wire.CheckoutRequestID,
            result_code=normalise_result_code(wire.ResultCode),
            result_code_raw=wire.ResultCode,
            result_desc_raw=wire.ResultDesc,
            description=clean_description(wire.ResultDesc),
            amount=read("Amount", lambda value: _amount(value, "Amount")),
            receipt=read("MpesaReceiptNumber", _receipt),
            phone=read("PhoneNumber", _phone),
            transaction_date=read("TransactionDate", _transaction_date),
            balance=read("Balance", _balance),
            metadata=tuple(kept),
        )
    except InvalidOperation:
        raise CallbackParseError("metadata holds a number that cannot be read") from None


def parse_stk_callback(body: bytes | str | Mapping[str, object]) -> StkCallback:
    """Parse an STK callback body (raw bytes, text, or an already-decoded mapping).

    Raises CallbackParseError, and nothing else, for anything that is not an STK callback.
    """
    data: Any
    if isinstance(body, bytes | str):
        data = _load_json(body)
    elif isinstance(body, Mapping):
        data = _plain(body)
    else:
        raise CallbackParseError("body must be bytes, text or a mapping")
    if not isinstance(data, dict):
        raise CallbackParseError("not an STK callback: expected a JSON object")
    try:
        wire = _WireCallbackEnvelope.model_validate(data)
    except ValidationError as exc:
        raise CallbackParseError(_describe_validation(exc)) from None
    return _interpret(wire.Body.stkCallback)


# -- the relay's quick check ---------------------------------------------------------------------
# The relay stores callbacks without reading them; it only refuses what is not an STK callback.
# This check reads the envelope as the wire models above do, without pydantic and without
# interpreting the metadata: it is never stricter than `parse_stk_callback` (a property test
# holds it to that), so nothing the till could apply is refused at the door, and it costs a
# fraction of the full parse on the relay's hot path.


def _text_within(value: object, low: int, high: int) -> bool:
    return isinstance(value, str) and low <= len(value) <= high


def check_callback_shape(body: bytes) -> None:
    """Raise CallbackParseError unless `body` is JSON shaped as an STK callback (MalformedJson
    when it is not JSON at all)."""
    data = _load_json(body, exact=False)
    body_part = data.get("Body") if isinstance(data, dict) else None
    callback = body_part.get("stkCallback") if isinstance(body_part, dict) else None
    if not isinstance(callback, dict):
        raise CallbackParseError("not an STK callback: no Body.stkCallback object")
    code = callback.get("ResultCode")
    if not (
        _text_within(callback.get("MerchantRequestID"), 1, 128)
        and _text_within(callback.get("CheckoutRequestID"), 1, 128)
        and (isinstance(code, int | str) and not isinstance(code, bool))
        and _text_within(callback.get("ResultDesc", ""), 0, 2048)
    ):
        raise CallbackParseError("not an STK callback: its ids, ResultCode or ResultDesc")
    metadata = callback.get("CallbackMetadata")
    if metadata is None:
        return
    items = metadata.get("Item", []) if isinstance(metadata, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and _text_within(item.get("Name"), 1, 64) for item in items
    ):
        raise CallbackParseError("not an STK callback: CallbackMetadata.Item is not a list")
