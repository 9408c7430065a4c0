"""Success: the M-Pesa receipt number large, the amount, the masked phone and the time, and a
bell. When only M-Pesa's query confirmed the payment the receipt comes later with the callback:
the screen says so and fills it in when it arrives. Late and duplicate payments are said plainly.
With a receipt printer the receipt prints (at once, or on P) and its line says how that went.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.widgets import Label, Static

from smartduka_tui.payments.api import PaymentView
from smartduka_tui.ui.events import PaymentChanged
from smartduka_tui.ui.format import local_time, shillings
from smartduka_tui.ui.freshness import is_stale
from smartduka_tui.ui.printer import PrintOutcome
from smartduka_tui.ui.screens.base import SaleScreen
from smartduka_tui.ui.screens.receipt import ReceiptScreen, outcome_words
from smartduka_tui.ui.widgets.big_text import BigText
from smartduka_tui.ui.widgets.printer_status import why_not_printing

if TYPE_CHECKING:
    from smartduka_tui.payments.sales import SaleView

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
        Binding(
            "p",
            "print_receipt",
            "Print",
            id="success.print_receipt",
            tooltip="Print the receipt (once it has printed, a copy marked COPY, audited)",
        ),
        Binding("r", "show_receipt", "Receipt", id="success.show_receipt", tooltip="Show it"),
    ]
    WAITS = frozenset({"print_receipt"})

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view
        self.paid_again: PaymentView | None = None
        """Another attempt of this sale that was paid too (a duplicate payment)."""
        self._print_when_receipt_arrives = False
        self.owed = 0
        """What the sale still owes after this payment (a split: the rest is taken next)."""

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
            if self.till.printer is not None:
                yield Static("", id="printer-line")

    def on_mount(self) -> None:
        self.view = self.catch_up(self.view)
        self._render_view()
        self.app.bell()
        # The receipt is the sale's: it prints once the sale is known to be paid in full.
        self._check_sale()

    def _check_sale(self) -> None:
        def checked(sale: SaleView | None) -> None:
            self._sale_checked(sale.owed if sale is not None and sale.part_paid else 0)

        self.call_service(
            partial(self.till.services.payments.sales.get, self.view.sale_ref),
            checked,
            "reading the sale",
            name="sale",
            failed=partial(self._sale_checked, 0),
            waits=False,
        )

    def _sale_checked(self, owed: int) -> None:
        self.owed = owed
        self._render_view()
        if self.owed:
            if self.till.printer is not None:
                self._say_printer("The receipt prints once the sale is paid in full.")
        else:
            self._print_on_arrival()

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
        part = (
            f"Part paid: {shillings(self.owed)} still owed on sale {view.sale_ref}. Enter goes "
            "back to the sale to take the rest (F10 cash, or another M-Pesa payment)."
        )
        flagged = ((view.late, LATE), (paid_twice, DUPLICATE), (self.owed > 0, part))
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
            if view.receipt and self._print_when_receipt_arrives:
                self._print_when_receipt_arrives = False
                self.action_print_receipt()

    def action_next_sale(self) -> None:
        # A split's first part: back to the same sale for the rest.
        self.till.finish_sale(new_sale=self.owed == 0)

    # -- the receipt ---------------------------------------------------------------------------

    def _print_on_arrival(self) -> None:
        """Print at once when the settings say so; a receipt confirmed by query alone waits for
        M-Pesa's receipt number, and a second payment of the sale prints nothing by itself."""
        printer = self.till.printer
        if printer is None:
            return
        why = why_not_printing(printer.status)
        first_time = self.view.sale_ref not in printer.offered
        printer.offered.add(self.view.sale_ref)
        if why is not None:
            self._say_printer(f"Receipt not printed: {why}. R shows it.")
        elif not printer.desk.printer.auto_print or self.view.duplicate_payment or not first_time:
            self._say_printer("P prints the receipt, R shows it.")
        elif not self.view.receipt:
            self._print_when_receipt_arrives = True
            self._say_printer("The receipt prints when M-Pesa's receipt number arrives.")
        else:
            self.action_print_receipt()

    def action_print_receipt(self) -> None:
        printer = self.till.printer
        if printer is None or self.busy:
            return
        why = why_not_printing(printer.status)
        if why is not None:
            self._say_printer(f"Receipt not printed: {why}.")
            return
        self.busy = True
        self.refresh_bindings()
        self._say_printer("Printing the receipt…")
        copy = self.view.sale_ref in printer.printed
        printer.print(self.view.sale_ref, copy=copy, via="success", done=self._printed)

    def _printed(self, outcome: PrintOutcome) -> None:
        self.busy = False
        if self.is_mounted:
            self.refresh_bindings()
            again = " P prints it again." if outcome.error else ""
            self._say_printer(outcome_words(outcome) + again)

    def _say_printer(self, text: str) -> None:
        # A print can end after the cashier has moved on: the screen is closing, its line
        # already gone, and there is no one to tell. A failed query there failed the print's
        # worker, whose logged traceback kept the closed screen and loaded rich's traceback
        # and pygments (2 MB) on the first sale.
        for line in self.query("#printer-line").results(Static):
            line.update(text)

    def action_show_receipt(self) -> None:
        printer = self.till.printer
        if printer is not None:
            self.app.push_screen(ReceiptScreen(printer, self.view.sale_ref, reprint=False))

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("print_receipt", "show_receipt"):
            return self.till.printer is not None
        return True
