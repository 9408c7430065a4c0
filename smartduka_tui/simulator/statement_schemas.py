"""Control-API shapes for the statement APIs (C2B, Transaction Status, Reversal, Pull, QR).

Shared by the server and `control.SimulatorControl`; pydantic only, so the client stays light.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, StrictStr, field_validator

from smartduka_tui.simulator.schemas import check_phone

_NAME = re.compile(r"^[A-Za-z][A-Za-z '\-]{0,29}$")
_BILL_REF = re.compile(r"^[A-Za-z0-9 _.\-]{0,20}$")
_INITIATOR = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitiatorRegistration(_Strict):
    """An API operator (initiator) of a shortcode, for Transaction Status and Reversal."""

    name: str = Field(min_length=1, max_length=64)
    password: SecretStr = Field(min_length=1, max_length=128)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _INITIATOR.fullmatch(value):
            raise ValueError("letters, digits, '_', '.' or '-', at most 64")
        return value


class AsyncResultScenario(_Strict):
    """How a shortcode's asynchronous notices travel: C2B confirmations and the results of
    Transaction Status and Reversal. `times` limits it to the next N notices (null: all)."""

    delay_s: float = Field(default=1.0, ge=0, le=86400, description="Simulator seconds.")
    drop: bool = Field(default=False, description="Send nothing (no result, no timeout).")
    duplicates: int = Field(default=0, ge=0, le=20, description="Extra copies of each notice.")
    timeout: bool = Field(
        default=False,
        description="Transaction Status and Reversal post to QueueTimeOutURL instead.",
    )
    result_code: StrictInt | StrictStr | None = Field(
        default=None, description="Force this ResultCode on results (e.g. 'R000001')."
    )
    times: int | None = Field(default=None, ge=1)


class C2BPaymentRequest(_Strict):
    """A phone paying the shortcode directly (or by scanning its QR), as the customer would.

    `amount` is text so that cents stay exact ("150.00"; "150.50" for a till that must refuse it).
    """

    phone: str
    amount: Decimal = Field(gt=0, le=250_000, max_digits=9, decimal_places=2)
    first_name: str = "JOHN"
    bill_ref_number: str = ""
    qr_request_id: str | None = Field(
        default=None, description="Pay a generated Dynamic QR: amount must match its Amount."
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return check_phone(value)

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        return value.quantize(Decimal("0.01"))

    @field_validator("first_name")
    @classmethod
    def _first_name(cls, value: str) -> str:
        if value and not _NAME.fullmatch(value):
            raise ValueError("letters, spaces, ' or -, at most 30")
        return value

    @field_validator("bill_ref_number")
    @classmethod
    def _bill_ref(cls, value: str) -> str:
        if not _BILL_REF.fullmatch(value):
            raise ValueError("at most 20 letters, digits, spaces, '_', '.' or '-'")
        return value


class ValidationOutcome(StrEnum):
    """What external validation decided for a C2B payment."""

    OFF = "off"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DEFAULTED = "defaulted"


class C2BPaymentView(BaseModel):
    """The simulator's ground truth for one direct payment (full MSISDN: it is the test's own)."""

    trans_id: str
    shortcode: str
    phone: str
    masked_msisdn: str
    amount: Decimal
    first_name: str
    bill_ref_number: str
    transaction_type: str
    trans_time: str
    completed: bool
    validation: ValidationOutcome
    confirmation_registered: bool
    reversed: bool


class NoticeKind(StrEnum):
    C2B_VALIDATION = "c2b_validation"
    C2B_CONFIRMATION = "c2b_confirmation"
    TRANSACTION_STATUS_RESULT = "transaction_status_result"
    REVERSAL_RESULT = "reversal_result"
    QUEUE_TIMEOUT = "queue_timeout"


class NoticeDelivery(BaseModel):
    """One asynchronous POST the simulator made; `url` keeps only scheme, host and port."""

    seq: int
    kind: NoticeKind
    shortcode: str
    reference: str
    copy_number: int
    url: str
    payload: str
    attempted_at: datetime
    status: int | None = None
    error: str | None = None
    response_body: str | None = None
