"""What a code stored on an attempt means, from the protocol layer's catalogue.

An attempt's `result_code` holds whatever settled it: a ResultCode from a callback or query
("1032", "SFC_IC0003"), a Daraja errorCode from a refused push ("500.001.1001", told apart by
its message), or the client's own verdict when Daraja gave no code ("connection_failed",
"http_refused"). `advise` picks the catalogue entry (smartduka_tui/mpesa/result_codes.py).
"""

from __future__ import annotations

from smartduka_tui.mpesa.result_codes import (
    AUTHENTICATION_FAILED,
    CONNECTION_FAILED,
    HTTP_REFUSED,
    NO_ANSWER,
    OUTCOME_UNKNOWN,
    CodeKind,
    Outcome,
    ResultInfo,
    describe_refusal,
    describe_result,
)

__all__ = ["MANAGER_NOT_PAID", "RULE_LIMITED", "Outcome", "ResultInfo", "advise"]

RULE_LIMITED = "17"
"""Daraja's "same amount to the same phone within 2 minutes" (a callback's ResultCode)."""

MANAGER_NOT_PAID = ResultInfo(
    code="manager_not_paid",
    kind=CodeKind.CLIENT,
    outcome=Outcome.FAILED_RETRYABLE,
    cashier_message="A manager checked the M-Pesa statement: not paid. You may charge again.",
    manager_hint="Resolved as not paid after checking the M-Pesa statement.",
)

_CLIENT_VERDICTS = {
    info.code: info
    for info in (
        CONNECTION_FAILED,
        AUTHENTICATION_FAILED,
        HTTP_REFUSED,
        OUTCOME_UNKNOWN,
        NO_ANSWER,
        MANAGER_NOT_PAID,
    )
}


def advise(code: str | None, description: str | None = None) -> ResultInfo:
    """The catalogue's meaning of a stored code (`description` tells 500.001.1001 apart).

    No code at all is a push that never reached Daraja.
    """
    if code is None:
        return CONNECTION_FAILED
    if code in _CLIENT_VERDICTS:
        return _CLIENT_VERDICTS[code]
    if "." in code:
        return describe_refusal(code, description)
    return describe_result(code, description)
