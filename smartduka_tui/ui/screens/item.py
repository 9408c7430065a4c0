"""Add one item line to the sale: name, quantity, unit price. Enter adds, Escape cancels."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from smartduka_tui.ui.amounts import SaleItem, item_of, item_problem
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.inputs import TYPING_ORDER_BINDINGS, after_pending_keys, till_input

if TYPE_CHECKING:
    pass


class ItemScreen(ModalScreen[SaleItem | None]):
    CSS_PATH = "item.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "add", "Add", priority=True, id="item.add", tooltip="Add this line"),
        Binding("escape", "dismiss", "Cancel", id="item.cancel", tooltip="Add nothing"),
        *TYPING_ORDER_BINDINGS,
    ]

    _refused: tuple[str, str, str] | None = None
    """The fields as they were when Enter was last refused."""

    item_problem_text = getters.query_one("#item-problem", Static)

    def compose(self) -> ComposeResult:
        with Vertical(id="item-dialog", classes="dialog"):
            yield Label("Add an item", id="item-title")
            with Grid(id="item-form"):
                yield Label("Item")
                yield till_input(id="item-name", max_length=30)
                yield Label("Quantity")
                # No `restrict`: 185.50 must be refused with words, not become 18550.
                yield till_input(value="1", id="item-qty", max_length=5)
                yield Label("Unit price (KES)")
                yield till_input(id="item-price", max_length=12)
            yield Static("", id="item-problem")
        yield TillFooter()

    def _values(self) -> tuple[str, str, str]:
        return (
            self.query_one("#item-name", Input).value,
            self.query_one("#item-qty", Input).value,
            self.query_one("#item-price", Input).value,
        )

    @on(Input.Changed)
    def _typed(self) -> None:
        # Only a change since the refusal clears it: the Changed events of a burst of keys
        # arrive after the Enter that judged them.
        if self._values() != self._refused:
            self.item_problem_text.update("")

    def action_add(self) -> None:
        after_pending_keys(self, self._add_now)

    def _add_now(self) -> None:
        """Add the line as typed up to the Enter, or say what is wrong with it."""
        if not self.is_current:
            return
        item = item_of(*self._values())
        if item is None:
            self._refused = self._values()
            self.item_problem_text.update(item_problem(*self._values()) or "")
            return
        self.dismiss(item)
