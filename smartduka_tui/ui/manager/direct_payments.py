"""Direct payments no sale holds: customers who paid the till or paybill from their phone and
whose payment no cashier attached (amount, Kenya time, masked phone, TransID, age), newest
first, with the last pull of the M-Pesa statement per shortcode above them.

A payment attached at the counter leaves the list on the next refresh (every ten seconds of
the till's clock, R, or coming back to this screen). P pulls the statement now, showing its
progress (pages and rows) as it reads. V asks M-Pesa to give the selected payment back (a
note says why); it leaves the list only when M-Pesa's result says it was reversed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from smartduka_tui.manager import ManagerError
from smartduka_tui.manager.direct import DirectPaymentRow, DirectPaymentsView
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.pull import PullProgress, PullReport
from smartduka_tui.payments.reversal import ReversalTarget, ReversalVerdict
from smartduka_tui.ui.manager.base import ManagerScreen
from smartduka_tui.ui.manager.problems import amount_cell

REFRESH_EVERY = timedelta(seconds=10)
COLUMNS = (
    ("Paid", "paid", 12),
    ("KES", "amount", 8),
    ("Phone", "phone", 15),
    ("TransID", "trans_id", 12),
    ("Name", "name", 10),
    ("Age", "age", 8),
)


def table_cells(row: DirectPaymentRow) -> tuple[object, ...]:
    return (
        row.paid_at.astimezone(KENYA_TZ).strftime("%d %b %H:%M"),
        amount_cell(row.amount),
        row.payer,
        row.trans_id,
        row.first_name or "-",
        row.age,
    )


def report_words(report: PullReport) -> str:
    words = (
        f"Pulled {report.rows:,} rows in {report.pages} pages: {report.new_rows:,} new, "
        f"{report.receipts_filled:,} receipts filled, {report.money_without_sale:,} money "
        f"without a sale, {report.paid_twice:,} paid twice, {report.known_elsewhere:,} known "
        "at another till."
    )
    if report.resolved_elsewhere:
        words += (
            f" {report.resolved_elsewhere:,} earlier problems resolved: another till holds them."
        )
    if report.shop_check is not None:
        words += f" Note: {report.shop_check}."
    return words


class DirectPaymentsScreen(ManagerScreen):
    CSS_PATH = "direct_payments.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", id="direct.refresh", tooltip="Read the list again"),
        Binding(
            "p",
            "pull",
            "Pull now",
            id="direct.pull",
            tooltip="Pull the M-Pesa statement (last 48 hours) and reconcile it now",
        ),
        Binding(
            "v",
            "reverse",
            "Reverse",
            id="direct.reverse",
            tooltip="Give the customer the selected payment back through M-Pesa (a note says why)",
        ),
    ]
    WAITS = frozenset({"refresh", "pull", "reverse"})

    def __init__(self) -> None:
        super().__init__()
        self.view: DirectPaymentsView | None = None
        self._loaded_at: datetime | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="direct-body"):
            yield Label("Direct payments not attached to a sale", id="direct-title")
            yield Static("", id="direct-pull")
            yield DataTable(id="direct-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="direct-count")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        # The first read comes with the screen's first resume (Textual sends one on push).
        self.watch(self.app, "now", self._refresh_when_due, init=False)

    def load(self) -> None:
        self._loaded_at = self.till.services.clock.now()
        self.call_service(self.manager.direct_payments, self._show, "listing direct payments")

    def _show(self, view: DirectPaymentsView) -> None:
        self.view = view
        self.query_one("#direct-pull", Static).update("\n".join(view.pull_lines))
        table = self.query_one(DataTable)
        table.clear()
        for row in view.payments:
            table.add_row(*table_cells(row), key=row.trans_id)
        count = len(view.payments)
        total = sum(row.amount for row in view.payments)
        self.query_one("#direct-count", Static).update(
            f"{count} not attached, KES {total:,} in all: attach at the counter (F6) or "
            "refund them."
            if count
            else "Every direct payment is attached to a sale."
        )

    def _refresh_when_due(self, now: datetime) -> None:
        if self.busy or self._loaded_at is None or now - self._loaded_at < REFRESH_EVERY:
            return
        if self.is_attached and self.app.screen is self:
            self.load()

    def on_screen_resume(self) -> None:
        if self.manager.session.signed_in:
            self.load()

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "reverse":
            if self.manager.reversals is None:
                return False  # Not offered at all without the relay to bring M-Pesa's result.
            return None if self.selected is None else True
        return True

    @property
    def selected(self) -> str | None:
        """The TransID of the payment under the cursor, if any."""
        if self.view is None or not self.view.payments:
            return None
        table = self.query_one(DataTable)
        if not 0 <= table.cursor_row < len(self.view.payments):
            return None
        return self.view.payments[table.cursor_row].trans_id

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()

    def action_reverse(self) -> None:
        trans_id = self.selected
        if trans_id is None or self.busy:
            return
        self.call_service(
            lambda: self.manager.direct_reversal_target(trans_id),
            self._ask_note,
            "opening a reversal",
        )

    def _ask_note(self, target: ReversalTarget) -> None:
        # Loaded when first asked for: most manager sessions never reverse a payment.
        from smartduka_tui.ui.manager.reversal import ReversalScreen

        def reversed_or_not(verdict: ReversalVerdict | None) -> None:
            # The list is read again as this screen resumes (a reversed payment leaves it).
            if verdict is not None:
                self.show_notice(verdict.message, "information" if verdict.reversed else "error")

        screen = ReversalScreen(
            target, lambda note: self.manager.reverse_direct(target.receipt, note)
        )
        self.app.push_screen(screen, reversed_or_not)

    def action_refresh(self) -> None:
        if not self.busy:
            self.load()

    def action_pull(self) -> None:
        if self.busy:
            return
        self.call_service(
            lambda: self.manager.pull_statement(progress=self._progress),
            self._pulled,
            "pulling the M-Pesa statement",
            refused=self._pull_refused,
            working="Pulling the M-Pesa statement…",
        )

    def _progress(self, progress: PullProgress) -> None:
        self.show_notice(
            f"Pulling the M-Pesa statement: page {progress.pages}, {progress.rows:,} rows…"
        )

    def _pulled(self, report: PullReport) -> None:
        self.show_notice(report_words(report), "information")
        self.load()

    def _pull_refused(self, error: ManagerError) -> None:
        self.show_notice(error.message, "error")
        self.load()
