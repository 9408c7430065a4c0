"""The result-code catalogue: every documented code, its outcome, its wait and its words."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from smartduka_tui.mpesa.result_codes import (
    RESULT_CODES,
    CodeKind,
    Outcome,
    describe_refusal,
    describe_result,
    is_being_processed,
)
from tests.support.daraja import PAYLOADS, REFERENCE

SECTION_5 = [
    "0", "1", "2", "3", "4", "8", "17", "26", "1001", "1019", "1025", "1026", "1032", "1036",
    "1037", "2001", "2028", "8006", "9999", "SFC_IC0003",
]  # fmt: skip


def reference_codes() -> list[str]:
    """The codes in REFERENCE.md section 5's table, read from the document itself."""
    text = REFERENCE.read_text()
    section = text.split("## 5. STK result codes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (\w+) \|", section, flags=re.MULTILINE)[1:]  # skip the header


def test_catalogue_covers_section_5() -> None:
    assert set(SECTION_5) <= set(RESULT_CODES)


def test_catalogue_covers_every_code_the_reference_lists() -> None:
    listed = reference_codes()
    assert len(listed) >= 20
    assert set(listed) <= set(RESULT_CODES), set(listed) - set(RESULT_CODES)


@pytest.mark.parametrize("code", SECTION_5)
def test_every_entry_speaks_to_cashier_and_manager(code: str) -> None:
    info = RESULT_CODES[code]
    assert info.code == code and info.kind is CodeKind.RESULT
    assert info.cashier_message and info.manager_hint and info.description
    assert "Daraja" not in info.cashier_message  # plain words at the counter
    assert "ResultCode" not in info.cashier_message
    assert info.final  # every result code settles its CheckoutRequestID


@pytest.mark.parametrize(
    ("code", "outcome", "wait"),
    [
        (0, Outcome.PAID, None),
        (1, Outcome.FAILED_RETRYABLE, None),
        (17, Outcome.FAILED_RETRYABLE, timedelta(minutes=2)),
        (26, Outcome.FAILED_RETRYABLE, timedelta(seconds=30)),
        (1001, Outcome.FAILED_RETRYABLE, timedelta(minutes=1)),
        (1019, Outcome.FAILED_RETRYABLE, None),
        (1032, Outcome.FAILED_RETRYABLE, None),
        (1037, Outcome.FAILED_RETRYABLE, None),
        (2001, Outcome.FAILED_RETRYABLE, None),
        (8, Outcome.FAILED_NEEDS_MANAGER, None),
        (2028, Outcome.FAILED_NEEDS_MANAGER, None),
        ("SFC_IC0003", Outcome.FAILED_NEEDS_MANAGER, None),
    ],
)
def test_outcomes_and_waits(code: int | str, outcome: Outcome, wait: timedelta | None) -> None:
    info = describe_result(code)
    assert (info.outcome, info.retry_not_before) == (outcome, wait)
    assert info.known


def test_code_17_is_same_amount_within_two_minutes_not_system_busy() -> None:
    seventeen = describe_result(17)
    assert seventeen.retry_now_with_other_amount
    assert "same amount" in seventeen.cashier_message and "2 minutes" in seventeen.cashier_message
    assert "busy" not in seventeen.cashier_message.lower()
    assert "busy" in describe_result(26).cashier_message.lower()
    assert not describe_result(26).retry_now_with_other_amount


def test_1037_means_the_phone_could_not_be_reached_and_the_prompt_is_over() -> None:
    info = describe_result("1037", "DS timeout user cannot be reached")
    assert "could not be reached" in info.cashier_message
    assert info.final and info.safe_to_charge_again


def test_cancel_message_is_something_a_cashier_can_act_on() -> None:
    assert describe_result(1032).cashier_message == (
        "The customer cancelled the prompt on their phone. Ask if they want to try again."
    )


def test_string_and_int_codes_are_the_same_entry() -> None:
    assert describe_result("1032") == describe_result(1032)
    assert describe_result("sfc_ic0003").code == "SFC_IC0003"
    # Not Daraja's spelling: never taken for the code it resembles.
    assert not describe_result(" 1032 ").known


def test_result_desc_prefixes_are_cleaned_into_the_description() -> None:
    info = describe_result(1032, "[STK_CB - ]Request cancelled by user")
    assert info.description == "Request cancelled by user"


def test_1026_has_no_published_meaning_so_it_is_unknown() -> None:
    info = describe_result(1026)
    assert not info.known and info.outcome is Outcome.FAILED_NEEDS_MANAGER


@pytest.mark.parametrize("code", [4999, "4999", "R000002", 15])
def test_unknown_codes_fall_back_to_result_desc(code: int | str) -> None:
    info = describe_result(code, "[STK_CB - ]Something\x1b[31m odd happened")
    assert not info.known
    assert info.outcome is Outcome.FAILED_NEEDS_MANAGER
    assert info.description == "Something [31m odd happened"
    assert 'M-Pesa said: "Something [31m odd happened"' in info.cashier_message
    assert str(code).strip() in info.manager_hint
    assert info.final


def test_unknown_code_without_text_still_reads_well() -> None:
    info = describe_result(None)
    assert not info.known and info.code == "" and "M-Pesa said" not in info.cashier_message
    assert len(describe_result(4999, "x" * 1000).description) <= 160


def load_envelope(name: str) -> tuple[str, str]:
    data = json.loads((PAYLOADS / name).read_text())
    return data["errorCode"], data["errorMessage"]


@pytest.mark.parametrize(
    ("name", "outcome", "wait"),
    [
        (
            "error_500.001.1001_unable_to_lock_subscriber.json",
            Outcome.FAILED_RETRYABLE,
            timedelta(minutes=1),
        ),
        ("error_500.001.1001_merchant_does_not_exist.json", Outcome.FAILED_NEEDS_MANAGER, None),
        ("error_500.001.1001_wrong_credentials.json", Outcome.FAILED_NEEDS_MANAGER, None),
        ("query_error_500.001.1001_being_processed.json", Outcome.PENDING, None),
        ("error_500.003.02_spike_arrest.json", Outcome.FAILED_RETRYABLE, timedelta(seconds=30)),
        ("error_500.003.03_quota_violation.json", Outcome.FAILED_NEEDS_MANAGER, None),
        ("error_400.002.02_invalid_phone.json", Outcome.FAILED_RETRYABLE, None),
        ("error_400.002.02_invalid_amount.json", Outcome.FAILED_NEEDS_MANAGER, None),
        ("error_400.002.05_invalid_payload.json", Outcome.FAILED_NEEDS_MANAGER, None),
        ("error_404.001.03_invalid_access_token.json", Outcome.FAILED_NEEDS_MANAGER, None),
    ],
)
def test_every_error_payload_has_a_refusal_entry(
    name: str, outcome: Outcome, wait: timedelta | None
) -> None:
    code, message = load_envelope(name)
    info = describe_refusal(code, message)
    assert info.known and info.kind is CodeKind.REFUSAL
    assert (info.outcome, info.retry_not_before) == (outcome, wait)
    assert info.description == message
    assert info.cashier_message and info.manager_hint


def test_merchant_and_credentials_refusals_point_the_manager_at_settings() -> None:
    for name in (
        "error_500.001.1001_merchant_does_not_exist.json",
        "error_500.001.1001_wrong_credentials.json",
    ):
        info = describe_refusal(*load_envelope(name))
        assert "manager" in info.cashier_message.lower()
        assert "Settings" in info.manager_hint


def test_being_processed_is_recognised_only_with_its_code() -> None:
    code, message = load_envelope("query_error_500.001.1001_being_processed.json")
    assert is_being_processed(code, message)
    assert not is_being_processed("500.003.02", message)
    assert not is_being_processed(code, "Wrong credentials")


@pytest.mark.parametrize(
    ("code", "message"),
    [("500.001.1001", "Something new"), ("999.999.99", "Mystery"), (None, None)],
)
def test_unknown_refusals_go_to_the_manager_marked_unknown(
    code: str | None, message: str | None
) -> None:
    info = describe_refusal(code, message)
    assert not info.known and info.outcome is Outcome.FAILED_NEEDS_MANAGER
    if message:
        assert message in info.cashier_message
