"""Add one item line to the sale: name, quantity, unit price. Enter adds, Escape cancels."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from smartduka_tui.ui.amounts import SaleItem, item_problem
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.inputs import till_input

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp


class ItemScreen(ModalScreen[SaleItem | None]):
    CSS_PATH = "item.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "add", "Add", priority=True, id="item.add", tooltip="Add this line"),
        Binding("escape", "cancel", "Cancel", id="item.cancel", tooltip="Add nothing"),
    ]

    def compose(self) -> ComposeResult:
        cursor_blink = cast("SmartDukaApp", self.app).options.cursor_blink
        with Vertical(id="item-dialog"):
            yield Label("Add an item", id="item-title")
            with Grid(id="item-form"):
                yield Label("Item")
                yield till_input(id="item-name", max_length=30, blink=cursor_blink)
                yield Label("Quantity")
                yield till_input(
                    value="1", id="item-qty", restrict=r"[0-9]*", max_length=3, blink=cursor_blink
                )
                yield Label("Unit price (KES)")
                yield till_input(
                    id="item-price", restrict=r"[0-9]*", max_length=6, blink=cursor_blink
                )
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
        self.query_one("#item-problem", Static).update("")

    def action_add(self) -> None:
        name, quantity, price = self._values()
        problem = item_problem(name, quantity, price)
        if problem:
            self.query_one("#item-problem", Static).update(problem)
            return
        self.dismiss(SaleItem(name.strip(), int(quantity), int(price)))

    def action_cancel(self) -> None:
        self.dismiss(None)
