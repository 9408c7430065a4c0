"""Wire shapes of the M-Pesa statement APIs (REFERENCE.md sections 7 and 7b): C2B register URL
and confirmations, Dynamic QR, Transaction Status, Reversal and Pull Transactions.

Safaricom's spellings are kept on the wire (`OriginatorCoversationID`, `RecieverIdentifierType`)
and hidden behind snake_case names. Money is Decimal or int, never float. The asynchronous
results (`{"Result": {...}}`) and C2B confirmations are parsed by `parse_async_result` and
`parse_c2b_payment`, which raise `StatementParseError` naming the problem, never a value.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BeforeValidator, Field, SecretStr, ValidationError

from smartduka_tui.mpesa.kenya_time import KENYA_TZ, parse_kenya_timestamp
from smartduka_tui.mpesa.models import (
    C2BConfirmation,
    DigitString,
    ResponseCode,
    ResultCode,
    WireModel,
    normalise_result_code,
    strict_json,
)

MAX_NOTICE_BYTES: Final = 64 * 1024
# A pull page answers our own request and may hold many rows; still bounded.
MAX_PULL_PAGE_BYTES: Final = 8 * 1024 * 1024
PULL_DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
ALREADY_REVERSED: Final = "R000001"
INVALID_ORIGINAL: Final = "R000002"
_FULL_MSISDN = re.compile(r"^254[17]\d{8}$")
_MASKED_MSISDN = re.compile(r"^(\d{3,6})\s*\*{3,8}\s*(\d{2,4})$")
_HASHED_MSISDN = re.compile(r"^[0-9a-fA-F]{64}$")
_RECEIPT = re.compile(r"^[A-Z0-9]{8,12}$")


class StatementParseError(ValueError):
    """A statement notice or answer that is not well formed; the message names the problem."""


class C2BResponseType(StrEnum):
    """What M-Pesa does when the ValidationURL does not answer in time (sentence case)."""

    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class QrTransactionCode(StrEnum):
    """Dynamic QR's TrxCode."""

    BUY_GOODS = "BG"
    WITHDRAW_AT_AGENT = "WA"
    PAYBILL = "PB"
    SEND_MONEY = "SM"
    SEND_TO_BUSINESS = "SB"


# --- C2B register URL ----------------------------------------------------------------------


class RegisterUrlRequest(WireModel):
    """`POST /mpesa/c2b/v2/registerurl`. Build it with `statement_requests.build_register_url`."""

    short_code: DigitString = Field(alias="ShortCode")
    response_type: C2BResponseType = Field(alias="ResponseType")
    # A per-shop route carrying a token: a capability, kept out of reprs and logs.
    confirmation_url: str = Field(alias="ConfirmationURL", min_length=1, repr=False)
    validation_url: str = Field(default="", alias="ValidationURL", repr=False)

    def to_wire(self) -> dict[str, object]:
        body = super().to_wire()
        if not self.validation_url:
            del body["ValidationURL"]
        return body


class RegisterUrlResponse(WireModel):
    """The register answer; Safaricom spells the id "OriginatorCoversationID"."""

    originator_conversation_id: str = Field(
        default="", alias="OriginatorCoversationID", max_length=128
    )
    response_code: ResponseCode = Field(alias="ResponseCode")
    response_description: str = Field(default="", alias="ResponseDescription", max_length=2048)


# --- Transaction Status and Reversal (initiator APIs with asynchronous results) ------------


class TransactionStatusRequest(WireModel):
    """`POST /mpesa/transactionstatus/v1/query` (build with `build_transaction_status`)."""

    initiator: str = Field(alias="Initiator", min_length=1, max_length=64)
    security_credential: SecretStr = Field(alias="SecurityCredential")
    command_id: str = Field(default="TransactionStatusQuery", alias="CommandID")
    transaction_id: str = Field(alias="TransactionID", pattern=r"^[A-Z0-9]{8,12}$")
    party_a: DigitString = Field(alias="PartyA")
    identifier_type: str = Field(default="4", alias="IdentifierType")
    result_url: str = Field(alias="ResultURL", repr=False)
    queue_timeout_url: str = Field(alias="QueueTimeOutURL", repr=False)
    remarks: str = Field(alias="Remarks", min_length=1, max_length=100)
    occasion: str = Field(default="", alias="Occasion", max_length=100)


class ReversalRequest(WireModel):
    """`POST /mpesa/reversal/v1/request` (build with `build_reversal`)."""

    initiator: str = Field(alias="Initiator", min_length=1, max_length=64)
    security_credential: SecretStr = Field(alias="SecurityCredential")
    command_id: str = Field(default="TransactionReversal", alias="CommandID")
    transaction_id: str = Field(alias="TransactionID", pattern=r"^[A-Z0-9]{8,12}$")
    amount: int = Field(alias="Amount", ge=1, le=250_000, strict=True)
    receiver_party: DigitString = Field(alias="ReceiverParty")
    # Safaricom's spelling is required: the correct one is refused (REFERENCE.md section 7).
    receiver_identifier_type: str = Field(default="11", alias="RecieverIdentifierType")
    result_url: str = Field(alias="ResultURL", repr=False)
    queue_timeout_url: str = Field(alias="QueueTimeOutURL", repr=False)
    remarks: str = Field(alias="Remarks", min_length=2, max_length=100)
    occasion: str = Field(default="", alias="Occasion", max_length=100)


class AsyncAccepted(WireModel):
    """The sync answer of an initiator API: only "accepted"; the outcome comes on ResultURL."""

    originator_conversation_id: str = Field(alias="OriginatorConversationID", max_length=128)
    conversation_id: str = Field(alias="ConversationID", max_length=128)
    response_code: ResponseCode = Field(alias="ResponseCode")
    response_description: str = Field(default="", alias="ResponseDescription", max_length=2048)

    @property
    def accepted(self) -> bool:
        return self.response_code == "0"


@dataclass(frozen=True, slots=True)
class AsyncResult:
    """A `{"Result": {...}}` body posted to a ResultURL (or QueueTimeOutURL)."""

    result_type: int
    result_code: int | str
    result_desc: str
    originator_conversation_id: str
    conversation_id: str
    transaction_id: str
    parameters: dict[str, str | int | Decimal]
    occasion: str

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0

    def text(self, key: str) -> str | None:
        value = self.parameters.get(key)
        return None if value is None else str(value)

    def amount(self, key: str = "Amount") -> Decimal | None:
        value = self.text(key)
        if not value:
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise StatementParseError(f"{key} is not an amount") from None
        if not amount.is_finite() or amount < 0:
            raise StatementParseError(f"{key} is not an amount")
        return amount

    def moment(self, key: str) -> datetime | None:
        value = self.text(key)
        if not value:
            return None
        try:
            return parse_kenya_timestamp(value)
        except ValueError:
            raise StatementParseError(f"{key} is not a YYYYMMDDHHmmss time") from None


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """What a successful Transaction Status result says about one receipt."""

    receipt: str
    amount: Decimal
    status: str
    debit_party: str
    finalised_at: datetime | None

    @classmethod
    def from_result(cls, result: AsyncResult) -> TransactionStatus:
        if not result.succeeded:
            raise StatementParseError("only a ResultCode 0 result describes a transaction")
        receipt = result.text("ReceiptNo") or result.transaction_id
        amount = result.amount()
        if amount is None or not _RECEIPT.fullmatch(receipt):
            raise StatementParseError("the result lacks ReceiptNo or Amount")
        return cls(
            receipt=receipt,
            amount=amount,
            status=result.text("TransactionStatus") or "",
            debit_party=result.text("DebitPartyName") or "",
            finalised_at=result.moment("FinalisedTime"),
        )


class ReversalOutcome(StrEnum):
    """How a reversal ended, from its result callback (never from its acceptance)."""

    REVERSED = "reversed"
    ALREADY_REVERSED = "already_reversed"
    INVALID_ORIGINAL = "invalid_original"
    FAILED = "failed"


def reversal_outcome(result: AsyncResult) -> ReversalOutcome:
    if result.result_code == 0:
        return ReversalOutcome.REVERSED
    if result.result_code == ALREADY_REVERSED:
        return ReversalOutcome.ALREADY_REVERSED
    if result.result_code == INVALID_ORIGINAL:
        return ReversalOutcome.INVALID_ORIGINAL
    return ReversalOutcome.FAILED


def _load_object(body: bytes | str, what: str, limit: int = MAX_NOTICE_BYTES) -> dict[str, object]:
    if len(body) > limit:
        raise StatementParseError(f"the {what} is larger than {limit // 1024} KiB")
    try:
        data = strict_json(body)
    except ValueError:
        raise StatementParseError(f"the {what} is not JSON") from None
    if not isinstance(data, dict):
        raise StatementParseError(f"the {what} is not a JSON object")
    return data


def _fields(error: ValidationError) -> str:
    """The names of the bad fields, never their values."""
    return ", ".join(sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]}))


def _scalar(value: object, key: str) -> str | int | Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise StatementParseError(f"result parameter {key} is not a plain value")
    return value


class _WireResult(WireModel):
    result_type: int = Field(default=0, alias="ResultType")
    result_code: ResultCode = Field(alias="ResultCode")
    result_desc: str = Field(default="", alias="ResultDesc", max_length=2048)
    originator_conversation_id: str = Field(
        default="", alias="OriginatorConversationID", max_length=128
    )
    conversation_id: str = Field(default="", alias="ConversationID", max_length=128)
    transaction_id: str = Field(default="", alias="TransactionID", max_length=64)


def parse_async_result(body: bytes | str) -> AsyncResult:
    """A Transaction Status or Reversal result (or a queue timeout notice)."""
    data = _load_object(body, "result")
    inner = data.get("Result")
    if not isinstance(inner, dict):
        raise StatementParseError("the result has no Result object")
    try:
        wire = _WireResult.model_validate(inner)
    except ValidationError as exc:
        raise StatementParseError(f"the result has bad field(s): {_fields(exc)}") from None
    parameters: dict[str, str | int | Decimal] = {}
    holder = inner.get("ResultParameters")
    if isinstance(holder, dict):
        items = holder.get("ResultParameter", [])
        # One parameter arrives as an object, several as a list.
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
                raise StatementParseError("a result parameter has no Key")
            key = str(item["Key"])
            parameters[key] = _scalar(item.get("Value", ""), key)
    elif holder is not None:
        raise StatementParseError("ResultParameters is not an object")
    occasion = ""
    reference = inner.get("ReferenceData")
    if isinstance(reference, dict):
        item = reference.get("ReferenceItem")
        if isinstance(item, dict) and item.get("Key") == "Occasion":
            occasion = str(item.get("Value") or "")
    return AsyncResult(
        **wire.model_dump(exclude={"result_code"}),
        result_code=normalise_result_code(wire.result_code),
        parameters=parameters,
        occasion=occasion,
    )


# --- C2B confirmations ---------------------------------------------------------------------


class MsisdnForm(StrEnum):
    """How a C2B notice gives the payer: v2 masks it, v1 hashed it, some send it whole."""

    FULL = "full"
    MASKED = "masked"
    HASHED = "hashed"


@dataclass(frozen=True, slots=True)
class PayerPhone:
    """The payer as far as M-Pesa tells: a prefix and suffix of a masked number, or all of it."""

    form: MsisdnForm
    prefix: str
    suffix: str
    full: str | None = None

    @property
    def shown(self) -> str:
        """For screens: "2547***149"."""
        if self.form is MsisdnForm.HASHED:
            return "(hidden)"
        return f"{self.prefix}***{self.suffix}"

    def could_be(self, msisdn: str) -> bool:
        """Whether a full number fits what M-Pesa showed (a hash fits nothing we can check)."""
        if self.form is MsisdnForm.FULL:
            return msisdn == self.full
        if self.form is MsisdnForm.HASHED:
            return False
        return msisdn.startswith(self.prefix) and msisdn.endswith(self.suffix)


def parse_payer_phone(text: str) -> PayerPhone:
    value = text.strip()
    if not value:
        raise StatementParseError("MSISDN is missing")
    if _FULL_MSISDN.fullmatch(value):
        return PayerPhone(MsisdnForm.FULL, value[:4], value[-3:], value)
    masked = _MASKED_MSISDN.fullmatch(value)
    if masked is not None:
        if not masked.group(1).startswith("254"):
            raise StatementParseError("MSISDN is masked but not a Kenyan number")
        return PayerPhone(MsisdnForm.MASKED, masked.group(1), masked.group(2))
    if _HASHED_MSISDN.fullmatch(value):
        return PayerPhone(MsisdnForm.HASHED, "", "")
    raise StatementParseError("MSISDN is neither a number, a masked number nor a hash")


@dataclass(frozen=True, slots=True)
class C2BPayment:
    """A checked C2B confirmation: whole shillings, a real time, a known payer form."""

    trans_id: str
    shortcode: str
    amount: int
    paid_at: datetime
    payer: PayerPhone
    first_name: str
    bill_ref_number: str
    transaction_type: str
    org_account_balance: Decimal | None


def parse_c2b_payment(body: bytes | str) -> C2BPayment:
    """A C2B v2 validation or confirmation body, for a till that takes whole shillings only.

    Refuses (StatementParseError): not JSON, missing fields, a bad TransID or TransTime, an amount
    with cents or out of 1..250,000, a missing or unreadable MSISDN.
    """
    data = _load_object(body, "confirmation")
    try:
        wire = C2BConfirmation.model_validate(data)
    except ValidationError as exc:
        raise StatementParseError(
            f"the confirmation has bad or missing field(s): {_fields(exc)}"
        ) from None
    if not _RECEIPT.fullmatch(wire.trans_id):
        raise StatementParseError("TransID is not an M-Pesa receipt")
    if wire.transaction_type not in ("Buy Goods", "Pay Bill"):
        raise StatementParseError("TransactionType is neither Buy Goods nor Pay Bill")
    amount = wire.trans_amount
    if amount != amount.to_integral_value():
        raise StatementParseError("TransAmount has cents; this till takes whole shillings")
    if not 1 <= amount <= 250_000:
        raise StatementParseError("TransAmount is outside KES 1 to 250,000")
    try:
        paid_at = parse_kenya_timestamp(wire.trans_time)
    except ValueError:
        raise StatementParseError("TransTime is not a real date and time") from None
    return C2BPayment(
        trans_id=wire.trans_id,
        shortcode=wire.business_short_code,
        amount=int(amount),
        paid_at=paid_at,
        payer=parse_payer_phone(wire.msisdn),
        first_name=wire.first_name.strip(),
        bill_ref_number=wire.bill_ref_number.strip(),
        transaction_type=wire.transaction_type,
        org_account_balance=wire.org_account_balance,
    )


# --- Pull Transactions ---------------------------------------------------------------------


class PullRegisterRequest(WireModel):
    """`POST /pulltransactions/v1/register` (once per live shortcode)."""

    short_code: DigitString = Field(alias="ShortCode")
    request_type: str = Field(default="Pull", alias="RequestType")
    nominated_number: DigitString = Field(alias="NominatedNumber")
    callback_url: str = Field(alias="CallBackURL", repr=False)


class PullRegisterResponse(WireModel):
    """`1000` registered now; `1001` registered already (both HTTP 200)."""

    response_ref_id: str = Field(default="", alias="ResponseRefID", max_length=128)
    response_status: ResponseCode = Field(alias="ResponseStatus")
    short_code: str = Field(default="", alias="ShortCode", max_length=16)
    response_description: str = Field(default="", alias="ResponseDescription", max_length=2048)

    @property
    def registered(self) -> bool:
        return self.response_status in ("1000", "1001")

    @property
    def already_registered(self) -> bool:
        return self.response_status == "1001"


class PullQueryRequest(WireModel):
    """`POST /pulltransactions/v1/query` for one page of the last 48 hours."""

    short_code: DigitString = Field(alias="ShortCode")
    start_date: str = Field(alias="StartDate")
    end_date: str = Field(alias="EndDate")
    offset_value: str = Field(alias="OffSetValue", pattern=r"^\d{1,9}$")


def _pull_amount(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("an amount")
    if isinstance(value, str | int):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError("an amount") from None
    return value


# Safaricom's own layout (PULL_DATE_FORMAT), read without strptime: a pull of ten thousand
# rows spent most of its parsing there.
_PULL_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)


def _pull_date(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        plain = _PULL_DATE.fullmatch(text)
        if plain is not None:
            try:
                year, month, day, hour, minute, second = map(int, plain.groups())
                return datetime(year, month, day, hour, minute, second, tzinfo=KENYA_TZ)
            except ValueError:
                raise ValueError("a date and time") from None
        for layout in (PULL_DATE_FORMAT, "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
            try:
                parsed = datetime.strptime(text, layout)
            except ValueError:
                continue
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=KENYA_TZ)
        raise ValueError("a date and time")
    return value


class PullTransaction(WireModel):
    """One row of a pull page (lower-case keys, as Safaricom writes them)."""

    transaction_id: str = Field(alias="transactionId", pattern=r"^[A-Z0-9]{8,12}$")
    trx_date: Annotated[datetime, BeforeValidator(_pull_date)] = Field(alias="trxDate")
    msisdn: str = Field(default="", alias="msisdn", max_length=64)
    transaction_type: str = Field(default="", alias="transactiontype", max_length=64)
    bill_reference: str = Field(default="", alias="billreference", max_length=64)
    amount: Annotated[Decimal, BeforeValidator(_pull_amount)] = Field(alias="amount", ge=0)
    organization_name: str = Field(default="", alias="organizationname", max_length=256)


@dataclass(frozen=True, slots=True)
class PullPage:
    """One page of pulled transactions; empty when Safaricom answered 1001."""

    response_code: str
    transactions: tuple[PullTransaction, ...]

    @property
    def empty(self) -> bool:
        return not self.transactions


def parse_pull_page(body: bytes | str) -> PullPage:
    """A query answer: `1000` with `Response: [[rows]]`, or `1001` (none, or not provisioned:
    Safaricom does not tell the two apart)."""
    data = _load_object(body, "pull answer", MAX_PULL_PAGE_BYTES)
    code = data.get("ResponseCode")
    if not isinstance(code, str | int) or isinstance(code, bool):
        raise StatementParseError("the pull answer has no ResponseCode")
    code_text = str(code).strip()
    if code_text == "1001":
        return PullPage(code_text, ())
    if code_text != "1000":
        raise StatementParseError("the pull answer's ResponseCode is neither 1000 nor 1001")
    outer = data.get("Response")
    rows: list[object] = []
    if isinstance(outer, list):
        for group in outer:
            if not isinstance(group, list):
                raise StatementParseError("the pull answer's Response is not a list of lists")
            rows.extend(group)
    elif outer is not None:
        raise StatementParseError("the pull answer's Response is not a list")
    try:
        parsed = tuple(PullTransaction.model_validate(row) for row in rows)
    except ValidationError as exc:
        raise StatementParseError(f"a pulled row has bad field(s): {_fields(exc)}") from None
    return PullPage(code_text, parsed)


# --- Dynamic QR ----------------------------------------------------------------------------


class QrCodeRequest(WireModel):
    """`POST /mpesa/qrcode/v1/generate`."""

    merchant_name: str = Field(alias="MerchantName", min_length=1, max_length=40)
    ref_no: str = Field(alias="RefNo", min_length=1, max_length=20)
    amount: int = Field(alias="Amount", ge=1, le=250_000, strict=True)
    trx_code: QrTransactionCode = Field(alias="TrxCode")
    cpi: DigitString = Field(alias="CPI")
    size: int = Field(alias="Size", ge=100, le=1000, strict=True)

    def to_wire(self) -> dict[str, object]:
        body = super().to_wire()
        body["Size"] = str(self.size)
        return body


class QrCodeResponse(WireModel):
    """The QR answer. ResponseCode is an id such as "AG_20191219_0000…", not "0"."""

    response_code: str = Field(default="", alias="ResponseCode", max_length=128)
    request_id: str = Field(default="", alias="RequestID", max_length=128)
    response_description: str = Field(default="", alias="ResponseDescription", max_length=2048)
    qr_code: str = Field(alias="QRCode", min_length=8, max_length=2_000_000, repr=False)

    def png(self) -> bytes:
        """The image bytes; StatementParseError unless it is base64 of a PNG."""
        try:
            image = base64.b64decode(self.qr_code, validate=True)
        except (binascii.Error, ValueError):
            raise StatementParseError("QRCode is not base64") from None
        if not image.startswith(b"\x89PNG\r\n\x1a\n"):
            raise StatementParseError("QRCode is not a PNG image")
        return image
