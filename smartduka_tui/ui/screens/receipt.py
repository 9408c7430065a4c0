"""A sale's receipt on screen: the same text the printer gets (smartduka_tui.receipts).

Opened from the success screen (R: the receipt as printed) or the checkout's "reprint last
receipt", which prints a copy marked COPY (audited) and shows it; P prints another copy.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from smartduka_tui.receipts import ReceiptError, render_text
from smartduka_tui.ui.printer import PrinterWatch, PrintOutcome
from smartduka_tui.ui.screens.base import ServiceCalls
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.printer_status import why_not_printing

if TYPE_CHECKING:
    from smartduka_tui.receipts import Receipt

PRINTING = "Printing…"


def outcome_words(outcome: PrintOutcome) -> str:
    """The line a screen shows once a print finished."""
    if outcome.error is not None:
        return f"Receipt not printed: {outcome.error}."
    return "Copy printed (marked COPY)." if outcome.copy else "Receipt printed."


class ReceiptScreen(ServiceCalls, ModalScreen[None]):
    CSS_PATH = "receipt.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "dismiss", "Close", id="receipt.close"),
        Binding(
            "p",
            "print_copy",
            "Print copy",
            id="receipt.print_copy",
            tooltip="Print this receipt again, marked COPY (audited)",
        ),
    ]

    def __init__(self, printer: PrinterWatch, sale_ref: str, *, reprint: bool) -> None:
        super().__init__()
        self.printer = printer
        self.sale_ref = sale_ref
        self.reprint = reprint
        """Opened to reprint: prints a copy at once, shows the copy, and P prints another."""
        self.printing = False

    def compose(self) -> ComposeResult:
        with Vertical(id="receipt-dialog"):
            with VerticalScroll(id="receipt-paper"):
                yield Static("", id="receipt-text")
            yield Static("", id="receipt-status")
        yield TillFooter()

    def on_mount(self) -> None:
        self._load()
        if self.reprint:
            self.action_print_copy()

    def _load(self) -> None:
        self.call_service(
            partial(self.printer.desk.receipt, self.sale_ref),
            self._show,
            "reading the receipt",
            name="receipt",
            refusals=(ReceiptError,),
            refused=self._no_receipt,
            waits=False,
        )

    def _no_receipt(self, error: ReceiptError) -> None:
        self._say(f"No receipt: {error}.")

    def _show(self, receipt: Receipt) -> None:
        if self.reprint:
            receipt = receipt.as_copy()
        self.query_one("#receipt-text", Static).update(render_text(receipt).rstrip("\n"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "print_copy":
            if not self.reprint:
                return False
            return None if self.printing else True
        return True

    def action_print_copy(self) -> None:
        why = why_not_printing(self.printer.status)
        if why is not None:
            self._say(f"Not printed: {why}.")
            return
        self.printing = True
        self.refresh_bindings()
        self._say(PRINTING)
        self.printer.print(self.sale_ref, copy=True, via="checkout", done=self._printed)

    def _printed(self, outcome: PrintOutcome) -> None:
        self.printing = False
        if self.is_mounted:
            self.refresh_bindings()
            self._say(outcome_words(outcome))

    def _say(self, text: str) -> None:
        # Not to a closing screen: a print can end after the cashier closed it (see the
        # success screen's `_say_printer`).
        for line in self.query("#receipt-status").results(Static):
            line.update(text)
