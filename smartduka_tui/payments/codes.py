"""What a code stored on an attempt means, from the protocol layer's catalogue.

An attempt's `result_code` holds whatever settled it: a ResultCode from a callback or query
("1032", "SFC_IC0003"), a Daraja errorCode from a refused push ("500.001.1001", told apart by
its message), `HTTP <status>` for a 4xx without an envelope, or nothing when the push never got
to Daraja. `advise` picks the catalogue entry (smartduka_tui/mpesa/result_codes.py) for each.
"""

from __future__ import annotations

from smartduka_tui.mpesa.result_codes import (
    CONNECTION_FAILED,
    HTTP_REFUSED,
    Outcome,
    ResultInfo,
    describe_refusal,
    describe_result,
)

__all__ = ["Outcome", "ResultInfo", "advise", "http_code"]


def http_code(status: int) -> str:
    """The code stored for an HTTP error that came without a Daraja envelope."""
    return f"HTTP {status}"


def advise(code: str | None, description: str | None = None) -> ResultInfo:
    """The catalogue's meaning of a stored code (`description` tells 500.001.1001 apart)."""
    if code is None:
        return CONNECTION_FAILED
    if code.startswith("HTTP "):
        return HTTP_REFUSED
    if "." in code:
        return describe_refusal(code, description)
    return describe_result(code, description)
