"""Before the till closes with payments still waiting for M-Pesa: say they stay safe, and ask.

Quitting loses nothing (every attempt is saved before its prompt goes out, and the till checks
the live ones when it starts again), but the cashier should not be surprised by it: the
customer may be typing their PIN right now.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from smartduka_tui.ui.widgets.footer import TillFooter


def waiting_words(count: int) -> str:
    """`1 payment is` / `3 payments are`."""
    return "1 payment is" if count == 1 else f"{count} payments are"


class ConfirmQuitScreen(ModalScreen[bool]):
    CSS_PATH = "quit.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit anyway", id="quit.yes"),
        Binding("n,escape", "answer(False)", "Stay open", id="quit.no"),
    ]

    def __init__(self, awaiting: int) -> None:
        super().__init__()
        self.awaiting = awaiting

    def compose(self) -> ComposeResult:
        safe = "It stays safe" if self.awaiting == 1 else "They stay safe"
        with Vertical(id="quit-dialog", classes="dialog"):
            yield Label("Close the till?", id="quit-title")
            yield Static(
                f"{waiting_words(self.awaiting)} still waiting for M-Pesa's answer.\n\n"
                f"{safe} if you close: saved, and checked with M-Pesa as soon as the till "
                "starts again. While the till is closed nobody sees the outcome.\n\n"
                "Press y to close anyway, n to stay open.",
                id="quit-text",
            )
        yield TillFooter()

    def action_answer(self, close: bool) -> None:
        self.dismiss(close)
