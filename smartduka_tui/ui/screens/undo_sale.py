"""Void or refund a paid cash sale from F2 Sales: the manager PIN and a note, then Enter.
A refund of a split sale says first that it returns only the cash, naming the M-Pesa receipts
that still need their reversal (V, manager only; never done from here).

The sale service judges it (a sale voided already, one with no cash tender, M-Pesa money that
goes back only by reversal, a wrong PIN) and its words are shown as they are; nothing changes
on a refusal. The PIN is typed masked and never shown or kept.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from smartduka_tui.payments.sales import SaleRefused, SaleView, Secret
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.screens.base import ServiceCalls
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.inputs import TYPING_ORDER_BINDINGS, after_pending_keys, till_input

if TYPE_CHECKING:
    pass


class UndoSaleScreen(ServiceCalls, ModalScreen[SaleView | None]):
    """`refund=False` voids the sale, `refund=True` refunds its cash."""

    CSS_PATH = "undo_sale.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm", "Confirm", priority=True, id="undo.confirm", tooltip="Do it"),
        Binding("escape", "cancel", "Cancel", id="undo.cancel", tooltip="Change nothing"),
        *TYPING_ORDER_BINDINGS,
    ]

    undo_pin_input = getters.query_one("#undo-pin", Input)
    undo_problem_text = getters.query_one("#undo-problem", Static)

    def __init__(
        self, sale_ref: str, total: int, *, refund: bool, sale: SaleView | None = None
    ) -> None:
        super().__init__()
        self.sale_ref = sale_ref
        self.total = total
        self.refund = refund
        self.sale = sale

    @property
    def help_words(self) -> str:
        """What the manager is about to do; for a refund of a split sale, that it returns only
        the cash and which M-Pesa receipts still need their reversal."""
        mpesa = self.sale.mpesa_tenders if self.sale is not None else ()
        if not (self.refund and mpesa and self.sale is not None):
            return (
                "Manager only. The cash goes back to the customer; M-Pesa money goes back by "
                "reversal (V in the manager's screens)."
            )
        receipts = ", ".join(t.receipt or "receipt to follow" for t in mpesa)
        return (
            f"Manager only. This refunds only the {shillings(self.sale.cash)} cash. The "
            f"{shillings(sum(t.amount for t in mpesa))} paid by M-Pesa ({receipts}) is not "
            "refunded here: reverse it with V in the manager's screens."
        )

    def compose(self) -> ComposeResult:
        doing = "Refund the cash of" if self.refund else "Void"
        with Vertical(id="undo-dialog", classes="dialog"):
            yield Label(f"{doing} sale {self.sale_ref} ({shillings(self.total)})", id="undo-title")
            yield Static(self.help_words, id="undo-help")
            with Grid(id="undo-form"):
                yield Label("Manager PIN")
                yield till_input(id="undo-pin", password=True, max_length=12)
                yield Label("Note (why)")
                yield till_input(id="undo-note", max_length=500)
            yield Static("", id="undo-problem")
        yield TillFooter()

    def on_mount(self) -> None:
        self.undo_pin_input.focus()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        # The PIN field emptied after a refusal is not the cashier typing: the words stay.
        if not self.busy and event.value:
            self.undo_problem_text.update("")

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._confirm_now()

    def action_confirm(self) -> None:
        after_pending_keys(self, self._confirm_now)

    def _confirm_now(self) -> None:
        if not self.is_current or self.busy:
            return
        pin = Secret(self.undo_pin_input.value)
        note = self.query_one("#undo-note", Input).value
        sales = self.till.services.payments.sales
        undo = sales.refund if self.refund else sales.void
        self.call_service(
            partial(undo, self.sale_ref, pin, note),
            self.dismiss,
            "undoing the sale",
            name="undo",
            refusals=(SaleRefused,),
            refused=self._refused,
        )

    def _refused(self, error: SaleRefused) -> None:
        self.undo_pin_input.value = ""
        self.undo_problem_text.update(f"✖ {error.message}")
        self.till.bell()

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)
