"""The note a manager writes when marking a problem resolved (audited with it), and, for a
payment, what the M-Pesa statement showed: its receipt (paid), "no" (not paid), or nothing
(only the note). A finding is a real transition the summary, history and exports follow."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual import getters, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Footer, Input, Label, Static

from smartduka_tui.manager import ActionResult, ManagerError, Resolution
from smartduka_tui.ui.manager.base import ManagerModal
from smartduka_tui.ui.widgets.inputs import till_input

if TYPE_CHECKING:
    pass


class ResolveNoteScreen(ManagerModal[ActionResult]):
    CSS_PATH = "note.tcss"

    note_error_text = getters.query_one("#note-error", Static)
    note_input = getters.query_one("#note", Input)

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def compose(self) -> ComposeResult:
        with Vertical(id="note-dialog", classes="dialog"):
            yield Label(f"Mark {self.key} resolved", id="note-title")
            yield Static("Say what was done, e.g. refunded by M-Pesa, customer paid cash.")
            yield till_input(id="note", max_length=500, placeholder="what was done", compact=True)
            if self.key.startswith("A"):
                yield Static("On the M-Pesa statement: the receipt if it was paid, no if not.")
                yield till_input(
                    id="finding",
                    max_length=32,
                    placeholder="receipt · no · empty: the note only",
                    compact=True,
                )
            yield Static("", id="note-error")
        yield Footer()

    def on_mount(self) -> None:
        self.note_input.focus()

    @property
    def error_text(self) -> str:
        return str(self.note_error_text.content)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        if self.busy:
            return
        findings = self.query("#finding").results(Input)
        finding = next((f.value for f in findings), "").strip()
        outcome, receipt = None, None
        if finding.lower() in ("no", "not paid"):
            outcome = Resolution.NOT_PAID
        elif finding:
            outcome, receipt = Resolution.PAID, finding
        self.call_service(
            partial(self.manager.resolve, self.key, self.note_input.value, outcome, receipt),
            self.dismiss,
            "marking it resolved",
            name="resolve",
            refused=self._refused,
            failed=partial(self._say, "It was not marked resolved. Try again."),
        )

    def _refused(self, error: ManagerError) -> None:
        self._say(f"{error.message}. Nothing was changed.")

    def _say(self, text: str) -> None:
        self.note_error_text.update(text)
