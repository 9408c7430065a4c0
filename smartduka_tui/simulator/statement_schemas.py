"""Control-API shapes for the statement APIs (C2B, Transaction Status, Reversal, Pull, QR).

Shared by the server and `control.SimulatorControl`; pydantic only, so the client stays light.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, SecretStr, StrictInt, StrictStr

from smartduka_tui.simulator.schemas import StrictModel, check_phone


def _matching(pattern: str, message: str) -> AfterValidator:
    """Text that is empty or all of `pattern`; else `message`."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if value and not compiled.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


class InitiatorRegistration(StrictModel):
    """An API operator (initiator) of a shortcode, for Transaction Status and Reversal."""

    name: Annotated[
        str, _matching(r"^[A-Za-z0-9_.\-]{1,64}$", "letters, digits, '_', '.' or '-', at most 64")
    ] = Field(min_length=1, max_length=64)
    password: SecretStr = Field(min_length=1, max_length=128)


class AsyncResultScenario(StrictModel):
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


class C2BPaymentRequest(StrictModel):
    """A phone paying the shortcode directly (or by scanning its QR), as the customer would.

    `amount` is text so that cents stay exact ("150.00"; "150.50" for a till that must refuse it).
    """

    phone: Annotated[str, AfterValidator(check_phone)]
    amount: Annotated[Decimal, AfterValidator(_cents)] = Field(
        gt=0, le=250_000, max_digits=9, decimal_places=2
    )
    first_name: Annotated[
        str, _matching(r"^[A-Za-z][A-Za-z '\-]{0,29}$", "letters, spaces, ' or -, at most 30")
    ] = "JOHN"
    bill_ref_number: Annotated[
        str,
        _matching(
            r"^[A-Za-z0-9 _.\-]{0,20}$", "at most 20 letters, digits, spaces, '_', '.' or '-'"
        ),
    ] = ""
    qr_request_id: str | None = Field(
        default=None, description="Pay a generated Dynamic QR: amount must match its Amount."
    )


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
