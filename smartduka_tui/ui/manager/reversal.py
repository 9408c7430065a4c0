"""Reverse a payment (a customer who paid twice, or a wrong payment): the manager, signed in
with the PIN, writes why; M-Pesa's Reversal is asked and its result awaited. The payment shows
REVERSED only when M-Pesa's result says so; every other answer is shown in words.

One dialog for every entry point (a paid payment's detail, a direct payment, a "paid twice"
problem): it names the payment (`ReversalTarget`) and hands the note to the call it is given,
which goes through the manager service to the one reversal service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar

from textual import getters, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Footer, Input, Label, Static

from smartduka_tui.manager import ManagerError
from smartduka_tui.payments.reversal import ReversalTarget
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.manager.base import ManagerModal

if TYPE_CHECKING:
    pass


ResultT = TypeVar("ResultT")


class ReversalScreen(ManagerModal[ResultT], Generic[ResultT]):
    CSS_PATH = "reversal.tcss"

    reversal_status_text = getters.query_one("#reversal-status", Static)

    def __init__(self, target: ReversalTarget, ask: Callable[[str], Awaitable[ResultT]]) -> None:
        """`ask(note)` asks for the reversal; what it returns is this dialog's result."""
        super().__init__()
        self.target = target
        self._ask = ask

    def compose(self) -> ComposeResult:
        target = self.target
        blink = self.till.options.cursor_blink
        with Vertical(id="reversal-dialog", classes="dialog"):
            yield Label(
                f"Reverse {shillings(target.amount)} · receipt {target.receipt} · {target.what}",
                id="reversal-title",
            )
            yield Static(
                "M-Pesa gives the customer this money back. It shows REVERSED only when "
                "M-Pesa's result says so. Say why (2 to 100 characters; M-Pesa keeps it)."
            )
            note = Input(
                id="reversal-note",
                max_length=100,
                placeholder="e.g. paid twice: STK and till",
                compact=True,
            )
            note.set_reactive(Input.cursor_blink, blink)
            yield note
            yield Static("", id="reversal-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reversal-note", Input).focus()

    @property
    def status_text(self) -> str:
        return str(self.reversal_status_text.content)

    def _status(self, text: str, error: bool) -> None:
        status = self.reversal_status_text
        status.update(text)
        status.set_class(error, "-error")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        if not self.busy:
            self._status("Asking M-Pesa… (the answer comes through the relay)", error=False)
            self.call_service(
                partial(self._ask, event.value),
                self.dismiss,
                "reversing a payment",
                name="reverse",
                refused=self._refused,
                failed=partial(self._say_error, "The reversal could not be asked for. Try again."),
            )

    def _refused(self, error: ManagerError) -> None:
        self._say_error(error.message)

    def _say_error(self, text: str) -> None:
        self._status(text, error=True)

    def action_cancel(self) -> None:
        # Not while M-Pesa is being asked: its answer is shown here.
        if not self.busy:
            super().action_cancel()
