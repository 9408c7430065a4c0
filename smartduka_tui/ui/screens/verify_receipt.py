"""A receipt code the customer shows (e.g. from their M-Pesa SMS): the cashier types it and the
till checks it with M-Pesa (Transaction Status, `ReceiptChecks.verify_receipt`).

Opened from the failure screen (for that sale: accepted, the sale is paid) or the checkout
(a check only: is it a real payment to this till that no sale holds yet?). The screen holds no
rule of its own: it shows the service's verdict in its words. When the sale is paid the
failure screen below replaces it with the receipt screen, as for any payment that arrives
while a dialog is open; closed by hand it hands back the paid `PaymentView` too.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from smartduka_tui.payments.api import PaymentView
from smartduka_tui.payments.statement import ReceiptChecks, ReceiptVerdict
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.inputs import after_pending_keys, till_input
from smartduka_tui.words import verdict_words


class VerifyReceiptScreen(ModalScreen[PaymentView | None]):
    CSS_PATH = "verify_receipt.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "check",
            "Check with M-Pesa",
            id="verify_receipt.check",
            priority=True,
            tooltip="Ask M-Pesa about the code typed",
        ),
        Binding("escape", "close", "Back", id="verify_receipt.back"),
    ]

    class Checked(Message, bubble=False):
        def __init__(self, verdict: ReceiptVerdict) -> None:
            super().__init__()
            self.verdict = verdict

    def __init__(self, checks: ReceiptChecks, sale: PaymentView | None = None) -> None:
        super().__init__()
        self.checks = checks
        self.sale = sale
        self.busy = False
        self.verdict: ReceiptVerdict | None = None

    def compose(self) -> ComposeResult:
        sale = self.sale
        with Vertical(id="verify-dialog", classes="dialog"):
            yield Label("Receipt code from the customer", id="verify-title")
            yield Static(
                (
                    f"Sale {sale.sale_ref} · {shillings(sale.amount)}: the code pays it only if "
                    "M-Pesa says that amount reached this till, at the time of the sale, and no "
                    "other sale holds it."
                )
                if sale is not None
                else "A check only: M-Pesa says whether the code is a payment to this till, "
                "and the till whether a sale already holds it.",
                id="verify-text",
            )
            yield till_input(
                placeholder="e.g. TKQ9ZZ1A2B",
                id="receipt-code",
                max_length=16,
            )
            yield Static("", id="verify-result")
        yield TillFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "check" and self.busy:
            return None
        return True

    def action_check(self) -> None:
        after_pending_keys(self, self._check_typed)

    def _check_typed(self) -> None:
        if self.busy:
            return
        code = self.query_one("#receipt-code", Input).value
        self.busy = True
        self._show("Checking with M-Pesa… (the answer comes through the relay)", "-waiting")
        self.refresh_bindings()
        self._ask(code)

    def action_close(self) -> None:
        if self.busy:
            return
        paid = self.verdict is not None and self.verdict.payment is not None
        self.dismiss(self.verdict.payment if paid and self.verdict else None)

    def _show(self, text: str, kind: str) -> None:
        result = self.query_one("#verify-result", Static)
        result.update(text)
        for name in ("-waiting", "-accepted", "-refused"):
            result.set_class(name == kind, name)

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        self.busy = False
        self.verdict = message.verdict
        verdict = message.verdict
        self._show(verdict_words(verdict), "-accepted" if verdict.accepted else "-refused")
        self.refresh_bindings()
        # A paid sale needs nothing here: the sale screen below hears of the payment and
        # replaces this dialog with the receipt screen (SaleScreen.move_to).

    @work(group="verify", exclusive=True, exit_on_error=False)
    async def _ask(self, code: str) -> None:
        sale_ref = None if self.sale is None else self.sale.sale_ref
        try:
            verdict = await self.checks.verify_receipt(code, sale_ref)
        except Exception as error:
            self.app.log.error(f"receipt check failed: {type(error).__name__}")
            verdict = ReceiptVerdict(
                False, "The receipt could not be checked: nothing changed. Try again."
            )
        self.post_message(self.Checked(verdict))
