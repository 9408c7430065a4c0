"""What a Daraja result or error code means for the engine and the cashier.

Source: shared/daraja/REFERENCE.md section 5 (STK result codes) and section 2 (push error
envelopes). Each code maps to an outcome (paid; failed and safe to charge again, with how long
to wait first; failed and needs a manager; still pending), a message a cashier can act on and a
hint for the manager. `500.001.1001` carries several meanings, told apart by its message.
Unknown codes are marked unknown: a callback with one goes to a manager (DESIGN.md section 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PAID = "paid"
    FAILED_RETRYABLE = "failed_retryable"
    """Failed; charging again is safe (after `retry_after_s`)."""
    FAILED_NEEDS_MANAGER = "failed_needs_manager"
    """Failed for a reason retrying will not fix (setup, limits, a locked PIN)."""
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Advice:
    outcome: Outcome
    cashier_message: str
    manager_hint: str | None = None
    retry_after_s: int = 0
    known: bool = True

    @property
    def safe_to_retry(self) -> bool:
        return self.outcome is Outcome.FAILED_RETRYABLE


def _retry(message: str, hint: str | None = None, after: int = 0) -> Advice:
    return Advice(Outcome.FAILED_RETRYABLE, message, hint, after)


def _manager(message: str, hint: str) -> Advice:
    return Advice(Outcome.FAILED_NEEDS_MANAGER, message, hint)


_SETUP = "Check the shop's M-Pesa settings (shortcode, till number, type, passkey)."
RESULT_CODES: dict[str, Advice] = {
    "0": Advice(Outcome.PAID, "Paid."),
    "1": _retry(
        "The customer's M-Pesa balance is too low. They can top up, then retry, or pay another way."
    ),
    "2": _manager(
        "M-Pesa declined the amount (below its minimum). Take another payment method.",
        "Result 2: declined by a limit rule (amount below the minimum).",
    ),
    "3": _manager(
        "The amount is above the customer's M-Pesa limit per payment. Take another payment "
        "method or split the sale.",
        "Result 3: greater than the maximum transaction amount.",
    ),
    "4": _manager(
        "The customer has reached their daily M-Pesa limit. Take another payment method.",
        "Result 4: would exceed the customer's daily transfer limit.",
    ),
    "8": _manager(
        "M-Pesa refused: the shop's M-Pesa account is at its maximum balance. Call a manager.",
        "Result 8: the merchant account would exceed its maximum balance; move funds out.",
    ),
    "17": _retry(
        "M-Pesa refuses the same amount to the same phone twice within 2 minutes. Wait 2 "
        "minutes, then retry.",
        "Result 17: rule limited (same amount, same customer, within 2 minutes).",
        after=120,
    ),
    "26": _retry(
        "M-Pesa is busy. Wait a moment, then retry.",
        "Result 26: system busy; back off.",
        after=30,
    ),
    "1001": _retry(
        "The customer's phone is busy with another M-Pesa request. Wait 1 minute, then retry.",
        "Result 1001: unable to lock subscriber (another session on the phone).",
        after=60,
    ),
    "1019": _retry("The request expired before the customer answered. You can retry."),
    "1025": _retry(
        "M-Pesa could not send the prompt. You can retry.",
        "Result 1025: error sending the push (prompt too long? check the account reference).",
    ),
    "1032": _retry("The customer cancelled the request. Retry if they want to pay by M-Pesa."),
    "1036": _retry(
        "The prompt did not reach the customer's phone in time. Retry; if it keeps failing, "
        "their SIM may need an update.",
        "Result 1036: SMSC ACK timeout (often an old SIM without STK support).",
    ),
    "1037": _retry(
        "The customer's phone could not be reached (off, busy or no answer). Retry when it is on."
    ),
    "2001": _retry("The customer entered a wrong M-Pesa PIN. Retry with the correct PIN."),
    "2028": _manager(
        "M-Pesa refused this shop's request. Call a manager.",
        "Result 2028: not permitted by product assignment. " + _SETUP,
    ),
    "8006": _manager(
        "The customer's M-Pesa PIN is locked; they must call Safaricom (100 or 200). Take "
        "another payment method.",
        "Result 8006: the customer's security credential is locked.",
    ),
    "9999": _retry("M-Pesa had an internal error. You can retry."),
    "SFC_IC0003": _manager(
        "M-Pesa refused this shop's request. Call a manager.",
        "SFC_IC0003: the operator does not exist. " + _SETUP,
    ),
}

# Push error envelopes (REFERENCE.md section 2), by errorCode.
ERROR_CODES: dict[str, Advice] = {
    "500.003.02": _retry(
        "M-Pesa is busy. Wait a moment, then retry.",
        "500.003.02: spike arrest or system busy.",
        after=30,
    ),
    "500.003.03": _retry(
        "M-Pesa is limiting this shop's requests. Wait a minute, then retry.",
        "500.003.03: quota violation; ask Safaricom about the app's quota if it persists.",
        after=60,
    ),
    "500.003.1001": _retry("M-Pesa had an internal error. You can retry."),
    "400.002.02": _manager(
        "M-Pesa refused the request as invalid. Call a manager.",
        "400.002.02: a field was refused (see the description). " + _SETUP,
    ),
    "400.002.05": _manager(
        "M-Pesa refused the request as invalid. Call a manager.",
        "400.002.05: invalid request payload.",
    ),
    "404.001.03": _manager(
        "M-Pesa refused this shop's credentials. Call a manager.",
        "404.001.03: invalid access token (sandbox keys in production, or the app lacks the "
        "M-Pesa Express product).",
    ),
}

_LOCKED_SUBSCRIBER = RESULT_CODES["1001"]
_MERCHANT_SETUP = _manager(
    "M-Pesa refused this shop's credentials or shortcode. Call a manager.",
    "500.001.1001: merchant does not exist or wrong credentials. " + _SETUP,
)

NOT_SENT = _retry(
    "M-Pesa could not be reached, so nothing was sent. You can retry.",
    "The push never reached Daraja (connection refused or timed out).",
)
"""A definite refusal without a Daraja code: the request never got there."""


def advise(code: str | None, description: str | None = None) -> Advice:
    """The advice for a ResultCode or errorCode (`description` tells 500.001.1001 apart)."""
    if code is None:
        return NOT_SENT
    key = code.strip().upper()
    if key in RESULT_CODES:
        return RESULT_CODES[key]
    if key in ERROR_CODES:
        return ERROR_CODES[key]
    if key == "500.001.1001":
        text = (description or "").lower()
        if "lock subscriber" in text:
            return _LOCKED_SUBSCRIBER
        if "being processed" in text:
            return Advice(Outcome.PENDING, "M-Pesa is still processing the payment.")
        return _MERCHANT_SETUP
    return Advice(
        Outcome.FAILED_NEEDS_MANAGER,
        "M-Pesa gave an answer SmartDuka does not know. Call a manager before taking payment "
        "again.",
        f"Unknown code {code}: {description or 'no description'}. Check with M-Pesa.",
        known=False,
    )
