"""Daraja's vocabulary as the simulator speaks it: error envelopes, result codes, magic phones.

Every message and code here comes from `shared/daraja/REFERENCE.md` (sections 1-5); the simulator
keeps its own copy on purpose, so that it and `smartduka_tui.mpesa` check each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartduka_tui.simulator.schemas import PhoneScenario, PushAnomaly


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One Daraja error envelope: HTTP status, errorCode and errorMessage."""

    http_status: int
    code: str
    message: str


INVALID_PAYLOAD = ErrorSpec(400, "400.002.05", "Invalid Request Payload")
INVALID_GRANT_TYPE = ErrorSpec(400, "400.008.02", "Invalid grant type passed")
INVALID_AUTH_TYPE = ErrorSpec(400, "400.008.01", "Invalid authentication type passed")
INVALID_TOKEN = ErrorSpec(404, "404.001.03", "Invalid Access Token")
INVALID_AUTH_HEADER = ErrorSpec(404, "404.001.04", "Invalid Authentication Header")
RESOURCE_NOT_FOUND = ErrorSpec(404, "404.001.01", "Resource not found")
METHOD_NOT_ALLOWED = ErrorSpec(405, "405.001", "Method Not Allowed")
MERCHANT_NOT_FOUND = ErrorSpec(500, "500.001.1001", "Merchant does not exist")
WRONG_CREDENTIALS = ErrorSpec(500, "500.001.1001", "Wrong credentials")
SUBSCRIBER_LOCKED = ErrorSpec(
    500,
    "500.001.1001",
    "Unable to lock subscriber, a transaction is already in process for the current subscriber",
)
BEING_PROCESSED = ErrorSpec(500, "500.001.1001", "The transaction is being processed")
TRANSACTION_NOT_FOUND = ErrorSpec(500, "500.001.1001", "The transaction does not exist")
SPIKE_ARREST = ErrorSpec(500, "500.003.02", "Error Occurred: Spike Arrest Violation")
QUOTA_VIOLATION = ErrorSpec(500, "500.003.03", "Quota Violation")


def invalid_field(field: str) -> ErrorSpec:
    """Daraja names the first offending field: "Bad Request - Invalid Amount"."""
    return ErrorSpec(400, "400.002.02", f"Bad Request - Invalid {field}")


PUSH_ACCEPTED_TEXT = "Success. Request accepted for processing"
# Safaricom's live query answer really does spell it with three s's (REFERENCE.md section 3).
QUERY_ACCEPTED_TEXT = "The service request has been accepted successsfully"

# Result codes that the simulator produces by rule rather than by scenario.
RULE_LIMITED = 17
UNREACHABLE = 1037
PRODUCT_NOT_ASSIGNED = 2028
OPERATOR_DOES_NOT_EXIST = "SFC_IC0003"

RESULT_DESCRIPTIONS: dict[int | str, str] = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    2: "Declined due to limit rule.",
    3: "Declined due to limit rule: greater than the maximum transaction amount.",
    4: "Declined due to limit rule: would exceed daily transfer limit.",
    8: "Declined due to limit rule: would exceed the maximum balance.",
    17: "Rule limited.",
    26: "System busy. The service request is rejected.",
    1001: "Unable to lock subscriber, a transaction is already in process for the current "
    "subscriber.",
    1019: "Transaction has expired",
    1025: "An error occurred while sending a push request.",
    1032: "Request cancelled by user",
    1036: "SMSC ACK timeout.",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
    2028: "The request is not permitted according to product assignment.",
    8006: "The security credential is locked.",
    9999: "Internal error occurred while executing the transaction.",
    "SFC_IC0003": "The operator does not exist.",
}


def describe(code: int | str) -> str:
    """Daraja's ResultDesc for a code; a plain placeholder for codes nobody has documented."""
    return RESULT_DESCRIPTIONS.get(code, f"Simulated result {code}.")


@dataclass(frozen=True, slots=True)
class MagicPhone:
    """A phone number with a built-in behaviour, for demos and quick manual checks."""

    phone: str
    summary: str
    scenario: PhoneScenario


MAGIC_PHONES: dict[str, MagicPhone] = {
    magic.phone: magic
    for magic in (
        MagicPhone("254700000000", "pays (ResultCode 0)", PhoneScenario()),
        MagicPhone("254700000001", "cancels the prompt (1032)", PhoneScenario(result_code=1032)),
        MagicPhone("254700000002", "has insufficient funds (1)", PhoneScenario(result_code=1)),
        MagicPhone("254700000003", "enters a wrong PIN (2001)", PhoneScenario(result_code=2001)),
        MagicPhone("254700000004", "cannot be reached (1037)", PhoneScenario(result_code=1037)),
        MagicPhone(
            "254700000005",
            "pays, but no callback is ever sent (the query knows)",
            PhoneScenario(drop_callback=True),
        ),
        MagicPhone(
            "254700000006",
            "pays, but the push response is held 60 s (a client read timeout)",
            PhoneScenario(push_anomaly=PushAnomaly.HOLD, push_hold_s=60.0),
        ),
        MagicPhone(
            "254700000007",
            "never answers: the prompt expires with 1037 after the prompt timeout",
            PhoneScenario(unanswered=True),
        ),
        MagicPhone("254700000008", "pays; the callback arrives twice", PhoneScenario(duplicates=1)),
        MagicPhone(
            "254700000009",
            "pays; the callback arrives 60 s after the query already knows",
            PhoneScenario(late_callback_s=60.0),
        ),
        MagicPhone(
            "254700000010",
            "pays, but the push answers HTTP 503 without a Daraja envelope",
            PhoneScenario(push_anomaly=PushAnomaly.GATEWAY_ERROR),
        ),
        MagicPhone(
            "254700000011",
            "pays; the callback arrives before the push response",
            PhoneScenario(callback_before_response=True),
        ),
    )
}


def magic_help() -> str:
    """The magic numbers as lines of text, for `--help` and the docs."""
    lines = [f"  {m.phone}  {m.summary}" for m in MAGIC_PHONES.values()]
    lines.append("  any other number pays (ResultCode 0), the sandbox MSISDN 254708374149 included")
    return "\n".join(lines)
