"""Pure parts of the cashier app: money and time formatting, amounts, the big receipt font, the
connection board and the banner's words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartduka_tui.connectivity import ConnectionBoard, ConnectionState, Reachability
from smartduka_tui.mpesa.kenya_time import kenya_clock
from smartduka_tui.mpesa.requests import MAX_AMOUNT
from smartduka_tui.ui.amounts import (
    SaleItem,
    amount_of,
    amount_problem,
    item_of,
    item_problem,
    items_total,
)
from smartduka_tui.ui.format import countdown, local_time, masked_apart, seconds_left, shillings
from smartduka_tui.ui.widgets.big_text import FONT, render_rows
from smartduka_tui.ui.widgets.offline_banner import (
    DARAJA_DOWN,
    DARAJA_NOT_ANSWERING,
    RELAY_DOWN,
    RELAY_NOT_ANSWERING,
    banner_text,
)
from smartduka_tui.ui.widgets.status_bar import describe

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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "Type the total in whole shillings."),
        ("0", "The total must be from KES 1 to KES 250,000, got 0."),
        ("250001", "The total must be from KES 1 to KES 250,000, got 250,001."),
        ("10.50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("10.", "The total: whole shillings only (M-Pesa takes no cents)."),
        (".50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("1,000.50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("-5", "The total cannot be negative."),
        ("+5", "The total takes no sign: type the digits only."),
        ("5e3", "The total must be plain digits: 5e3 is not read as a power of ten."),
        ("1,00", "The total: put commas only between groups of three digits (1,250)."),
        ("1,0000", "The total: put commas only between groups of three digits (1,250)."),
        ("1 000", "The total must be digits without spaces."),
        ("1_000", "The total must be whole shillings in digits (0 to 9)."),
        ("１２", "The total must be whole shillings in digits (0 to 9)."),
        ("12x", "The total must be whole shillings in digits (0 to 9)."),
    ],
)
def test_amount_problems_say_what_is_wrong(text: str, problem: str) -> None:
    assert amount_problem(text) == problem
    assert amount_of(text) is None


@pytest.mark.parametrize(("text", "amount"), [("37,100", 37_100), ("1,250", 1250), ("050", 50)])
def test_thousands_grouped_as_the_counter_writes_them_are_read_exactly(
    text: str, amount: int
) -> None:
    assert amount_problem(text) is None
    assert amount_of(text) == amount


@given(st.text(alphabet="0123456789.,-+e ", max_size=9))
def test_a_typed_total_is_its_digits_or_refused(text: str) -> None:
    """Never another number: accepted text is digits (commas only as thousands), and reads as
    exactly those digits."""
    amount = amount_of(text)
    if amount is None:
        assert amount_problem(text)
    else:
        assert text.strip().replace(",", "").isdigit()
        assert amount == int(text.strip().replace(",", ""))


@given(st.integers(min_value=1, max_value=MAX_AMOUNT))
def test_every_amount_mpesa_takes_is_accepted(amount: int) -> None:
    assert amount_problem(str(amount)) is None


@pytest.mark.parametrize(
    ("name", "qty", "price", "problem"),
    [
        ("", "1", "10", "Name the item."),
        ("x" * 31, "1", "10", "Keep the item name to 30 characters."),
        ("Sugar", "0", "10", "The quantity must be a whole number from 1 to 999."),
        ("Sugar", "", "10", "The quantity must be a whole number from 1 to 999."),
        ("Sugar", "1.5", "10", "The quantity must be a whole number from 1 to 999."),
        ("Sugar", "2", "0", "The price must be at least KES 1."),
        ("Sugar", "2", "250001", "The price must be at most KES 250,000."),
        ("Sugar", "2", "185.50", "The price: whole shillings only (M-Pesa takes no cents)."),
        ("Sugar", "2", "-185", "The price cannot be negative."),
        ("Sugar", "2", "", "The price is empty: type it in whole shillings."),
    ],
)
def test_item_problems(name: str, qty: str, price: str, problem: str) -> None:
    assert item_problem(name, qty, price) == problem
    assert item_of(name, qty, price) is None


def test_an_item_line_reads_its_price_exactly() -> None:
    assert item_of(" Sugar ", "2", "1,185") == SaleItem("Sugar", 2, 1185)


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


def test_items_total_is_exact_integer_shillings() -> None:
    items = [SaleItem("Sugar 1kg", 2, 185), SaleItem("Bread", 1, 65)]
    assert items_total(items) == 435
    assert isinstance(items_total(items), int)


def test_every_glyph_is_three_by_three_and_letters_are_distinct() -> None:
    for char, glyph in FONT.items():
        assert len(glyph) == 3, char
        assert all(len(row) == 3 for row in glyph), char
    drawn = {glyph for char, glyph in FONT.items() if char.isalnum()}
    assert len(drawn) == sum(1 for char in FONT if char.isalnum())


def test_receipt_rows_have_one_column_between_glyphs() -> None:
    rows = render_rows("NLJ7RT61SV")
    assert all(len(row) == 10 * 3 + 9 for row in rows)
    assert render_rows("ab") == render_rows("AB")


def test_board_tells_listeners_only_about_changes() -> None:
    board = ConnectionBoard()
    heard: list[ConnectionState] = []
    unsubscribe = board.subscribe(heard.append)
    board.set(daraja=Reachability.REACHABLE)
    board.set(daraja=Reachability.REACHABLE)
    board.set(relay=Reachability.UNREACHABLE)
    unsubscribe()
    board.set(relay=Reachability.REACHABLE)
    assert heard == [
        ConnectionState(Reachability.REACHABLE, Reachability.NOT_USED),
        ConnectionState(Reachability.REACHABLE, Reachability.UNREACHABLE),
    ]
    assert board.current() == ConnectionState(Reachability.REACHABLE, Reachability.REACHABLE)


def test_banner_says_which_connection_is_down() -> None:
    up = ConnectionState(Reachability.REACHABLE, Reachability.REACHABLE)
    assert banner_text(up) == ""
    assert banner_text(ConnectionState(Reachability.UNREACHABLE, Reachability.REACHABLE)) == (
        DARAJA_DOWN
    )
    assert banner_text(ConnectionState(Reachability.REACHABLE, Reachability.UNREACHABLE)) == (
        RELAY_DOWN
    )
    both = banner_text(ConnectionState(Reachability.UNREACHABLE, Reachability.UNREACHABLE))
    assert DARAJA_DOWN in both and RELAY_DOWN in both


def test_a_silent_connection_is_down_amber_and_promises_nothing() -> None:
    """Issue case 8: a hung Daraja or relay gets its own words, counts as down (so sales are
    refused), and the relay banner no longer says payments still complete."""
    silent = ConnectionState(Reachability.NOT_ANSWERING, Reachability.NOT_ANSWERING)
    assert silent.daraja_down and silent.relay_down and silent.offline
    assert describe("M-Pesa", Reachability.NOT_ANSWERING) == ("◐ M-Pesa NO REPLY", "-silent")
    assert banner_text(silent) == f"{DARAJA_NOT_ANSWERING}\n{RELAY_NOT_ANSWERING}"
    relay_only = ConnectionState(Reachability.REACHABLE, Reachability.NOT_ANSWERING)
    assert banner_text(relay_only) == RELAY_NOT_ANSWERING
    for words in (RELAY_DOWN, RELAY_NOT_ANSWERING):
        assert "still complete" not in words


def test_status_words() -> None:
    assert describe("M-Pesa", Reachability.UNREACHABLE) == ("✖ M-Pesa OFFLINE", "-down")
    assert describe("Relay", Reachability.NOT_USED) == ("", "-unused")
    assert describe("Relay", Reachability.REACHABLE) == ("● Relay", "-ok")


def test_a_retry_time_is_written_in_kenya_time_like_every_screen() -> None:
    """Issue #12 case 6: the retry time was UTC where every other screen used Kenya time."""
    assert kenya_clock(NOON_UTC) == local_time(NOON_UTC) == "12:00:00"
