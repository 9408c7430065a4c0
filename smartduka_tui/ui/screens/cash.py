"""Cash: the amount the customer hands over, and the part of the sale it pays (all that is owed
unless the cashier types less, to take the rest by M-Pesa). Enter takes it; the change then
shows in large plain figures.

What is typed is read as whole shillings the way the checkout reads a total (no cents, no
signs); the sale's rules (a part of 0, a part beyond what is owed, too little cash given) are
the sale service's, and its words are shown as they are. A refused Enter changes nothing.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Grid, Vertical
from textual.widgets import Input, Label, Static

from smartduka_tui.payments.sales import CashTaken, SaleRefused
from smartduka_tui.ui.amounts import AmountRefused, read_shillings
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.screens.base import TillScreen
from smartduka_tui.ui.widgets.big_text import BigText
from smartduka_tui.ui.widgets.inputs import after_pending_keys, till_input

CASH_HINT = "Type the cash the customer gives; Enter takes it and shows the change."


class CashScreen(TillScreen):
    """Take cash toward one sale."""

    CSS_PATH = "cash.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "take",
            "Take cash",
            priority=True,
            id="cash.take",
            tooltip="Take the cash given toward the sale and show the change",
        ),
        # Once the cash is taken Enter moves on, and the footer says where: to the next sale,
        # or back to this one for the rest.
        Binding(
            "enter",
            "next_sale",
            "Next sale",
            priority=True,
            id="cash.next_sale",
            tooltip="The sale is paid: start the next one",
        ),
        Binding(
            "enter",
            "back_to_sale",
            "Back to the sale",
            priority=True,
            id="cash.back_to_sale",
            tooltip="Take the rest of the sale (M-Pesa, direct or cash)",
        ),
        Binding(
            "escape", "back", "Back", id="cash.back", tooltip="Back to the sale, no cash taken"
        ),
    ]
    WAITS = frozenset({"take", "back"})

    cash_given_input = getters.query_one("#cash-given", Input)
    cash_outcome_text = getters.query_one("#cash-outcome", Static)
    cash_problem_text = getters.query_one("#cash-problem", Static)

    def __init__(
        self,
        sale_ref: str,
        total: int,
        owed: int,
        lines: tuple[tuple[str, int, int], ...] = (),
    ) -> None:
        super().__init__()
        self.sale_ref = sale_ref
        self.total = total
        self.owed = owed
        self.lines = lines
        self.taken: CashTaken | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="cash-body"):
            owed = f" · still owed {shillings(self.owed)}" if self.owed != self.total else ""
            yield Label(
                f"Cash · sale {self.sale_ref} · total {shillings(self.total)}{owed}",
                id="cash-title",
            )
            with Grid(id="cash-form"):
                yield Label("Cash given (KES)", classes="field-label")
                yield till_input(id="cash-given", max_length=12, placeholder="0")
                yield Label("Pay in cash (KES)", classes="field-label")
                yield till_input(id="cash-part", value=str(self.owed), max_length=12)
            yield Static(
                f"Pay in cash is what the cash pays toward the sale: leave {self.owed:,} to pay "
                "it all, or type less and take the rest by M-Pesa.",
                id="cash-part-hint",
            )
            yield Static(CASH_HINT, id="cash-problem")
            with Vertical(id="cash-done"):
                yield Label("CHANGE", id="change-title")
                with Center():
                    yield BigText("", id="change-big")
                yield Static("", id="cash-outcome")

    def on_mount(self) -> None:
        self.query_one("#cash-done").display = False
        self.cash_given_input.focus()

    # -- events --------------------------------------------------------------------------------

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if self.taken is None and not self.busy:
            problem = self.cash_problem_text
            problem.update(CASH_HINT)
            problem.remove_class("-error")

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        if self.taken is None:
            self._take_now()

    def _taken(self, taken: CashTaken) -> None:
        self.taken = taken
        self.query_one("#cash-form").display = False
        self.query_one("#cash-part-hint").display = False
        self.query_one("#cash-problem").display = False
        self.query_one("#cash-done").display = True
        self.query_one("#change-big", BigText).update(f"{taken.change:,}")
        if taken.completed:
            outcome = (
                f"✔ PAID: sale {self.sale_ref}, {shillings(taken.sale.total)}. "
                f"Cash given {shillings(taken.given)}, change {shillings(taken.change)}. "
                "Enter: next sale."
            )
        else:
            outcome = (
                f"{shillings(taken.part)} paid in cash; {shillings(taken.sale.owed)} still owed. "
                "Enter goes back to the sale to take the rest (M-Pesa, direct or cash)."
            )
        self.cash_outcome_text.update(outcome)
        self.refresh_bindings()
        self.app.bell()
        if taken.completed:
            self._print()

    def _refused(self, field: str, text: str) -> None:
        self._say_problem(text)
        self.query_one("#cash-part" if field == "part" else "#cash-given", Input).focus()
        self.app.bell()

    def _sale_refused(self, error: SaleRefused) -> None:
        self._refused(error.field, error.message)

    def _say_problem(self, text: str) -> None:
        problem = self.cash_problem_text
        problem.update(f"✖ {text}")
        problem.add_class("-error")

    # -- actions -------------------------------------------------------------------------------

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        taken = self.taken
        if action in ("take", "back"):
            return taken is None
        if action == "next_sale":
            return taken is not None and taken.completed
        if action == "back_to_sale":
            return taken is not None and not taken.completed
        return True

    def action_next_sale(self) -> None:
        self._leave()

    def action_back_to_sale(self) -> None:
        self._leave()

    def action_take(self) -> None:
        after_pending_keys(self, self._take_now)

    def _take_now(self) -> None:
        if not self.is_current or self.busy or self.taken is not None:
            return
        try:
            given = read_shillings(self.cash_given_input.value, "The cash given")
            part = read_shillings(self.query_one("#cash-part", Input).value, "Pay in cash")
        except AmountRefused as error:
            self._say_problem(error.message)
            self.app.bell()
            return
        sales = self.till.services.payments.sales
        self.call_service(
            partial(sales.take_cash, self.sale_ref, self.total, given, part=part, lines=self.lines),
            self._taken,
            "taking cash",
            name="cash",
            refusals=(SaleRefused,),
            refused=self._sale_refused,
            failed=partial(self._refused, "cash_given", "No cash was recorded. Try again."),
        )

    def action_back(self) -> None:
        if self.busy:
            return
        self._leave()

    def _leave(self) -> None:
        """Back to the checkout: a new sale once this one is paid, else the same sale."""
        taken = self.taken
        if taken is not None and taken.completed:
            self.till.finish_sale()
        else:
            self.till.finish_sale(new_sale=False)

    def _print(self) -> None:
        """Print a cash-paid sale's receipt as the success screen does for a prompt's."""
        printer = self.till.printer
        if printer is None or not printer.desk.printer.auto_print:
            return
        from smartduka_tui.ui.printer import PrintOutcome
        from smartduka_tui.ui.screens.receipt import outcome_words
        from smartduka_tui.ui.widgets.printer_status import why_not_printing

        outcome_line = self.cash_outcome_text
        paid = str(outcome_line.content)
        why = why_not_printing(printer.status)
        if why is not None:
            outcome_line.update(f"{paid}\nReceipt not printed: {why}.")
            return
        printer.offered.add(self.sale_ref)

        def done(outcome: PrintOutcome) -> None:
            if self.is_mounted:
                outcome_line.update(f"{paid}\n{outcome_words(outcome)}")

        printer.print(self.sale_ref, copy=False, via="cash", done=done)
