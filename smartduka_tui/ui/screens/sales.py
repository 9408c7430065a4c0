"""Today's sales at this till and any payment still waiting: the cashier reopens one here
after "stop waiting", after it expired, or after the till restarted.

Enter opens the highlighted sale's own screen (waiting, paid, or what to do next), exactly as
the app would show it now; Escape goes back to the checkout.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, Static

from smartduka_tui.model import AttemptState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.api import PaymentView
from smartduka_tui.ui.format import local_time, masked_apart, shillings
from smartduka_tui.ui.freshness import newest
from smartduka_tui.ui.screens.base import TillScreen
from smartduka_tui.ui.widgets.inputs import after_pending_keys

STATUS_WORDS: dict[AttemptState, str] = {
    AttemptState.CREATED: "waiting for M-Pesa",
    AttemptState.PENDING: "waiting for M-Pesa",
    AttemptState.UNKNOWN: "waiting for M-Pesa",
    AttemptState.COMPLETED: "paid",
    AttemptState.FAILED: "not paid",
    AttemptState.EXPIRED: "expired: outcome unknown",
    AttemptState.NEEDS_REVIEW: "needs a manager",
}
NO_SALES = "No sales at this till today, and no payment waiting."


def status_of(view: PaymentView) -> str:
    words = STATUS_WORDS[view.state]
    if view.is_paid and view.receipt:
        words += f" {view.receipt}"
    if view.late:
        words += " (late)"
    return words


class SalesScreen(TillScreen):
    """The day's sales, payments still waiting first."""

    CSS_PATH = "sales.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "open",
            "Open",
            priority=True,
            id="sales.open",
            tooltip="Show this sale's payment as it is now",
        ),
        Binding("escape", "back", "Back", id="sales.back", tooltip="Back to the checkout"),
    ]

    class Loaded(Message, bubble=False):
        def __init__(self, views: list[PaymentView]) -> None:
            super().__init__()
            self.views = views

    def __init__(self) -> None:
        super().__init__()
        self.views: list[PaymentView] = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="sales-body"):
            yield Label("Today's sales at this till", id="sales-title")
            yield DataTable(id="sales", cursor_type="row", zebra_stripes=True)
            yield Static("Loading…", id="sales-count")

    def on_mount(self) -> None:
        table = self.query_one("#sales", DataTable)
        table.add_column("Time", key="time", width=8)
        table.add_column("Sale", key="sale", width=9)
        table.add_column("Amount", key="amount", width=11)
        table.add_column("Phone", key="phone", width=12)
        table.add_column("Status", key="status", width=24)
        table.focus()
        self._load()

    @work(group="sales", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        try:
            views = await self.till.call_service(self.till.services.payments.recent_payments())
        except Exception as error:
            self.till.report_unexpected(error, "listing today's sales")
            views = []
        self.post_message(self.Loaded(views))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        today = self.till.now.astimezone(KENYA_TZ).date()
        self.views = [
            view
            for view in message.views
            if view.is_live or view.created_at.astimezone(KENYA_TZ).date() == today
        ]
        table = self.query_one("#sales", DataTable)
        table.clear()
        phones = masked_apart([view.phone for view in self.views])
        for view, phone in zip(self.views, phones, strict=True):
            table.add_row(
                local_time(view.created_at),
                view.sale_ref,
                shillings(view.amount),
                phone,
                status_of(view),
                key=view.attempt_id,
            )
        waiting = sum(1 for view in self.views if view.is_live)
        self.query_one("#sales-count", Static).update(
            f"{len(self.views)} payment(s), {waiting} still waiting. Enter opens one."
            if self.views
            else NO_SALES
        )
        self.update_bindings()

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return True if self.views else None
        return True

    def action_open(self) -> None:
        after_pending_keys(self, self._open_now)

    def _open_now(self) -> None:
        row = self.query_one("#sales", DataTable).cursor_row
        if self.is_current and 0 <= row < len(self.views):
            view = self.views[row]
            latest = newest(view, self.till.latest.get(view.attempt_id))
            self.app.push_screen(self.till.screen_for(latest))

    def action_back(self) -> None:
        if self.is_current:
            self.app.pop_screen()
