"""Sales history and the daily summary: one Kenya calendar day at a time.

The summary says how many payments were asked for, how many were paid and for how much, the
failure rate by M-Pesa result code, and the average time from prompt to payment. Below it, every
payment of that day, newest first. [ and ] move a day back or forward, T returns to today.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from smartduka_tui.manager import (
    DailySummary,
    HistoryFilter,
    ListCursor,
    PaymentRow,
    RowPage,
)
from smartduka_tui.model import AttemptState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.manager.paged import PagedTableScreen, page_bindings
from smartduka_tui.ui.manager.problems import amount_cell, short_time

DAY_KEYS = Binding.Group("Day")
"""A day back and a day on share one footer entry ("[ ] Day")."""

COLUMNS = (
    ("When", "when", 12),
    ("State", "what", 15),
    ("Sale", "sale", 8),
    ("KES", "amount", 7),
    ("Phone", "phone", 12),
    ("Receipt/code", "code", 12),
)


def receipt_or_code(row: PaymentRow) -> str:
    """The receipt; for a payment paid without one yet, "pending" (its code is 0, which is no
    receipt); otherwise the code that ended it."""
    if row.receipt:
        return row.receipt
    if row.state is AttemptState.COMPLETED:
        return "pending"
    return row.result_code or ""


def summary_text(summary: DailySummary) -> str:
    day = summary.day.strftime("%A %d %b %Y")
    if not summary.attempts:
        return f"{day}: no payments."
    average = (
        f"{summary.average_seconds_to_pay:.0f} s to pay on average"
        if summary.average_seconds_to_pay is not None
        else "no paid payment to time"
    )
    # Only the kinds that happened, in the manager's words (EXPIRED is "outcome unknown").
    kinds = ", ".join(
        f"{count} {word}"
        for count, word in (
            (summary.failed, "failed"),
            (summary.expired, "outcome unknown"),
            (summary.needs_review, "in review"),
            (summary.live, "still open"),
        )
        if count
    )
    lines = [
        f"{day}: {summary.sales} sales, {summary.sales_paid} paid, {summary.sales_not_paid} "
        f"not paid ({summary.sale_failure_rate:.0%}), {shillings(summary.amount_paid)} received"
        + (
            f", {shillings(summary.amount_reversed)} of it reversed ({summary.reversed})."
            if summary.reversed
            else "."
        ),
        f"Attempts: {summary.attempts} asked, {summary.paid} paid, {average}; "
        f"{summary.failure_rate:.0%} of {summary.finished} finished failed"
        + (f" ({kinds})." if kinds else "."),
    ]
    if summary.failures_by_code:
        codes = ", ".join(
            f"{c.code} {c.meaning.rstrip('.').lower()[:28].rstrip()} {c.share:.0%}"
            for c in summary.failures_by_code[:3]
        )
        lines.append(f"By code: {codes}.")
    return "\n".join(lines)


class HistoryScreen(PagedTableScreen[tuple[DailySummary, RowPage], ListCursor]):
    CSS_PATH = "history.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "day(-1)", "Day back", id="history.back", group=DAY_KEYS),
        Binding("right_square_bracket", "day(1)", "Day on", id="history.on", group=DAY_KEYS),
        Binding("t", "today", "Today", id="history.today"),
        *page_bindings("history", older="Older payments that day"),
    ]
    COLUMNS = COLUMNS
    DOING = "reading the sales history"
    WAITS = PagedTableScreen.WAITS | {"day"}

    def __init__(self, day: date | None = None) -> None:
        super().__init__()
        self.day = day

    def compose_body(self) -> ComposeResult:
        with Vertical(id="history-body"):
            yield Label("Sales history", id="history-title")
            yield Static("", id="history-summary")
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        # Textual runs this before the paged base's on_mount, which reads the first page.
        if self.day is None:
            self.day = self.manager.today()

    def day_filter(self) -> HistoryFilter:
        assert self.day is not None
        start = datetime.combine(self.day, time.min, tzinfo=KENYA_TZ)
        return HistoryFilter(since=start, until=start + timedelta(days=1))

    async def fetch(self, cursor: ListCursor | None) -> tuple[DailySummary, RowPage]:
        """The day's summary and one page of its payments, read together."""
        day, filters = self.day, self.day_filter()
        summary = await self.manager.daily_summary(day)
        return summary, await self.manager.history(filters, cursor)

    def next_cursor(self, page: tuple[DailySummary, RowPage]) -> ListCursor | None:
        return page[1].next_cursor

    def fill(self, page: tuple[DailySummary, RowPage]) -> None:
        summary, rows = page
        self.query_one("#history-summary", Static).update(summary_text(summary))
        for row in rows.rows:
            self.table.add_row(
                short_time(row),
                row.what,
                row.sale_ref or "",
                amount_cell(row.amount),
                row.phone_masked or "",
                receipt_or_code(row),
                key=row.key,
            )

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "day":
            moving_on = parameters == (1,)
            past_today = moving_on and self.day is not None and self.day >= self.manager.today()
            return None if past_today else True
        return super().ready(action, parameters)

    def action_day(self, step: int) -> None:
        if self.day is None or self.busy:
            return
        if step > 0 and self.day >= self.manager.today():
            return
        self.day = self.day + timedelta(days=step)
        self.restart()

    def action_today(self) -> None:
        if not self.busy:
            self.day = self.manager.today()
            self.restart()
