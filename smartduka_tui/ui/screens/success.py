"""Success: the M-Pesa receipt number large, the amount, the masked phone and the time, and a
bell. When only M-Pesa's query confirmed the payment the receipt comes later with the callback:
the screen says so and fills it in when it arrives. Late and duplicate payments are said plainly.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.widgets import Label, Static

from smartduka_tui.payments.api import PaymentView
from smartduka_tui.ui.events import PaymentChanged
from smartduka_tui.ui.format import local_time, shillings
from smartduka_tui.ui.freshness import is_stale
from smartduka_tui.ui.screens.base import SaleScreen
from smartduka_tui.ui.widgets.big_text import BigText

RECEIPT_TO_FOLLOW = "Paid; receipt pending (M-Pesa's receipt number has not arrived yet)"
LATE = (
    "Paid late: M-Pesa confirmed this after the attempt had ended. If the customer also paid "
    "another way, refund one of the payments."
)
DUPLICATE = (
    "This sale was already paid: the customer has paid twice. Do not hand over goods twice; "
    "a manager must refund one payment."
)


class SuccessScreen(SaleScreen):
    CSS_PATH = "success.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter,n",
            "next_sale",
            "Next sale",
            priority=True,
            id="success.next_sale",
            tooltip="Start the next sale",
        ),
    ]

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view
        self.paid_again: PaymentView | None = None
        """Another attempt of this sale that was paid too (a duplicate payment)."""

    def watches(self, view: PaymentView) -> bool:
        # The whole sale: a late payment of an earlier attempt means the customer paid twice.
        return view.sale_ref == self.view.sale_ref

    def compose_body(self) -> ComposeResult:
        with Vertical(id="success-body"):
            yield Label("✔ PAID", id="paid-title")
            with Center():
                yield BigText("", id="receipt-big")
            yield Static("", id="receipt-line")
            yield Static("", id="details")
            yield Static("", id="warning")

    def on_mount(self) -> None:
        self.view = self.catch_up(self.view)
        self._render_view()
        self.app.bell()

    def _render_view(self) -> None:
        view = self.view
        title = self.query_one("#paid-title", Label)
        paid_twice = view.duplicate_payment or self.paid_again is not None
        if paid_twice:
            title.update("⚠ PAID TWICE: REFUND NEEDED")
        elif view.late:
            title.update("✔ PAID (LATE)")
        else:
            title.update("✔ PAID")
        title.set_class(paid_twice, "-duplicate")
        big = self.query_one("#receipt-big", BigText)
        line = self.query_one("#receipt-line", Static)
        if view.receipt:
            big.update(view.receipt)
            big.display = True
            line.update(f"M-Pesa receipt {view.receipt}")
        else:
            big.display = False
            line.update(RECEIPT_TO_FOLLOW)
        line.set_class(not view.receipt, "-pending")
        when = view.finished_at or view.created_at
        self.query_one("#details", Static).update(
            f"{shillings(view.amount)} from {view.phone_masked} at {local_time(when)}"
            f" · sale {view.sale_ref}"
        )
        flagged = ((view.late, LATE), (paid_twice, DUPLICATE))
        warnings = [text for flag, text in flagged if flag]
        warning = self.query_one("#warning", Static)
        warning.update("\n".join(warnings))
        warning.set_class(bool(warnings), "-shown")

    @on(PaymentChanged)
    def _changed(self, message: PaymentChanged) -> None:
        view = message.view
        if not self.watches(view):
            return
        if view.attempt_id != self.view.attempt_id:
            if view.is_paid:
                self.paid_again = view
                self._render_view()
            return
        if not is_stale(view, self.view):
            self.view = view
            self._render_view()

    def action_next_sale(self) -> None:
        self.till.finish_sale()
