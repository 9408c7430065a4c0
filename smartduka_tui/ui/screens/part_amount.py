"""How much of the sale the M-Pesa prompt charges, when the customer pays only part by M-Pesa
and the rest in cash. Whole shillings, at least 1, at most what is owed (the tenders must add up
to the total exactly); Enter sets it, Escape keeps the amount as it was."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from smartduka_tui.ui.amounts import AmountRefused, read_shillings
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.inputs import TYPING_ORDER_BINDINGS, after_pending_keys, till_input

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp


def part_problem(text: str, owed: int) -> str | None:
    """What is wrong with `text` as the part charged by M-Pesa, or None."""
    try:
        part = read_shillings(text, "The amount")
    except AmountRefused as error:
        return error.message
    if part < 1:
        return "A part of KES 0 charges nothing: type at least KES 1."
    if part > owed:
        return (
            f"KES {part:,} is more than the {shillings(owed)} owed: the tenders must add up to "
            "the total exactly."
        )
    from smartduka_tui.mpesa.requests import MAX_AMOUNT

    if part > MAX_AMOUNT:
        return f"M-Pesa takes at most KES {MAX_AMOUNT:,} in one payment."
    return None


class PartAmountScreen(ModalScreen[int | None]):
    CSS_PATH = "part_amount.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "set", "Set", priority=True, id="part.set", tooltip="Charge this much"),
        Binding("escape", "dismiss", "Cancel", id="part.cancel", tooltip="Keep the amount"),
        *TYPING_ORDER_BINDINGS,
    ]

    part_amount_input = getters.query_one("#part-amount", Input)
    part_problem_text = getters.query_one("#part-problem", Static)

    def __init__(self, owed: int, current: int) -> None:
        super().__init__()
        self.owed = owed
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="part-dialog", classes="dialog"):
            yield Label("Charge part by M-Pesa", id="part-title")
            yield Static(
                f"Still owed {shillings(self.owed)}. Amount for the prompt (KES); the rest is "
                "taken in cash (F10 on the checkout).",
                id="part-help",
            )
            yield till_input(id="part-amount", value=str(self.current), max_length=12)
            yield Static("", id="part-problem")
        yield TillFooter()

    def on_mount(self) -> None:
        self.part_amount_input.focus()

    @on(Input.Changed)
    def _typed(self) -> None:
        self.part_problem_text.update("")

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._set_now()

    def action_set(self) -> None:
        after_pending_keys(self, self._set_now)

    def _set_now(self) -> None:
        if not self.is_current:
            return
        text = self.part_amount_input.value
        problem = part_problem(text, self.owed)
        if problem is not None:
            self.part_problem_text.update(f"✖ {problem}")
            cast("SmartDukaApp", self.app).bell()
            return
        self.dismiss(read_shillings(text, "The amount"))
