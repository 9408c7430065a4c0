"""The note a manager writes when marking a problem resolved (audited with it), and, for a
payment, what the M-Pesa statement showed: its receipt (paid), "no" (not paid), or nothing
(only the note). A finding is a real transition the summary, history and exports follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import getters, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Footer, Input, Label, Static

from smartduka_tui.manager import ActionResult, ManagerError, Resolution
from smartduka_tui.ui.events import Refused
from smartduka_tui.ui.manager.base import ManagerModal
from smartduka_tui.ui.widgets.inputs import till_input

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp


class ResolveNoteScreen(ManagerModal[ActionResult]):
    CSS_PATH = "note.tcss"

    note_error_text = getters.query_one("#note-error", Static)
    note_input = getters.query_one("#note", Input)

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.busy = False

    def compose(self) -> ComposeResult:
        blink = cast("SmartDukaApp", self.app).options.cursor_blink
        with Vertical(id="note-dialog"):
            yield Label(f"Mark {self.key} resolved", id="note-title")
            yield Static("Say what was done, e.g. refunded by M-Pesa, customer paid cash.")
            yield till_input(
                blink=blink, id="note", max_length=500, placeholder="what was done", compact=True
            )
            if self.key.startswith("A"):
                yield Static("On the M-Pesa statement: the receipt if it was paid, no if not.")
                yield till_input(
                    blink=blink,
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
        if not self.busy:
            self.busy = True
            findings = self.query("#finding").results(Input)
            finding = next((f.value for f in findings), "")
            self._resolve(self.note_input.value, finding.strip())

    @on(Refused)
    def _refused(self, message: Refused) -> None:
        self.busy = False
        self.note_error_text.update(message.text)

    @work(group="resolve", exclusive=True, exit_on_error=False)
    async def _resolve(self, note: str, finding: str) -> None:
        outcome, receipt = None, None
        if finding.lower() in ("no", "not paid"):
            outcome = Resolution.NOT_PAID
        elif finding:
            outcome, receipt = Resolution.PAID, finding
        try:
            result = await self.manager.resolve(self.key, note, outcome, receipt)
        except ManagerError as error:
            self.post_message(Refused(f"{error.message}. Nothing was changed."))
        except Exception as error:
            cast("SmartDukaApp", self.app).report_unexpected(error, "marking it resolved")
            self.post_message(Refused("It was not marked resolved. Try again."))
        else:
            self.dismiss(result)
