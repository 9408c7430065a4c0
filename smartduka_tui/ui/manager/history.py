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
from smartduka_tui.ui.manager.base import PAGE_KEYS, ManagerScreen
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


class HistoryScreen(ManagerScreen):
    CSS_PATH = "history.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "day(-1)", "Day back", id="history.back", group=DAY_KEYS),
        Binding("right_square_bracket", "day(1)", "Day on", id="history.on", group=DAY_KEYS),
        Binding("t", "today", "Today", id="history.today"),
        Binding(
            "n",
            "next_page",
            "Next",
            id="history.next",
            tooltip="Older payments that day",
            group=PAGE_KEYS,
        ),
        Binding("p", "previous_page", "Prev", id="history.previous", group=PAGE_KEYS),
    ]

    def __init__(self, day: date | None = None) -> None:
        super().__init__()
        self.day = day
        self.cursors: list[ListCursor | None] = [None]
        self.page: RowPage | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="history-body"):
            yield Label("Sales history", id="history-title")
            yield Static("", id="history-summary")
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        if self.day is None:
            self.day = self.manager.today()
        self.load()

    def day_filter(self) -> HistoryFilter:
        assert self.day is not None
        start = datetime.combine(self.day, time.min, tzinfo=KENYA_TZ)
        return HistoryFilter(since=start, until=start + timedelta(days=1))

    def load(self) -> None:
        day, filters, cursor = self.day, self.day_filter(), self.cursors[-1]

        async def both() -> tuple[DailySummary, RowPage]:
            summary = await self.manager.daily_summary(day)
            return summary, await self.manager.history(filters, cursor)

        self.call_service(both, self._show, "reading the sales history")

    def _show(self, answer: tuple[DailySummary, RowPage]) -> None:
        summary, page = answer
        self.page = page
        self.query_one("#history-summary", Static).update(summary_text(summary))
        table = self.query_one(DataTable)
        table.clear()
        for row in page.rows:
            table.add_row(
                short_time(row),
                row.what,
                row.sale_ref or "",
                amount_cell(row.amount),
                row.phone_masked or "",
                receipt_or_code(row),
                key=row.key,
            )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_page":
            return None if self.busy or not (self.page and self.page.next_cursor) else True
        if action == "previous_page":
            return None if self.busy or len(self.cursors) < 2 else True
        if action == "day":
            moving_on = parameters == (1,)
            past_today = moving_on and self.day is not None and self.day >= self.manager.today()
            return None if self.busy or past_today else True
        return True

    def action_day(self, step: int) -> None:
        if self.day is None or self.busy:
            return
        if step > 0 and self.day >= self.manager.today():
            return
        self.day = self.day + timedelta(days=step)
        self.cursors = [None]
        self.load()

    def action_today(self) -> None:
        if not self.busy:
            self.day = self.manager.today()
            self.cursors = [None]
            self.load()

    def action_next_page(self) -> None:
        if self.page is not None and self.page.next_cursor is not None and not self.busy:
            self.cursors.append(self.page.next_cursor)
            self.load()

    def action_previous_page(self) -> None:
        if len(self.cursors) > 1 and not self.busy:
            self.cursors.pop()
            self.load()
