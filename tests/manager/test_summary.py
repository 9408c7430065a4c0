"""The daily summary."""

from __future__ import annotations

from datetime import date

import pytest

from smartduka_tui.manager import (
    CSV_COLUMNS,
    HistoryFilter,
    csv_values,
)
from smartduka_tui.manager.summary import DailySummary
from smartduka_tui.model import Actor, AttemptFlag, AttemptState
from smartduka_tui.ui.manager.history import summary_text
from tests.manager.conftest import SHOP, Seeded, Story


async def test_the_daily_summary(signed_in: Seeded) -> None:
    summary = await signed_in.service.daily_summary()
    assert summary.day == date(2026, 1, 15)
    assert (summary.attempts, summary.paid, summary.amount_paid) == (7, 2, 600)
    assert (summary.failed, summary.expired, summary.needs_review, summary.live) == (2, 1, 1, 1)
    assert summary.finished == 6 and summary.failure_rate == pytest.approx(2 / 6)
    # Per sale: S1006 is still open; failed, expired and in-review sales are not paid.
    assert (summary.sales, summary.sales_paid, summary.sales_not_paid) == (7, 2, 4)
    assert summary.sale_failure_rate == pytest.approx(4 / 6)
    assert [(c.code, c.count, c.meaning) for c in summary.failures_by_code] == [
        ("1", 1, "The balance is insufficient for the transaction."),
        ("1032", 1, "Request cancelled by user."),
    ]
    assert summary.failures_by_code[0].share == pytest.approx(1 / 6)
    # From the push going out: S1001 was paid 19 s later, S1005 (late) 131 s later.
    assert summary.average_seconds_to_pay == pytest.approx((19 + 131) / 2)
    empty = await signed_in.service.daily_summary(date(2026, 1, 14))
    assert (empty.attempts, empty.failure_rate, empty.average_seconds_to_pay) == (0, 0.0, None)


async def test_the_summary_is_the_shops_own(signed_in: Seeded) -> None:
    from smartduka_tui.manager import summarise_day

    other = await summarise_day(signed_in.store, "another-shop", date(2026, 1, 15))
    assert other.attempts == 0
    assert (await summarise_day(signed_in.store, SHOP, date(2026, 1, 15))).attempts == 7


async def test_retries_and_code_17_count_as_attempts_not_as_lost_sales(signed_in: Seeded) -> None:
    """Issue #11 case 8: one sale cancelled, refused with 17, then paid is one paid sale."""
    story = Story(signed_in.store, signed_in.clock)
    story.count = 100  # past the seeded story's attempt refs
    before = await signed_in.service.daily_summary()
    first = await story.accepted(await story.attempt("S2001", 90, "254712000091"), "ws_CO_91")
    await story.move(
        first, AttemptState.FAILED, Actor.CALLBACK, "callback_failure", result_code="1032"
    )
    second = await story.accepted(await story.attempt("S2001", 90, "254712000091"), "ws_CO_92")
    await story.move(
        second, AttemptState.FAILED, Actor.CALLBACK, "callback_failure", result_code="17"
    )
    third = await story.accepted(await story.attempt("S2001", 90, "254712000091"), "ws_CO_93")
    await story.move(
        third, AttemptState.COMPLETED, Actor.CALLBACK, "callback_success", receipt_number="R93"
    )
    after = await signed_in.service.daily_summary()
    assert after.attempts - before.attempts == 3 and after.failed - before.failed == 2
    assert after.sales - before.sales == 1 and after.sales_paid - before.sales_paid == 1
    assert after.sales_not_paid == before.sales_not_paid


def test_the_summary_names_only_the_kinds_that_happened_in_the_managers_words() -> None:
    """Issue #12 leftover: the history said "0 expired" (and "expired" where the manager's word
    is "outcome unknown")."""
    day = date(2026, 1, 15)
    quiet = DailySummary(day, 3, 3, 900, 0, 0, 0, 0, 3, 0.0, (), 20.0, 3, 3, 0, 0.0)
    assert summary_text(quiet).splitlines()[1] == (
        "Attempts: 3 asked, 3 paid, 20 s to pay on average; 0% of 3 finished failed."
    )
    mixed = DailySummary(day, 5, 1, 300, 2, 1, 0, 1, 4, 0.75, (), None, 5, 1, 3, 0.75)
    line = summary_text(mixed).splitlines()[1]
    assert line.endswith("(2 failed, 1 outcome unknown, 1 still open).")
    assert "expired" not in line and "0 " not in line.split("(")[1]


async def test_reversed_money_shows_in_the_summary_the_history_and_the_export(
    signed_in: Seeded,
) -> None:
    """Issue #14: a payment M-Pesa reversed stays paid, and is said to be reversed."""
    store = signed_in.store
    (paid,) = await store.attempts.by_receipt(SHOP, "SDK1A2B3C4")
    before = await signed_in.service.daily_summary()
    assert (before.reversed, before.amount_reversed) == (0, 0)
    async with store.write() as tx:
        await store.attempts.add_flags(tx, SHOP, paid.id, AttemptFlag.REVERSED, Actor.SYSTEM)
    summary = await signed_in.service.daily_summary()
    assert (summary.paid, summary.amount_paid) == (before.paid, before.amount_paid)
    assert (summary.reversed, summary.amount_reversed) == (1, 250)
    assert (
        summary_text(summary)
        .splitlines()[0]
        .endswith("KES 600 received, KES 250 of it reversed (1).")
    )
    page = await signed_in.service.history(HistoryFilter())
    (row,) = [r for r in page.rows if r.receipt == "SDK1A2B3C4"]
    assert row.reversed
    assert row.summary == "Reversed: paid (receipt SDK1A2B3C4), then given back to the customer"
    assert dict(zip(CSV_COLUMNS, csv_values(row), strict=True))["reversed"] == "yes"
