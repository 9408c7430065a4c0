"""Money and time as the cashier app writes them (ui/format.py): whole shillings, Kenya time,
countdowns, and recent numbers masked yet told apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartduka_tui.model import TenderKind
from smartduka_tui.mpesa.kenya_time import kenya_clock
from smartduka_tui.payments.sales import TenderView
from smartduka_tui.ui.format import (
    countdown,
    local_time,
    masked_apart,
    seconds_left,
    shillings,
    tender_words,
)

NOON_UTC = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)


def test_shillings_are_whole_with_thousands() -> None:
    assert shillings(250_000) == "KES 250,000"
    assert shillings(1) == "KES 1"


def test_local_time_is_kenya_time() -> None:
    assert local_time(NOON_UTC) == "12:00:00"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (59, "0:59"), (60, "1:00"), (3601, "1:00:01"), (-5, "0:00")]
)
def test_countdown(seconds: int, shown: str) -> None:
    assert countdown(seconds) == shown


def test_seconds_left_rounds_up_and_stops_at_zero() -> None:
    deadline = NOON_UTC + timedelta(seconds=60)
    assert seconds_left(deadline, NOON_UTC) == 60
    assert seconds_left(deadline, NOON_UTC + timedelta(seconds=59.2)) == 1
    assert seconds_left(deadline, NOON_UTC + timedelta(seconds=61)) == 0


def test_recent_numbers_show_enough_digits_to_tell_them_apart() -> None:
    assert masked_apart(["254700000003", "254700000013", "254712345678"]) == [
        "07** *** 003",
        "07** *** 013",
        "07** *** 678",
    ]
    assert masked_apart(["254700000003", "254711000003"]) == ["07*0 000 003", "07*1 000 003"]


@given(st.lists(st.from_regex(r"2547[0-9]{8}", fullmatch=True), max_size=5, unique=True))
def test_masked_recent_numbers_never_look_alike(phones: list[str]) -> None:
    shown = masked_apart(phones)
    assert len(set(shown)) == len(phones)
    assert all(
        shown_one.endswith(phone[-3:]) for shown_one, phone in zip(shown, phones, strict=True)
    )


def test_a_retry_time_is_written_in_kenya_time_like_every_screen() -> None:
    """Issue #12 case 6: the retry time was UTC where every other screen used Kenya time."""
    assert kenya_clock(NOON_UTC) == local_time(NOON_UTC) == "12:00:00"


def _tender(kind: TenderKind, amount: int, **rest: object) -> TenderView:
    fields: dict[str, Any] = {"cash_given": None, "change_given": None, "receipt": None}
    fields.update(rest)
    return TenderView(kind, amount, at=datetime(2026, 1, 15, 9, tzinfo=UTC), **fields)


def test_a_tender_in_one_line() -> None:
    cash = _tender(TenderKind.CASH, 200, cash_given=1000, change_given=800)
    exact = _tender(TenderKind.CASH, 200, cash_given=200, change_given=0)
    prompt = _tender(TenderKind.MPESA_STK, 300, receipt="TKQ9ZZ1A2B")
    assert [tender_words(t) for t in (cash, exact, prompt)] == [
        "KES 200 cash (given 1,000, change 800)",
        "KES 200 cash",
        f"KES 300 {TenderKind.MPESA_STK.label.lower().replace('m-pesa', 'M-Pesa')} TKQ9ZZ1A2B",
    ]
