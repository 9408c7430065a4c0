"""Checkout: the sale total (typed, or built from items with quantities), the sale reference,
and Enter to pay by M-Pesa.

The fastest path is the total's digits and Enter; the phone screen follows. The total field
checks what is typed as it is typed, so the cashier sees the problem before pressing Enter.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widgets import DataTable, Input, Label, Static

from smartduka_tui.ui.amounts import SaleItem, amount_problem, items_total
from smartduka_tui.ui.events import ConnectionChanged
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.screens.base import TillScreen
from smartduka_tui.ui.screens.item import ItemScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.widgets.inputs import till_input

TOTAL_HINT = "Type the total in whole shillings, then Enter to pay by M-Pesa."
REF_EMPTY = "Type a sale reference (letters and digits)."


class CheckoutScreen(TillScreen):
    """The till's home screen: one sale at a time."""

    CSS_PATH = "checkout.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "pay",
            "Pay by M-Pesa",
            priority=True,
            id="checkout.pay",
            tooltip="Take the customer's phone number and send the M-Pesa prompt",
        ),
        Binding("f3", "add_item", "Add item", id="checkout.add_item", tooltip="Add a line"),
        Binding(
            "delete",
            "remove_item",
            "Remove",
            id="checkout.remove_item",
            tooltip="Remove the highlighted line",
        ),
        Binding(
            "f4",
            "clear_sale",
            "Clear",
            id="checkout.clear",
            tooltip="Clear the total and items",
            show=False,
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: list[SaleItem] = []

    def compose_body(self) -> ComposeResult:
        blink = self.till.options.cursor_blink
        with Vertical(id="checkout-body"):
            yield Label("New sale", id="checkout-title")
            with Grid(id="checkout-form"):
                yield Label("Total (KES)", classes="field-label")
                yield till_input(
                    id="total",
                    placeholder="0",
                    restrict=r"[0-9]*",
                    max_length=7,
                    blink=blink,
                    select_on_focus=False,
                )
                yield Label("Sale reference", classes="field-label")
                yield till_input(
                    id="sale-ref",
                    restrict=r"[A-Za-z0-9]*",
                    max_length=12,
                    blink=blink,
                    select_on_focus=False,
                )
            yield Static(TOTAL_HINT, id="total-hint")
            yield Label("Items (optional)", id="items-title")
            yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
            yield Static("", id="items-total")

    def on_mount(self) -> None:
        table = self.query_one("#items", DataTable)
        table.add_column("Item", key="name", width=30)
        table.add_column("Qty", key="qty", width=5)
        table.add_column("Price", key="price", width=12)
        table.add_column("Line total", key="line", width=14)
        self.query_one("#total", Input).focus()
        self._show_items()
        self.new_sale()

    # -- state shown -----------------------------------------------------------------------------

    @property
    def total_text(self) -> str:
        return self.query_one("#total", Input).value

    @property
    def sale_ref(self) -> str:
        return self.query_one("#sale-ref", Input).value.strip()

    def amount(self) -> int | None:
        """The sale total when it is a valid amount, else None."""
        if self.items:
            total = items_total(self.items)
            return total if amount_problem(str(total)) is None else None
        return None if amount_problem(self.total_text) else int(self.total_text)

    def problem(self) -> str | None:
        """What stops this sale from being paid now, in the cashier's words."""
        text = str(items_total(self.items)) if self.items else self.total_text
        problem = amount_problem(text)
        if problem:
            return problem
        if not self.sale_ref:
            return REF_EMPTY
        return None

    def _show_problem(self) -> None:
        hint = self.query_one("#total-hint", Static)
        problem = self.problem()
        empty = not self.items and not self.total_text
        hint.update(TOTAL_HINT if empty or problem is None else problem)
        hint.set_class(problem is not None and not empty, "-error")
        self.update_bindings()

    def _show_items(self) -> None:
        table = self.query_one("#items", DataTable)
        table.clear()
        for index, item in enumerate(self.items):
            table.add_row(
                item.name,
                str(item.quantity),
                shillings(item.unit_price),
                shillings(item.line_total),
                key=str(index),
            )
        total_input = self.query_one("#total", Input)
        if self.items:
            total_input.value = str(items_total(self.items))
            total_input.disabled = True
            self.query_one("#items-total", Static).update(
                f"{len(self.items)} line(s), total {shillings(items_total(self.items))}"
            )
        else:
            total_input.disabled = False
            self.query_one("#items-total", Static).update("F3 adds an item with a quantity.")
        self._show_problem()

    # -- events --------------------------------------------------------------------------------

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self._show_problem()

    @on(ConnectionChanged)
    def _connection(self, message: ConnectionChanged) -> None:
        self.update_bindings()

    # -- actions -------------------------------------------------------------------------------

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pay":
            return None if self.till.connection.daraja_down or self.problem() else True
        if action == "remove_item":
            table = self.query_one("#items", DataTable)
            return True if self.items and table.has_focus else None
        if action == "clear_sale":
            return True if self.items or self.total_text else None
        return True

    def action_pay(self) -> None:
        amount = self.amount()
        if amount is None or not self.sale_ref or self.till.connection.daraja_down:
            return
        self.clear_notice()
        self.app.push_screen(PhoneScreen(self.sale_ref, amount))

    def action_add_item(self) -> None:
        def added(item: SaleItem | None) -> None:
            if item is not None:
                self.items.append(item)
                self._show_items()
            if self.items:
                self.query_one("#items", DataTable).focus()
            else:
                self.query_one("#total", Input).focus()

        self.app.push_screen(ItemScreen(), added)

    def action_remove_item(self) -> None:
        table = self.query_one("#items", DataTable)
        if not self.items:
            return
        row = table.cursor_row
        if 0 <= row < len(self.items):
            del self.items[row]
            self._show_items()
            if not self.items:
                self.query_one("#total", Input).focus()

    def action_clear_sale(self) -> None:
        self.items.clear()
        self.query_one("#total", Input).value = ""
        self._show_items()
        self.query_one("#total", Input).focus()

    # -- a new sale ----------------------------------------------------------------------------

    def new_sale(self) -> None:
        """Empty the sale and suggest the next free sale reference."""
        self.items.clear()
        self.query_one("#total", Input).value = ""
        self.query_one("#sale-ref", Input).value = ""
        self._show_items()
        self.query_one("#total", Input).focus()
        self._suggest_reference()

    @work(group="sale-ref", exclusive=True, exit_on_error=False)
    async def _suggest_reference(self) -> None:
        try:
            reference = await self.till.sale_numbers.next_free()
        except Exception as error:
            self.till.report_unexpected(error, "choosing the next sale reference")
            return
        ref_input = self.query_one("#sale-ref", Input)
        if not ref_input.value:
            ref_input.value = reference
