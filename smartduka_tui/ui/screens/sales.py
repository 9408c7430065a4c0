"""Today's sales at this till and any payment still waiting: the cashier reopens one here
after "stop waiting", after it expired, or after the till restarted.

Enter opens the highlighted payment's own screen (waiting, paid, or what to do next), exactly as
the app would show it now; sales paid in cash alone are listed too. X voids and R refunds the
highlighted paid cash sale (manager PIN and a note); Escape goes back to the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from functools import partial
from typing import ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from smartduka_tui.model import AttemptState, SaleState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.api import PaymentView
from smartduka_tui.payments.sales import SaleView
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
SALE_WORDS: dict[SaleState, str] = {
    SaleState.OPEN: "part paid",
    SaleState.PAID: "paid",
    SaleState.ABANDONED: "abandoned",
    SaleState.VOIDED: "voided",
    SaleState.REFUNDED: "refunded",
}


@dataclass(frozen=True, slots=True)
class SaleRow:
    """One line of the list: a payment attempt, or a sale no attempt paid (cash alone)."""

    when: datetime
    sale_ref: str
    amount: int
    phone: str
    status: str
    view: PaymentView | None
    sale: SaleView | None


def sale_status(sale: SaleView) -> str:
    words = SALE_WORDS[sale.state]
    if sale.state in (SaleState.OPEN, SaleState.ABANDONED) and sale.owed:
        words += f", {shillings(sale.owed)} owed"
    elif sale.state is SaleState.PAID and sale.cash and not sale.mpesa:
        words += " cash"
    elif sale.awaiting_reversal:
        words += ": reverse M-Pesa"  # the record's words, cut to the column
    return words


def row_status(view: PaymentView, sale: SaleView | None) -> str:
    """A payment's row: its own status, but a refunded split sale's words once it is undone
    (its M-Pesa part still to reverse, or reversed), not "paid"."""
    if sale is not None and sale.state is SaleState.REFUNDED and sale.mpesa_tenders:
        return sale_status(sale)
    return status_of(view)


def undone_notice(sale: SaleView) -> str:
    """After a void or refund: the cash to hand back and, for a split sale, the M-Pesa part
    that only its reversal returns, by receipt, so the manager is never left guessing."""
    state = "voided" if sale.state is SaleState.VOIDED else "refunded"
    words = f"Sale {sale.sale_ref} {state}: give the customer {shillings(sale.cash)} cash back."
    waiting = sale.awaiting_reversal
    if waiting:
        receipts = ", ".join(t.receipt or "receipt to follow" for t in waiting)
        amount = shillings(sum(t.amount for t in waiting))
        words += (
            f" The {amount} M-Pesa part ({receipts}) awaits its reversal: V in the manager's "
            "screens."
        )
    return words


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
        Binding(
            "x",
            "undo(0)",
            "Void",
            id="sales.void",
            tooltip="Void the highlighted paid cash sale (manager PIN and a note)",
        ),
        Binding(
            "r",
            "undo(1)",
            "Refund",
            id="sales.refund",
            tooltip="Refund the highlighted sale's cash (manager PIN and a note); M-Pesa goes "
            "back by reversal",
        ),
        Binding("escape", "back", "Back", id="sales.back", tooltip="Back to the checkout"),
    ]

    sales_table = getters.query_one("#sales", DataTable)

    def __init__(self) -> None:
        super().__init__()
        self.views: list[PaymentView] = []
        self.rows: list[SaleRow] = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="sales-body"):
            yield Label("Today's sales at this till", id="sales-title")
            yield DataTable(id="sales", cursor_type="row", zebra_stripes=True)
            yield Static("Loading…", id="sales-count")

    def on_mount(self) -> None:
        table = self.sales_table
        table.add_column("Time", key="time", width=8)
        table.add_column("Sale", key="sale", width=9)
        table.add_column("Amount", key="amount", width=11)
        table.add_column("Phone", key="phone", width=12)
        table.add_column("Status", key="status", width=24)
        table.focus()
        self._load()

    def _load(self) -> None:
        self.call_service(
            self._read,
            self._show,
            "listing today's sales",
            name="sales",
            failed=partial(self._show, ([], [])),
            waits=False,
        )

    async def _read(self) -> tuple[list[PaymentView], list[SaleView]]:
        payments = self.till.services.payments
        midnight = datetime.combine(self.till.now.astimezone(KENYA_TZ).date(), time(), KENYA_TZ)
        return await payments.recent_payments(), await payments.sales.today(midnight)

    def _show(self, loaded: tuple[list[PaymentView], list[SaleView]]) -> None:
        payment_views, sales = loaded
        today = self.till.now.astimezone(KENYA_TZ).date()
        self.views = [
            view
            for view in payment_views
            if view.is_live or view.created_at.astimezone(KENYA_TZ).date() == today
        ]
        by_ref = {sale.sale_ref: sale for sale in sales}
        phones = masked_apart([view.phone for view in self.views])
        rows = [
            SaleRow(
                view.created_at,
                view.sale_ref,
                view.amount,
                phone,
                row_status(view, by_ref.get(view.sale_ref)),
                view,
                by_ref.get(view.sale_ref),
            )
            for view, phone in zip(self.views, phones, strict=True)
        ]
        with_attempts = {view.sale_ref for view in self.views}
        rows += [
            SaleRow(
                sale.opened_at, sale.sale_ref, sale.total, "cash", sale_status(sale), None, sale
            )
            for sale in sales
            if sale.sale_ref not in with_attempts
        ]
        # Payments still waiting first, then the rest newest first.
        live = [row for row in rows if row.view is not None and row.view.is_live]
        ended = sorted(
            (row for row in rows if row not in live), key=lambda row: row.when, reverse=True
        )
        self.rows = [*live, *ended]
        table = self.sales_table
        table.clear()
        for index, row in enumerate(self.rows):
            table.add_row(
                local_time(row.when),
                row.sale_ref,
                shillings(row.amount),
                row.phone,
                row.status,
                key=row.view.attempt_id if row.view is not None else f"sale-{index}",
            )
        waiting = len(live)
        cash_only = len(self.rows) - len(self.views)
        cash = f", {cash_only} paid in cash" if cash_only else ""
        self.query_one("#sales-count", Static).update(
            f"{len(self.views)} payment(s){cash}, {waiting} still waiting. Enter opens one."
            if self.rows
            else NO_SALES
        )
        self.update_bindings()

    def _highlighted(self) -> SaleRow | None:
        row = self.sales_table.cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            row = self._highlighted() if self.is_mounted else None
            return True if row is not None and row.view is not None else None
        if action == "undo":
            return True if self.rows else None
        return True

    def action_undo(self, refund: int) -> None:
        row = self._highlighted()
        if not self.is_current or row is None:
            return
        from smartduka_tui.ui.screens.undo_sale import UndoSaleScreen

        total = row.sale.total if row.sale is not None else row.amount

        def done(sale: SaleView | None) -> None:
            if sale is None:
                return
            self.show_notice(undone_notice(sale), "warning")
            self._load()

        self.app.push_screen(
            UndoSaleScreen(row.sale_ref, total, refund=bool(refund), sale=row.sale), done
        )

    @on(DataTable.RowHighlighted)
    def _moved(self) -> None:
        self.update_bindings()

    def action_open(self) -> None:
        after_pending_keys(self, self._open_now)

    def _open_now(self) -> None:
        row = self._highlighted()
        if self.is_current and row is not None and row.view is not None:
            view = row.view
            latest = newest(view, self.till.latest.get(view.attempt_id))
            self.app.push_screen(self.till.screen_for(latest))

    def action_back(self) -> None:
        if self.is_current:
            self.app.pop_screen()
