"""Before a retry whose previous outcome the till does not know (EXPIRED, or a push whose
response was lost): the cashier confirms the customer got no M-Pesa confirmation SMS. If they
did, the money moved and a retry would charge them twice: "got an SMS" sends the attempt to a
manager (the service records both answers)."""

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
        Binding("n", "answer(False)", "Got an SMS: to manager", id="confirm_no_sms.no"),
        Binding("escape", "dismiss(None)", "Back", id="confirm_no_sms.back"),
    ]

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label("Did the customer get an M-Pesa SMS?", id="confirm-title")
            yield Static(
                f"The prompt for sale {view.sale_ref} ({shillings(view.amount)}, "
                f"{view.phone_masked}) ended and M-Pesa never told this till whether it was "
                "paid: the outcome is unknown.\n\n"
                "Ask the customer to check their messages. If an M-Pesa confirmation SMS for "
                "this payment arrived, the money has moved: press n (it goes to a manager), do "
                "NOT try again.\n\n"
                "Press y only if the customer received no M-Pesa SMS.",
                id="confirm-text",
            )
        yield TillFooter()

    def action_answer(self, no_sms: bool) -> None:
        self.dismiss(no_sms)
