"""What each Daraja result or refusal means for the shop counter.

Source: REFERENCE.md section 5 (STK result codes) and section 2 (sync error envelopes). Where the
seed analysis disagrees with Safaricom's documentation we follow the documentation: 17 is "the
same amount to the same phone within 2 minutes" (not "system busy"; that is 26), and 1037 means
the phone could not be reached, so that prompt is over whether a callback or a query says so.

Every ResultCode that arrives on a callback, or on a query answer with ResponseCode 0, is final
for its CheckoutRequestID: "retry" always means a NEW push. Only the query's "The transaction is
being processed" envelope means "still pending".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Final

from smartduka_tui.mpesa.models import clean_description, result_code_key


class Outcome(StrEnum):
    """What a code means for the attempt."""

    PAID = "paid"
    FAILED_RETRYABLE = "failed_retryable"
    """No money moved; charging again (a new push) is safe, after `retry_not_before`."""
    FAILED_NEEDS_MANAGER = "failed_needs_manager"
    """Set-up, limits or an unknown code: a cashier retry will not help (or may not be safe)."""
    PENDING = "pending"


class CodeKind(StrEnum):
    """Where a code comes from."""

    RESULT = "result"
    """A ResultCode on a callback or a query answer: final for its CheckoutRequestID."""
    REFUSAL = "refusal"
    """A Daraja error envelope on the push or query call itself."""
    CLIENT = "client"
    """Our own verdict when Daraja gave no code (no connection, bad credentials...)."""


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """One code's meaning: outcome, when a retry is allowed, and what to tell whom."""

    code: str
    kind: CodeKind
    outcome: Outcome
    cashier_message: str
    manager_hint: str
    known: bool = True
    retry_not_before: timedelta | None = None
    retry_now_with_other_amount: bool = False
    """Code 17 only: the wait applies to the same amount; another amount may go at once."""
    description: str = ""
    """Daraja's own words (ResultDesc or errorMessage), prefixes removed."""

    @property
    def final(self) -> bool:
        """Final for its CheckoutRequestID: every result code is; a refusal ends the attempt
        too (nothing was started); only PENDING is not."""
        return self.outcome is not Outcome.PENDING

    @property
    def safe_to_charge_again(self) -> bool:
        return self.outcome is Outcome.FAILED_RETRYABLE


_RETRY = Outcome.FAILED_RETRYABLE
_MANAGER = Outcome.FAILED_NEEDS_MANAGER
_SETUP_HINT = "Check the shop's M-Pesa settings (shortcode, till number, passkey) in Settings."


def _result(
    code: str,
    outcome: Outcome,
    description: str,
    cashier: str,
    manager: str,
    *,
    wait: timedelta | None = None,
    other_amount_now: bool = False,
    known: bool = True,
) -> ResultInfo:
    return ResultInfo(
        code=code,
        kind=CodeKind.RESULT,
        outcome=outcome,
        cashier_message=cashier,
        manager_hint=manager,
        known=known,
        retry_not_before=wait,
        retry_now_with_other_amount=other_amount_now,
        description=description,
    )


RESULT_CODES: Final[dict[str, ResultInfo]] = {
    info.code: info
    for info in (
        _result(
            "0",
            Outcome.PAID,
            "The service request is processed successfully.",
            "Paid. Give the customer their goods and receipt.",
            "Paid; the M-Pesa receipt number is the proof.",
        ),
        _result(
            "1",
            _RETRY,
            "The balance is insufficient for the transaction.",
            "The customer does not have enough money on M-Pesa. They can top up and try "
            "again, or pay another way.",
            "Insufficient funds on the customer's side; nothing was charged.",
        ),
        _result(
            "2",
            _MANAGER,
            "Declined due to limit rule.",
            "M-Pesa declined this amount under its limit rules. Ask the customer to pay "
            "another way and call the manager.",
            "Result 2 means the amount is below M-Pesa's minimum; check the amount sent.",
        ),
        _result(
            "3",
            _RETRY,
            "Declined due to limit rule: greater than the maximum transaction amount.",
            "The amount is more than M-Pesa allows in one payment. Split the sale or pay "
            "another way.",
            "Above M-Pesa's per-transaction maximum (KES 250,000).",
        ),
        _result(
            "4",
            _RETRY,
            "Declined due to limit rule: would exceed daily transfer limit.",
            "The customer has reached their M-Pesa daily limit. Try another phone or pay "
            "another way.",
            "The customer's daily M-Pesa limit (KES 500,000) would be exceeded.",
        ),
        _result(
            "8",
            _MANAGER,
            "Declined due to limit rule: would exceed the maximum balance.",
            "The shop's M-Pesa account is full and cannot receive this. Call the manager.",
            "The shop's M-Pesa account is at its maximum balance: withdraw or transfer funds.",
        ),
        _result(
            "17",
            _RETRY,
            "Rule limited.",
            "M-Pesa blocked a repeat of the same amount to this phone. Wait 2 minutes, then "
            "try again.",
            "Result 17: the same amount to the same phone within 2 minutes. Another amount "
            "may be sent at once.",
            wait=timedelta(minutes=2),
            other_amount_now=True,
        ),
        _result(
            "26",
            _RETRY,
            "System busy. The service request is rejected.",
            "M-Pesa is busy right now. Wait a moment, then try again.",
            "M-Pesa reported traffic blocking (system busy); nothing was charged.",
            wait=timedelta(seconds=30),
        ),
        _result(
            "1001",
            _RETRY,
            "Unable to lock subscriber, a transaction is already in process for the current "
            "subscriber.",
            "The customer's phone is busy with another M-Pesa request. Wait 1 minute, then "
            "try again.",
            "Another M-Pesa session was open on the customer's phone.",
            wait=timedelta(minutes=1),
        ),
        _result(
            "1019",
            _RETRY,
            "Transaction has expired.",
            "The payment request expired before the customer answered. Try again when they "
            "are ready.",
            "The prompt expired unanswered; nothing was charged.",
        ),
        _result(
            "1025",
            _RETRY,
            "An error occurred while sending a push request.",
            "M-Pesa could not send the payment request to the phone. Try again.",
            "Result 1025: the prompt could not be sent; if it repeats, the prompt may be too "
            "long: check the account reference prefix in Settings.",
        ),
        _result(
            "1026",
            _MANAGER,
            "No authoritative description is published for this code.",
            "M-Pesa reported a problem it does not explain. Call the manager before trying again.",
            "Result 1026 has no documented meaning: check the payment with M-Pesa before "
            "charging again.",
            known=False,
        ),
        _result(
            "1032",
            _RETRY,
            "Request cancelled by user.",
            "The customer cancelled the prompt on their phone. Ask if they want to try again.",
            "Cancelled on the phone; nothing was charged.",
        ),
        _result(
            "1036",
            _RETRY,
            "SMSC ACK timeout.",
            "The prompt did not reach the phone in time. Try again; if it keeps failing the "
            "customer may need a new SIM card.",
            "Result 1036: often an old SIM without STK support; the customer can update it at "
            "a Safaricom shop.",
        ),
        _result(
            "1037",
            _RETRY,
            "DS timeout user cannot be reached.",
            "The customer's phone could not be reached. Check it is on and has signal, then "
            "try again.",
            "Result 1037: the phone was off, out of signal or did not answer; that prompt is over.",
        ),
        _result(
            "2001",
            _RETRY,
            "The initiator information is invalid.",
            "The customer entered the wrong M-Pesa PIN. Ask them to try again carefully.",
            "Result 2001 on STK means a wrong PIN; nothing was charged.",
        ),
        _result(
            "2028",
            _MANAGER,
            "The request is not permitted according to product assignment.",
            "This shop's M-Pesa set-up refused the payment. Call the manager.",
            "Result 2028: wrong TransactionType/PartyB combination. For a Buy Goods till the "
            "BusinessShortCode is the store number and PartyB the till. " + _SETUP_HINT,
        ),
        _result(
            "8006",
            _RETRY,
            "The security credential is locked.",
            "The customer's M-Pesa PIN is locked. They must call 100 or 200 to unlock it; use "
            "another phone or pay another way.",
            "Result 8006: the customer's PIN is locked; only Safaricom can unlock it.",
        ),
        _result(
            "9999",
            _RETRY,
            "Internal error occurred while executing the transaction.",
            "M-Pesa had an internal error. Try again.",
            "Result 9999: a generic M-Pesa error; nothing was charged.",
        ),
        _result(
            "SFC_IC0003",
            _MANAGER,
            "The operator does not exist.",
            "This shop's M-Pesa set-up refused the payment. Call the manager.",
            "SFC_IC0003: wrong TransactionType or PartyB (till set-up). " + _SETUP_HINT,
        ),
    )
}


def _clean(text: str | None, longest: int = 160) -> str:
    """Daraja's text made safe to show: prefixes and control characters gone, length capped."""
    if not text:
        return ""
    plain = re.sub(r"[\x00-\x1f\x7f]+", " ", clean_description(text)).strip()
    return plain if len(plain) <= longest else plain[: longest - 1] + "…"


def describe_result(code: int | str | None, result_desc: str | None = None) -> ResultInfo:
    """The meaning of a ResultCode from a callback or query. Unknown codes fall back to Daraja's
    ResultDesc text, are marked unknown and go to the manager (money may have moved)."""
    key = _code_key_or_none(code)
    found = RESULT_CODES.get(key) if key is not None else None
    shown = _clean(result_desc)
    if found is not None:
        return replace(found, description=shown or found.description)
    said = f' M-Pesa said: "{shown}".' if shown else ""
    return ResultInfo(
        code=key or "",
        kind=CodeKind.RESULT,
        outcome=_MANAGER,
        cashier_message=f"M-Pesa returned a code this till does not know.{said} Call the manager.",
        manager_hint=(
            f"Unknown ResultCode {key or '(none)'}: check the payment with M-Pesa (query or "
            "statement) before charging the customer again."
        ),
        known=False,
        description=shown,
    )


def _code_key_or_none(code: int | str | None) -> str | None:
    if code is None or isinstance(code, bool):
        return None
    try:
        key = result_code_key(code)
    except ValueError:
        return None
    return key if re.fullmatch(r"[A-Z0-9_.\-]{1,32}", key) else None


# --- Sync refusals: Daraja's error envelopes -------------------------------------------------

LOCK_SUBSCRIBER: Final = "unable to lock subscriber"
BEING_PROCESSED: Final = "the transaction is being processed"
INVALID_ACCESS_TOKEN: Final = "404.001.03"  # noqa: S105 - an error code, not a secret
SERVER_ERROR_CODE: Final = "500.001.1001"
SPIKE_ARREST: Final = "500.003.02"
QUOTA_VIOLATION: Final = "500.003.03"


def _refusal(
    code: str,
    outcome: Outcome,
    cashier: str,
    manager: str,
    *,
    wait: timedelta | None = None,
    known: bool = True,
    description: str = "",
) -> ResultInfo:
    """A refusal's meaning, built as a result's is but of kind REFUSAL."""
    info = _result(code, outcome, description, cashier, manager, wait=wait, known=known)
    return replace(info, kind=CodeKind.REFUSAL)


# Matched in this order against the lower-cased errorMessage.
_SERVER_ERROR_BY_MESSAGE: Final[dict[str, ResultInfo]] = {
    LOCK_SUBSCRIBER: _refusal(
        SERVER_ERROR_CODE,
        _RETRY,
        "The customer's phone is busy with another M-Pesa request. Wait 1 minute, then try again.",
        "Unable to lock subscriber: a prompt was already open on that phone.",
        wait=timedelta(minutes=1),
    ),
    "merchant does not exist": _refusal(
        SERVER_ERROR_CODE,
        _MANAGER,
        "M-Pesa does not recognise this shop's account. Call the manager.",
        "Merchant does not exist: the BusinessShortCode is wrong for these credentials "
        "(in sandbox only 174379 works). " + _SETUP_HINT,
    ),
    "wrong credentials": _refusal(
        SERVER_ERROR_CODE,
        _MANAGER,
        "M-Pesa refused this shop's settings. Call the manager.",
        "Wrong credentials: the passkey does not match the shortcode (or a production "
        "shortcode with the sandbox passkey). " + _SETUP_HINT,
    ),
    BEING_PROCESSED: _refusal(
        SERVER_ERROR_CODE,
        Outcome.PENDING,
        "Still waiting for the customer to answer on their phone.",
        "The STK query says the payment is still being processed.",
    ),
}

_REFUSALS: Final[dict[str, ResultInfo]] = {
    SPIKE_ARREST: _refusal(
        SPIKE_ARREST,
        _RETRY,
        "M-Pesa is busy right now. Wait a moment, then try again.",
        "500.003.02: Daraja's spike arrest (too many requests per second) or system busy.",
        wait=timedelta(seconds=30),
    ),
    QUOTA_VIOLATION: _refusal(
        QUOTA_VIOLATION,
        _MANAGER,
        "M-Pesa is refusing more requests from this shop for now. Call the manager.",
        "500.003.03: the Daraja app's request quota is used up; ask Safaricom to raise it.",
    ),
    "500.003.1001": _refusal(
        "500.003.1001",
        _RETRY,
        "M-Pesa had an internal error; nothing was charged. Try again.",
        "500.003.1001: Daraja internal server error.",
    ),
    "400.002.05": _refusal(
        "400.002.05",
        _MANAGER,
        "M-Pesa could not read the request from this till. Call the manager.",
        "400.002.05 Invalid Request Payload: report it to SmartDuka support.",
    ),
    INVALID_ACCESS_TOKEN: _refusal(
        INVALID_ACCESS_TOKEN,
        _MANAGER,
        "M-Pesa refused this shop's sign-in. Call the manager.",
        "404.001.03 Invalid Access Token even after a new token: the Daraja app may lack the "
        "M-Pesa Express product, or sandbox keys are used against production (or the reverse).",
    ),
    "404.001.01": _refusal(
        "404.001.01",
        _MANAGER,
        "This till is set up with a wrong M-Pesa address. Call the manager.",
        "404.001.01 Resource not found: check the Daraja base URL in the configuration.",
    ),
    "405.001": _refusal(
        "405.001",
        _MANAGER,
        "This till sent M-Pesa a request it does not accept. Call the manager.",
        "405.001 Method Not Allowed: report it to SmartDuka support.",
    ),
    "400.008.01": _refusal(
        "400.008.01",
        _MANAGER,
        "M-Pesa refused this shop's sign-in. Call the manager.",
        "400.008.01 Invalid authentication type: check the Daraja base URL.",
    ),
    "400.008.02": _refusal(
        "400.008.02",
        _MANAGER,
        "M-Pesa refused this shop's sign-in. Call the manager.",
        "400.008.02 Invalid grant type: check the Daraja base URL (a stray space breaks it).",
    ),
}

_INVALID_PHONE = _refusal(
    "400.002.02",
    _RETRY,
    "M-Pesa refused this phone number. Check the number or use another phone.",
    "400.002.02 Invalid PhoneNumber: M-Pesa did not accept the number.",
)
_INVALID_FIELD = _refusal(
    "400.002.02",
    _MANAGER,
    "M-Pesa refused the request from this till. Call the manager.",
    "400.002.02: Daraja refused a field (named in the message). " + _SETUP_HINT,
)


def describe_refusal(error_code: str | None, error_message: str | None = None) -> ResultInfo:
    """The meaning of a Daraja error envelope. 500.001.1001 carries several messages, so the
    message picks the entry; unknown codes go to the manager, marked unknown."""
    code = (error_code or "").strip()
    message = _clean(error_message)
    lowered = message.lower()
    found: ResultInfo | None = None
    if code == SERVER_ERROR_CODE:
        found = next(
            (info for key, info in _SERVER_ERROR_BY_MESSAGE.items() if key in lowered), None
        )
    elif code == "400.002.02":
        found = _INVALID_PHONE if "phonenumber" in lowered.replace(" ", "") else _INVALID_FIELD
    else:
        found = _REFUSALS.get(code)
    if found is not None:
        return replace(found, description=message)
    said = f' M-Pesa said: "{message}".' if message else ""
    return _refusal(
        code,
        _MANAGER,
        f"M-Pesa refused the request.{said} Call the manager.",
        f"Unknown Daraja error {code or '(none)'}: see the message; nothing was charged.",
        known=False,
        description=message,
    )


def is_being_processed(error_code: str | None, error_message: str | None) -> bool:
    """The query's "still pending" answer: 500.001.1001 "The transaction is being processed"."""
    return (error_code or "").strip() == SERVER_ERROR_CODE and BEING_PROCESSED in (
        error_message or ""
    ).lower()


# --- Our own verdicts when Daraja gave no code -----------------------------------------------

CONNECTION_FAILED: Final = ResultInfo(
    code="connection_failed",
    kind=CodeKind.CLIENT,
    outcome=_RETRY,
    cashier_message="M-Pesa could not be reached, so nothing was sent. Check the internet "
    "connection and try again.",
    manager_hint="The till could not connect to Daraja (refused or timed out before sending).",
)
AUTHENTICATION_FAILED: Final = ResultInfo(
    code="authentication_failed",
    kind=CodeKind.CLIENT,
    outcome=_MANAGER,
    cashier_message="M-Pesa refused this shop's sign-in. Call the manager.",
    manager_hint="Daraja refused the consumer key and secret (HTTP 400): re-enter them in "
    "Settings and press Verify.",
)
HTTP_REFUSED: Final = ResultInfo(
    code="http_refused",
    kind=CodeKind.CLIENT,
    outcome=_MANAGER,
    cashier_message="M-Pesa refused the request from this till. Call the manager.",
    manager_hint="Daraja answered with an HTTP error and no error code: check the base URL.",
)
OUTCOME_UNKNOWN: Final = ResultInfo(
    code="outcome_unknown",
    kind=CodeKind.CLIENT,
    outcome=Outcome.PENDING,
    cashier_message="The request may have reached M-Pesa; waiting to find out. Do not charge "
    "again yet.",
    manager_hint="No answer from Daraja after sending: the attempt is checked by STK query.",
)
NO_ANSWER: Final = ResultInfo(
    code="no_answer",
    kind=CodeKind.CLIENT,
    outcome=Outcome.PENDING,
    cashier_message="M-Pesa is not answering right now; still checking. Do not charge again yet.",
    manager_hint="STK query gave no usable answer after its retries; it will be asked again.",
)
