"""Wire shapes of the simulator's control API (`/__sim/...`), shared by the server and the client.

Kept free of Starlette so that `control.py` (used by the engine, relay and UI tests) stays light:
pydantic and httpx only.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

PHONE_PATTERN = re.compile(r"^254[17][0-9]{8}$")
SHORTCODE_PATTERN = re.compile(r"^[0-9]{5,7}$")
_STRING_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

ResultCode = StrictInt | StrictStr
"""A Daraja ResultCode as it travels: usually a JSON integer, sometimes a string (SFC_IC0003)."""


def check_phone(value: str) -> str:
    if not PHONE_PATTERN.fullmatch(value):
        raise ValueError("phone must be 12 digits: 2547XXXXXXXX or 2541XXXXXXXX")
    return value


def check_shortcode(value: str) -> str:
    if not SHORTCODE_PATTERN.fullmatch(value):
        raise ValueError("shortcode must be 5 to 7 digits")
    return value


def _check_result_code(value: int | str) -> int | str:
    if isinstance(value, str) and not _STRING_CODE.fullmatch(value):
        raise ValueError("a string result code must be 1-32 letters, digits, '_', '.' or '-'")
    if isinstance(value, int) and not 0 <= value < 2**31:
        raise ValueError("an integer result code must be between 0 and 2147483647")
    return value


CheckedResultCode = Annotated[ResultCode, AfterValidator(_check_result_code)]


def explain_validation_error(error: ValidationError) -> tuple[str, list[dict[str, str]]]:
    """One readable line and a per-field list, merging the branches of a union field."""
    by_field: dict[str, list[str]] = {}
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in item["loc"] if part not in ("int", "str")]
        name = ".".join(loc) or "body"
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        else:
            message = item["msg"].removeprefix("Value error, ")
        if message not in by_field.setdefault(name, []):
            by_field[name].append(message)
    details = [{"field": name, "message": " or ".join(msgs)} for name, msgs in by_field.items()]
    return "; ".join(f"{d['field']}: {d['message']}" for d in details), details


class StrictModel(BaseModel):
    """A control body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ExpiresInType(StrEnum):
    """How OAuth's `expires_in` is typed: the older docs' "3599" or the 2025 portal's 3599."""

    STRING = "string"
    NUMBER = "number"


class BalanceItem(StrEnum):
    """The success callback's Balance item: `{"Name": "Balance"}` with no Value, or left out."""

    NO_VALUE = "no_value"
    OMIT = "omit"


class AmountStyle(StrEnum):
    """How the callback writes Amount: 150.00, 150.0 or 150 (all seen in real callbacks)."""

    TWO_DECIMALS = "two_decimals"
    ONE_DECIMAL = "one_decimal"
    INTEGER = "integer"


class UnknownCheckoutAnswer(StrEnum):
    """What a query for an unknown CheckoutRequestID gets (Safaricom's answer is not pinned down).

    - `invalid`: HTTP 400 `400.002.02` "Bad Request - Invalid CheckoutRequestID" (default)
    - `being_processed`: HTTP 500 `500.001.1001` "The transaction is being processed"
    - `does_not_exist`: HTTP 500 `500.001.1001` "The transaction does not exist"
    """

    INVALID = "invalid"
    BEING_PROCESSED = "being_processed"
    DOES_NOT_EXIST = "does_not_exist"


class Environment(StrEnum):
    """Which Daraja a shortcode behaves like: the sandbox lets C2B URLs be registered again;
    production registers them once and needs HTTPS."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"


class AppSettings(StrictModel):
    """Per consumer app (OAuth) settings."""

    token_lifetime_s: int = Field(
        default=3600, ge=2, le=7 * 86400, description="Token life; expires_in reports one less."
    )
    revoke_old_token: bool = Field(
        default=False, description="A new token revokes the app's earlier ones."
    )
    expires_in_type: ExpiresInType = Field(default=ExpiresInType.STRING)


class MerchantSettings(StrictModel):
    """Per shortcode settings: timing, throttles and the shape of answers."""

    callback_delay_s: float = Field(
        default=1.5, ge=0, le=86400, description="Simulator seconds from push to the answer."
    )
    prompt_timeout_s: float = Field(
        default=90.0, gt=0, le=86400, description="An unanswered prompt ends with 1037 after."
    )
    callback_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Real seconds to wait for a callback receiver."
    )
    spike_arrest_per_s: int | None = Field(
        default=None, ge=1, description="Requests per simulator second before 500.003.02."
    )
    quota_limit: int | None = Field(
        default=None, ge=1, description="Requests per quota window before 500.003.03."
    )
    quota_window_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    rule_17_window_s: float = Field(
        default=120.0, ge=0, le=86400, description="Same amount, same phone within: 17 (0: off)."
    )
    unknown_checkout_answer: UnknownCheckoutAnswer = Field(default=UnknownCheckoutAnswer.INVALID)
    balance_item: BalanceItem = Field(default=BalanceItem.NO_VALUE)
    amount_style: AmountStyle = Field(default=AmountStyle.TWO_DECIMALS)
    max_timestamp_skew_s: int | None = Field(
        default=None, ge=1, description="Refuse a Timestamp this far from Kenya time (off: null)."
    )
    environment: Environment = Field(default=Environment.SANDBOX)
    c2b_external_validation: bool = Field(
        default=False, description="POST to the ValidationURL first (off, as at Safaricom)."
    )
    c2b_validation_timeout_s: float = Field(
        default=8.0, gt=0, le=60, description="Real seconds; then ResponseType decides."
    )
    pull_page_size: int = Field(default=100, ge=1, le=10_000, description="Pull rows per page.")


class SimSettings(AppSettings, MerchantSettings):
    """Global defaults: every app and shortcode setting, overridable per app or shortcode."""


APP_SETTING_NAMES = frozenset(AppSettings.model_fields)
MERCHANT_SETTING_NAMES = frozenset(MerchantSettings.model_fields)


class ShortcodeKind(StrEnum):
    """Paybill (CustomerPayBillOnline, PartyB = shortcode) or till (Buy Goods: the shortcode is
    the store number and PartyB one of its till numbers)."""

    PAYBILL = "paybill"
    TILL = "till"


class ShortcodeRegistration(StrictModel):
    """Register (or replace) a shortcode with the consumer app that may use it.

    Leave `shortcode` out (POST) to have the simulator pick an unused one; for a till leave
    `till_numbers` empty to have one picked too.
    """

    shortcode: Annotated[str, AfterValidator(check_shortcode)] | None = None
    passkey: SecretStr = Field(min_length=1, max_length=256)
    consumer_key: SecretStr = Field(min_length=1, max_length=256)
    consumer_secret: SecretStr = Field(min_length=1, max_length=256)
    kind: ShortcodeKind = ShortcodeKind.PAYBILL
    till_numbers: list[str] = Field(default_factory=list, max_length=50)
    shared: bool = Field(
        default=False, description="Any app may use it (like the sandbox's 174379)."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Per-shortcode overrides of MerchantSettings."
    )

    @field_validator("till_numbers")
    @classmethod
    def _tills(cls, value: list[str]) -> list[str]:
        if not all(SHORTCODE_PATTERN.fullmatch(till) for till in value):
            raise ValueError("till numbers must be 5 to 7 digits")
        if len(set(value)) != len(value):
            raise ValueError("till numbers must not repeat")
        return value

    @model_validator(mode="after")
    def _kind_matches_tills(self) -> ShortcodeRegistration:
        if self.kind is ShortcodeKind.PAYBILL and self.till_numbers:
            raise ValueError("a paybill has no till numbers (PartyB is the shortcode itself)")
        return self


class AppRegistration(StrictModel):
    """Create or update a consumer app and its token settings (null fields inherit the global
    setting). Changing the secret revokes the app's tokens."""

    consumer_key: SecretStr = Field(min_length=1, max_length=256)
    consumer_secret: SecretStr = Field(min_length=1, max_length=256)
    token_lifetime_s: int | None = Field(default=None, ge=2, le=7 * 86400)
    revoke_old_token: bool | None = None
    expires_in_type: ExpiresInType | None = None


class AppView(BaseModel):
    """An app as the control API shows it: an id, never its key or secret."""

    app_id: str
    shortcodes: list[str]
    settings: dict[str, Any]


class ShortcodeView(BaseModel):
    """A registered shortcode, without its passkey or credentials."""

    shortcode: str
    kind: ShortcodeKind
    till_numbers: list[str]
    app_id: str
    shared: bool
    settings: dict[str, Any]


class PushAnomaly(StrEnum):
    """What goes wrong with the push response (the push itself is accepted and processed).

    - `hold`: the response is held `push_hold_s` real seconds, or until the client hangs up
    - `gateway_error`: HTTP 503 with an HTML body and no Daraja envelope
    """

    NONE = "none"
    HOLD = "hold"
    GATEWAY_ERROR = "gateway_error"


class QueryAnomaly(StrEnum):
    """What goes wrong with STK queries for a transaction.

    - `stuck_pending`: keeps answering "The transaction is being processed" after resolution
    - `gateway_error`: HTTP 503 with an HTML body and no Daraja envelope
    - `spike_arrest`: HTTP 500 `500.003.02`
    - `quota`: HTTP 500 `500.003.03`
    """

    NONE = "none"
    STUCK_PENDING = "stuck_pending"
    GATEWAY_ERROR = "gateway_error"
    SPIKE_ARREST = "spike_arrest"
    QUOTA = "quota"


class PhoneScenario(StrictModel):
    """What a phone does with the pushes it receives (each push takes a copy when it arrives)."""

    result_code: CheckedResultCode = 0
    result_desc: str | None = Field(default=None, min_length=1, max_length=200)
    unanswered: bool = Field(
        default=False, description="Never answered: ends with 1037 after the prompt timeout."
    )
    callback_delay_s: float | None = Field(
        default=None, ge=0, le=86400, description="Overrides the shortcode's callback delay."
    )
    drop_callback: bool = False
    duplicates: int = Field(default=0, ge=0, le=20, description="Extra copies of the callback.")
    duplicate_interval_s: float = Field(default=1.0, ge=0, le=3600)
    late_callback_s: float = Field(
        default=0.0, ge=0, le=86400, description="Callback this long after the query knows."
    )
    callback_before_response: bool = Field(
        default=False, description="Resolve at once and deliver before answering the push."
    )
    push_anomaly: PushAnomaly = PushAnomaly.NONE
    push_hold_s: float = Field(default=60.0, gt=0, le=600)
    query_anomaly: QueryAnomaly = QueryAnomaly.NONE
    query_anomaly_times: int | None = Field(
        default=None, ge=1, description="Affect only the first N queries (null: all)."
    )
    query_result_code: CheckedResultCode | None = Field(
        default=None, description="The query reports this code instead of the real one."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PhoneScenario:
        if self.unanswered and self.result_code != 0:
            raise ValueError("an unanswered prompt always ends with 1037: leave result_code out")
        if self.unanswered and self.callback_before_response:
            raise ValueError("an unanswered prompt cannot be answered before the push response")
        if self.callback_before_response and self.late_callback_s:
            raise ValueError("a callback cannot come both before the push response and late")
        if self.drop_callback and (
            self.duplicates or self.late_callback_s or self.callback_before_response
        ):
            raise ValueError(
                "drop_callback sends nothing: duplicates, late_callback_s and "
                "callback_before_response would have no effect"
            )
        return self


class ClockView(BaseModel):
    """The simulator's time: real time plus an offset that only grows."""

    now: datetime
    kenya_time: str
    offset_s: float


class AdvanceRequest(StrictModel):
    seconds: float = Field(gt=0, le=30 * 86400)


class AdvanceResult(ClockView):
    callbacks_delivered: int


class ResolveRequest(StrictModel):
    """Answer a pending prompt now, as the customer would."""

    result_code: CheckedResultCode = 0
    result_desc: str | None = Field(default=None, min_length=1, max_length=200)


class RequestLogEntry(BaseModel):
    """One Daraja request as received, secrets redacted."""

    seq: int
    received_at: datetime
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    content_type: str | None
    body: Any = None
    body_note: str | None = None
    status: int | None = None
    error_code: str | None = None
    phone: str | None = None
    shortcode: str | None = None
    checkout_request_id: str | None = None


class CallbackDelivery(BaseModel):
    """One callback POST the simulator made, and what came of it (Daraja never retries).

    `payload` is the exact JSON text sent; `url` keeps only scheme, host and port, because a
    callback path is a capability.
    """

    seq: int
    checkout_request_id: str
    phone: str
    shortcode: str
    url: str
    copy_number: int
    result_code: ResultCode
    payload: str
    attempted_at: datetime
    status: int | None = None
    error: str | None = None
    response_body: str | None = None


class TransactionState(StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"


class TransactionView(BaseModel):
    """The simulator's ground truth for one accepted push."""

    checkout_request_id: str
    merchant_request_id: str
    shortcode: str
    phone: str
    party_a: str
    party_b: str
    amount: int
    account_reference: str
    transaction_type: str
    state: TransactionState
    pushed_at: datetime
    resolves_at: datetime
    result_code: ResultCode | None
    result_desc: str | None
    receipt: str | None
    callbacks_planned: int
    callbacks_sent: int
    queries: int
