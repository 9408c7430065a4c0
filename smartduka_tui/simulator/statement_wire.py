"""The statement APIs' request shapes, parsed the simulator's own way (REFERENCE.md 7 and 7b).

Fields are declared in the order Daraja checks them, so the first bad one becomes
"Bad Request - Invalid <Field>". Safaricom's spellings are kept: `RecieverIdentifierType` on
Reversal (the correct spelling is refused), `OriginatorCoversationID` in the register answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from smartduka_tui.simulator.wire import KENYA, check_msisdn, check_shortcode, number_text

_RECEIPT = re.compile(r"^[A-Z0-9]{8,12}$")
_TEXT = re.compile(r"^[A-Za-z0-9 _.,:/#'\-]*$")
_AMOUNT_TEXT = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,2})?$")
BANNED_URL_WORDS = ("m-pesa", "mpesa", "safaricom", "exec", "exe", "cmd", "sql", "query")
"""Words Safaricom refuses in C2B URLs, in any case (CustomerToBusinessRegisterURL)."""
PULL_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def _url(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise ValueError("a URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("no spaces")
    if not value.startswith(("http://", "https://")) or len(value.split("/", 3)[2]) == 0:
        raise ValueError("an http(s) URL")
    return value


def _optional(check: Callable[[object], str]) -> BeforeValidator:
    """`check`, except that a missing or empty value is None."""

    def optional(value: object) -> str | None:
        return None if value in (None, "") else check(value)

    return BeforeValidator(optional)


def _one_of(*allowed: str) -> BeforeValidator:
    """Exactly one of `allowed`."""
    *others, last = allowed
    shown = f"{', '.join(others)} or {last}" if others else last

    def check(value: object) -> str:
        if value not in allowed:
            raise ValueError(shown)
        return str(value)

    return BeforeValidator(check)


def _initiator(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise ValueError("a name")
    return value


def _credential(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 2048:
        raise ValueError("a base64 string")
    return value


def _receipt(value: object) -> str:
    if not isinstance(value, str) or not _RECEIPT.fullmatch(value):
        raise ValueError("an M-Pesa receipt")
    return value


def _identifier_type(allowed: tuple[str, ...]) -> BeforeValidator:
    def check(value: object) -> str:
        text = number_text(value)
        if text not in allowed:
            raise ValueError(" or ".join(allowed))
        return text

    return BeforeValidator(check)


def _remarks(low: int) -> BeforeValidator:
    def check(value: object) -> str:
        if not isinstance(value, str) or not low <= len(value) <= 100 or not _TEXT.fullmatch(value):
            raise ValueError(f"{low} to 100 characters")
        return value

    return BeforeValidator(check)


def _occasion(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 100 or not _TEXT.fullmatch(value):
        raise ValueError("at most 100 characters")
    return value


def _money(value: object) -> Decimal:
    """A JSON number or numeric text with at most 2 decimals, 1 to 250,000."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError("an amount")
    if not _AMOUNT_TEXT.fullmatch(text):
        raise ValueError("an amount")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError("an amount") from exc
    if not 1 <= amount <= 250_000:
        raise ValueError("between 1 and 250000")
    return amount


def _whole(low: int, high: int) -> BeforeValidator:
    def check(value: object) -> int:
        text = number_text(value)
        if not text.isdigit() or not low <= int(text) <= high:
            raise ValueError(f"{low} to {high}")
        return int(text)

    return BeforeValidator(check)


def _pull_date(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("YYYY-MM-DD HH:MM:SS")
    try:
        return datetime.strptime(value, PULL_DATE_FORMAT).replace(tzinfo=KENYA)
    except ValueError as exc:
        raise ValueError("YYYY-MM-DD HH:MM:SS") from exc


def _plain_text(longest: int) -> BeforeValidator:
    def check(value: object) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= longest:
            raise ValueError(f"1 to {longest} characters")
        if not _TEXT.fullmatch(value):
            raise ValueError("plain text")
        return value

    return BeforeValidator(check)


def _cpi(value: object) -> str:
    text = number_text(value)
    if not re.fullmatch(r"^[0-9]{5,12}$", text):
        raise ValueError("a till, paybill or phone number")
    return text


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterUrlRequest(_Body):
    ShortCode: Annotated[str, BeforeValidator(check_shortcode)]
    ResponseType: Annotated[str, _one_of("Completed", "Cancelled")]
    ConfirmationURL: Annotated[str, BeforeValidator(_url)]
    ValidationURL: Annotated[str | None, _optional(_url)] = None


class TransactionStatusRequest(_Body):
    Initiator: Annotated[str, BeforeValidator(_initiator)]
    SecurityCredential: Annotated[str, BeforeValidator(_credential)]
    CommandID: Annotated[str, _one_of("TransactionStatusQuery")]
    TransactionID: Annotated[str | None, _optional(_receipt)] = None
    OriginalConversationID: Annotated[str | None, BeforeValidator(_occasion)] = None
    PartyA: Annotated[str, BeforeValidator(check_shortcode)]
    IdentifierType: Annotated[str, _identifier_type(("1", "2", "4"))]
    ResultURL: Annotated[str, BeforeValidator(_url)]
    QueueTimeOutURL: Annotated[str, BeforeValidator(_url)]
    Remarks: Annotated[str, _remarks(1)]
    Occasion: Annotated[str, BeforeValidator(_occasion)] = ""


class ReversalRequest(_Body):
    Initiator: Annotated[str, BeforeValidator(_initiator)]
    SecurityCredential: Annotated[str, BeforeValidator(_credential)]
    CommandID: Annotated[str, _one_of("TransactionReversal")]
    TransactionID: Annotated[str, BeforeValidator(_receipt)]
    Amount: Annotated[Decimal, BeforeValidator(_money)]
    ReceiverParty: Annotated[str, BeforeValidator(check_shortcode)]
    # Safaricom's spelling; "11" today, "4" in older copies of the docs (REFERENCE.md 7).
    RecieverIdentifierType: Annotated[str, _identifier_type(("11", "4"))]
    ResultURL: Annotated[str, BeforeValidator(_url)]
    QueueTimeOutURL: Annotated[str, BeforeValidator(_url)]
    Remarks: Annotated[str, _remarks(2)]
    Occasion: Annotated[str, BeforeValidator(_occasion)] = ""


class PullRegisterRequest(_Body):
    ShortCode: Annotated[str, BeforeValidator(check_shortcode)]
    RequestType: Annotated[str, _one_of("Pull")]
    NominatedNumber: Annotated[str, BeforeValidator(check_msisdn)]
    CallBackURL: Annotated[str, BeforeValidator(_url)]


class PullQueryRequest(_Body):
    ShortCode: Annotated[str, BeforeValidator(check_shortcode)]
    StartDate: Annotated[datetime, BeforeValidator(_pull_date)]
    EndDate: Annotated[datetime, BeforeValidator(_pull_date)]
    OffSetValue: Annotated[int, _whole(0, 10_000_000)]


class QrCodeRequest(_Body):
    MerchantName: Annotated[str, _plain_text(40)]
    RefNo: Annotated[str, _plain_text(20)]
    Amount: Annotated[int, _whole(1, 250_000)]
    TrxCode: Annotated[str, _one_of("BG", "WA", "PB", "SM", "SB")]
    CPI: Annotated[str, BeforeValidator(_cpi)]
    Size: Annotated[int, _whole(100, 1000)]


def banned_word(url: str) -> str | None:
    """The first word Safaricom refuses that `url` contains, in Safaricom's upper case."""
    lowered = url.lower()
    for word in BANNED_URL_WORDS:
        if word in lowered:
            return word.upper().replace("-", "")
    return None
