"""Before a retry after EXPIRED: the cashier confirms the customer got no M-Pesa confirmation
SMS. If they did, the money moved and a retry would charge them twice (the service audits the
answer)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from smartduka_tui.payments.api import PaymentView
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.widgets.footer import TillFooter


class ConfirmNoSmsScreen(ModalScreen[bool]):
    CSS_PATH = "confirm_no_sms.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "No SMS: try again", id="confirm_no_sms.yes"),
        Binding("n,escape", "answer(False)", "Got an SMS: stop", id="confirm_no_sms.no"),
    ]

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(id="confirm-dialog"):
            yield Label("Did the customer get an M-Pesa SMS?", id="confirm-title")
            yield Static(
                f"The prompt for sale {view.sale_ref} ({shillings(view.amount)}, "
                f"{view.phone_masked}) ended without an answer from M-Pesa.\n\n"
                "Ask the customer to check their messages. If an M-Pesa confirmation SMS for "
                "this payment arrived, the money has moved: do NOT try again, call a manager.\n\n"
                "Press y only if the customer received no M-Pesa SMS.",
                id="confirm-text",
            )
        yield TillFooter()

    def action_answer(self, no_sms: bool) -> None:
        self.dismiss(no_sms)
