"""Building STK push and query requests from a shop's M-Pesa configuration.

Password and Timestamp come from ONE clock read: two reads that straddle a second give
"Wrong credentials" (REFERENCE.md section 8, pitfall 5). Every field Daraja would refuse (or,
worse, accept and then silently send no prompt, as with a long AccountReference) is refused here
with `InvalidRequestError(field, message)`, never truncated. Messages name the field and the
rule; they never repeat a secret or the callback URL (a capability).
"""

from __future__ import annotations

import base64
import hashlib
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SecretStr,
    field_validator,
    model_validator,
)

from smartduka_tui.clock import Clock
from smartduka_tui.mpesa.kenya_time import kenya_timestamp
from smartduka_tui.mpesa.models import (
    StkPushRequest,
    StkQueryRequest,
    TransactionType,
)
from smartduka_tui.mpesa.phone import PhoneNumberError, normalise_phone

__all__ = [
    "ACCOUNT_REFERENCE_MAX",
    "MAX_AMOUNT",
    "MIN_AMOUNT",
    "TRANSACTION_DESC_MAX",
    "DarajaCredentials",
    "InvalidRequestError",
    "MerchantConfig",
    "MerchantKind",
    "build_stk_push",
    "build_stk_query",
    "check_amount",
    "kenya_timestamp",
    "stk_password",
]

MIN_AMOUNT: Final = 1
MAX_AMOUNT: Final = 250_000
ACCOUNT_REFERENCE_MAX: Final = 12
TRANSACTION_DESC_MAX: Final = 13
_SHORTCODE = re.compile(r"^\d{5,7}$")
# Letters, digits, space and a few marks. Characters such as @ # & have made pushes fail
# (REFERENCE.md section 8, pitfall 11), so they are refused rather than sent.
_FREE_TEXT = re.compile(r"^[A-Za-z0-9 .\-_/]+$")
_TOKEN_TEXT = re.compile(r"^[\x21-\x7e]+$")


class InvalidRequestError(ValueError):
    """A request field Daraja would refuse. `field` is Daraja's name for it (e.g. "Amount")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_secret_text(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > 256:
        raise ValueError("must be at most 256 characters")
    if not _TOKEN_TEXT.fullmatch(text):
        raise ValueError("must be printable text without spaces")
    return value


def _no_colon(value: SecretStr) -> SecretStr:
    # Basic auth splits "key:secret" at the first colon.
    if ":" in value.get_secret_value():
        raise ValueError("must not contain ':'")
    return value


_SecretText = Annotated[SecretStr, AfterValidator(_check_secret_text)]


class MerchantKind(StrEnum):
    """How the shop is paid: a paybill, or a Buy Goods till under a store number."""

    PAYBILL = "paybill"
    TILL = "till"


class DarajaCredentials(BaseModel):
    """A Daraja app's consumer key and secret. Neither ever shows in a repr or an error."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    consumer_key: Annotated[_SecretText, AfterValidator(_no_colon)]
    consumer_secret: _SecretText

    @property
    def cache_key(self) -> str:
        """Identifies this credential set in caches without holding the secret itself."""
        material = (
            self.consumer_key.get_secret_value() + "\x00" + self.consumer_secret.get_secret_value()
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def basic_authorization(self) -> str:
        """The OAuth `Authorization` header value. Only ever handed to httpx."""
        pair = f"{self.consumer_key.get_secret_value()}:{self.consumer_secret.get_secret_value()}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class MerchantConfig(BaseModel):
    """One shop's M-Pesa setup: which shortcode is paid, how, and with which secrets.

    Paybill: BusinessShortCode = PartyB = the paybill number (CustomerPayBillOnline).
    Till (Buy Goods): BusinessShortCode = the store (head office) number used at Go-Live,
    PartyB = the till number (CustomerBuyGoodsOnline). Getting this wrong gives 2028 or
    SFC_IC0003 (REFERENCE.md section 8, pitfall 9).
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    kind: MerchantKind
    business_shortcode: str
    till_number: str | None = None
    passkey: _SecretText
    credentials: DarajaCredentials

    @field_validator("business_shortcode", "till_number")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        if value is not None and not _SHORTCODE.fullmatch(value):
            raise ValueError("must be 5 to 7 digits")
        return value

    @model_validator(mode="after")
    def _till_number_matches_kind(self) -> MerchantConfig:
        if self.kind is MerchantKind.TILL and self.till_number is None:
            raise ValueError("a Buy Goods till needs its till number (PartyB)")
        if self.kind is MerchantKind.PAYBILL and self.till_number is not None:
            raise ValueError("a paybill has no till number: PartyB is the paybill itself")
        return self

    @property
    def transaction_type(self) -> TransactionType:
        till = self.kind is MerchantKind.TILL
        return TransactionType.BUY_GOODS if till else TransactionType.PAYBILL

    @property
    def party_b(self) -> str:
        """Who is credited: the till number for Buy Goods, the paybill itself otherwise."""
        return self.business_shortcode if self.till_number is None else self.till_number

    def password_at(self, clock: Clock) -> tuple[SecretStr, str]:
        """Password and Timestamp from ONE clock read (see the module docstring)."""
        timestamp = kenya_timestamp(clock.now())
        password = stk_password(self.business_shortcode, self.passkey.get_secret_value(), timestamp)
        return SecretStr(password), timestamp


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """base64(BusinessShortCode + Passkey + Timestamp), as Daraja checks it."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


def check_amount(amount: object) -> int:
    """Whole shillings 1..250,000 as int. Floats are refused outright: money is never float."""
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise InvalidRequestError("Amount", "must be a whole number of shillings, e.g. 150")
    if isinstance(amount, Decimal):
        if not amount.is_finite() or amount != amount.to_integral_value():
            raise InvalidRequestError("Amount", "must be whole shillings: M-Pesa takes no cents")
        if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
            raise InvalidRequestError(
                "Amount", f"must be from KES {MIN_AMOUNT} to KES {MAX_AMOUNT:,}"
            )
        amount = int(amount)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidRequestError(
            "Amount", f"must be from KES {MIN_AMOUNT} to KES {MAX_AMOUNT:,}, got {amount:,}"
        )
    return amount


def _check_text(field: str, value: object, longest: int) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(field, "must be text")
    if value != value.strip():
        raise InvalidRequestError(field, "must not start or end with spaces")
    if not value:
        raise InvalidRequestError(field, "must not be empty")
    if len(value) > longest:
        raise InvalidRequestError(
            field, f"must be at most {longest} characters, got {len(value)} (it is never cut)"
        )
    if not _FREE_TEXT.fullmatch(value):
        raise InvalidRequestError(
            field, "may hold only letters, digits, spaces and . - _ / (M-Pesa refuses others)"
        )
    return value


def _check_callback_url(url: object) -> str:
    # Messages never repeat the URL: its path is a capability (DESIGN.md section 4).
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("CallBackURL", "must be a URL")
    if any(char.isspace() for char in url):
        raise InvalidRequestError("CallBackURL", "must not contain spaces (Daraja refuses it)")
    if len(url) > 1024:
        raise InvalidRequestError("CallBackURL", "must be at most 1024 characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidRequestError("CallBackURL", "is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidRequestError("CallBackURL", "must be an http:// or https:// URL with a host")
    return url


def _check_phone(phone: object) -> str:
    if not isinstance(phone, str):
        raise InvalidRequestError("PhoneNumber", "must be text, e.g. 0712 345 678")
    try:
        return normalise_phone(phone)
    except PhoneNumberError as error:
        raise InvalidRequestError("PhoneNumber", str(error)) from None


def build_stk_push(
    merchant: MerchantConfig,
    *,
    clock: Clock,
    amount: int,
    phone: str,
    callback_url: str,
    account_reference: str,
    transaction_desc: str,
) -> StkPushRequest:
    """An STK push for `amount` shillings to `phone`, Password and Timestamp from one clock read.

    `phone` may be in any accepted form (it is normalised); `callback_url` is built by the
    engine from `callback_path.sign_new_attempt`. Raises InvalidRequestError, naming the field.
    """
    whole = check_amount(amount)
    msisdn = _check_phone(phone)
    reference = _check_text("AccountReference", account_reference, ACCOUNT_REFERENCE_MAX)
    description = _check_text("TransactionDesc", transaction_desc, TRANSACTION_DESC_MAX)
    url = _check_callback_url(callback_url)
    password, timestamp = merchant.password_at(clock)
    return StkPushRequest(
        business_short_code=merchant.business_shortcode,
        password=password,
        timestamp=timestamp,
        transaction_type=merchant.transaction_type,
        amount=whole,
        party_a=msisdn,
        party_b=merchant.party_b,
        phone_number=msisdn,
        callback_url=url,
        account_reference=reference,
        transaction_desc=description,
    )


def build_stk_query(
    merchant: MerchantConfig, *, clock: Clock, checkout_request_id: str
) -> StkQueryRequest:
    """An STK query for one CheckoutRequestID, with a fresh Password from one clock read."""
    if not isinstance(checkout_request_id, str) or not checkout_request_id.strip():
        raise InvalidRequestError("CheckoutRequestID", "must not be empty")
    if len(checkout_request_id) > 128 or not _TOKEN_TEXT.fullmatch(checkout_request_id):
        raise InvalidRequestError(
            "CheckoutRequestID", "must be at most 128 printable characters without spaces"
        )
    password, timestamp = merchant.password_at(clock)
    return StkQueryRequest(
        business_short_code=merchant.business_shortcode,
        password=password,
        timestamp=timestamp,
        checkout_request_id=checkout_request_id,
    )
