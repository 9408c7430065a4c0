"""Checkout: the sale total (typed, or built from items with quantities), the sale reference,
and Enter to pay by M-Pesa or F10 to take cash.

The fastest path is the total's digits and Enter; the phone screen follows. The total field
checks what is typed as it is typed, so the cashier sees the problem before pressing Enter.
A sale part paid (cash, or an M-Pesa prompt for less than the total) stays on the checkout with
its total fixed and what is still owed shown: Enter, F6 or F10 takes the rest. F4 clears it;
with money taken the manager is told (an abandoned sale).

The module imports only what its first paint needs: the payment modules, the screens after this
one and the service's rules load while the cashier types (see `SmartDukaApp`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widgets import DataTable, Input, Label, Static

from smartduka_tui.ui.amounts import SaleItem, amount_of, amount_problem, items_total
from smartduka_tui.ui.events import ConnectionChanged
from smartduka_tui.ui.format import shillings, tender_words
from smartduka_tui.ui.render_caches import release_closed_screens
from smartduka_tui.ui.screens.base import TillScreen
from smartduka_tui.ui.widgets.c2b_panel import C2BPanel
from smartduka_tui.ui.widgets.inputs import after_pending_keys, till_input
from smartduka_tui.ui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from smartduka_tui.payments.c2b import C2BRecord, SaleQr
    from smartduka_tui.payments.sales import SaleView
    from smartduka_tui.ui.printer import PrintOutcome

TOTAL_HINT = "Type the total in whole shillings: Enter pays by M-Pesa, F10 takes cash."
NOTHING_TO_REPRINT = "No sale has been paid at this till yet: there is no receipt to reprint."
OFFLINE_REFUSAL = "M-Pesa cannot be reached: new payments wait until it is back (see the banner)."


class CheckoutScreen(TillScreen):
    """The till's home screen: one sale at a time."""

    CSS_PATH = "checkout.tcss"
    # The sale's own keys fill 80 columns (with item lines: Pay, Cash, Add item, Remove, Direct,
    # QR, Help, Sales); Ctrl+P still opens the palette and F1 says so.
    FOOTER_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "pay",
            "M-Pesa",
            priority=True,
            id="checkout.pay",
            tooltip="Take the customer's phone number and send the M-Pesa prompt (for all that "
            "is owed, or F3 there for less)",
        ),
        Binding(
            "f10",
            "cash",
            "Cash",
            id="checkout.cash",
            tooltip="Take cash for the sale: all that is owed, or a part and M-Pesa for the rest",
        ),
        Binding("f3", "add_item", "Item", id="checkout.add_item", tooltip="Add an item line"),
        Binding(
            "delete",
            "remove_item",
            "Remove",
            id="checkout.remove_item",
            tooltip="Remove the highlighted line",
        ),
        Binding(
            "f6",
            "attach_c2b",
            "Direct",
            id="checkout.attach_c2b",
            tooltip="Attach the direct M-Pesa payment that fits this sale (amount and time)",
        ),
        Binding(
            "f7",
            "show_qr",
            "QR",
            id="checkout.show_qr",
            tooltip="Show the sale's M-Pesa QR code for the customer to scan",
        ),
        Binding(
            "f4",
            "clear_sale",
            "Clear",
            id="checkout.clear",
            tooltip="Clear the total and items; the next free sale reference (a sale part paid "
            "is left for the manager)",
            show=False,
        ),
        Binding(
            "f8",
            "reprint_last",
            "Reprint receipt",
            id="checkout.reprint_last",
            tooltip="Print the last paid sale's receipt again, marked COPY (audited)",
            show=False,
        ),
        Binding(
            "f5",
            "verify_receipt",
            "Receipt code",
            id="checkout.verify_receipt",
            tooltip="Check a receipt code the customer shows with M-Pesa",
            # Not in the footer, which the sale's own keys fill at 80 columns; F1 and the
            # command palette list it.
            show=False,
        ),
    ]

    items_table = getters.query_one("#items", DataTable)
    items_total_text = getters.query_one("#items-total", Static)
    sale_ref_input = getters.query_one("#sale-ref", Input)
    total_input = getters.query_one("#total", Input)

    def __init__(self) -> None:
        super().__init__()
        self.items: list[SaleItem] = []
        self._refusal_shown = False
        self.open_sale: SaleView | None = None
        """The sale on the checkout when money has been taken toward it (part paid)."""

    def compose_body(self) -> ComposeResult:
        with Vertical(id="checkout-body"):
            yield Label("New sale", id="checkout-title")
            with Grid(id="checkout-form"):
                yield Label("Total (KES)", classes="field-label")
                # No `restrict`: a dot, sign or letter must reach the field and be refused
                # with words, not vanish and turn 10.50 into 1050.
                yield till_input(
                    id="total",
                    placeholder="0",
                    max_length=12,
                    select_on_focus=False,
                )
                yield Label("Sale reference", classes="field-label")
                yield till_input(
                    id="sale-ref",
                    max_length=20,
                    select_on_focus=False,
                )
            yield Static(TOTAL_HINT, id="total-hint")
            if self.till.is_open and self.till.services.c2b is not None:
                yield C2BPanel(self.till.services.c2b)
            yield Label("Items (optional)", id="items-title")
            yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
            yield Static("", id="items-total")

    def on_mount(self) -> None:
        table = self.items_table
        table.add_column("Item", key="name", width=30)
        table.add_column("Qty", key="qty", width=5)
        table.add_column("Price", key="price", width=12)
        table.add_column("Line total", key="line", width=14)
        self.total_input.focus()
        self._show_items()
        self.new_sale()

    # -- state shown -----------------------------------------------------------------------------

    @property
    def total_text(self) -> str:
        return self.total_input.value

    @property
    def sale_ref(self) -> str:
        return self.sale_ref_input.value.strip()

    @property
    def part_paid(self) -> bool:
        return self.open_sale is not None and self.open_sale.part_paid

    def total(self, total_text: str | None = None) -> int | None:
        """The sale's whole total (fixed once part paid), when it is a valid amount."""
        if self.open_sale is not None and self.part_paid:
            return self.open_sale.total
        if self.items:
            return items_total(self.items) if self.problem(total_text) is None else None
        return amount_of(self.total_text if total_text is None else total_text)

    def lines(self) -> tuple[tuple[str, int, int], ...]:
        return tuple((item.name, item.quantity, item.unit_price) for item in self.items)

    def amount(self, total_text: str | None = None) -> int | None:
        """What is still to pay when it is a valid amount (the total, until part paid), else
        None."""
        if self.open_sale is not None and self.part_paid:
            return self.open_sale.owed
        if self.items:
            total = items_total(self.items)
            return total if amount_problem(str(total)) is None else None
        return amount_of(self.total_text if total_text is None else total_text)

    def ref_problem(self) -> str | None:
        """What is wrong with the sale reference, by the service's own rule and in its words
        (their first clause: the line must fit 80 columns). Nothing before the till is open:
        the reference comes from it."""
        if not self.till.is_open:
            return None
        from smartduka_tui.payments.api import InvalidPaymentInput
        from smartduka_tui.payments.inputs import check_sale_ref

        try:
            check_sale_ref(self.sale_ref, self.till.services.identity.account_prefix)
        except InvalidPaymentInput as error:
            return f"Sale reference {error.message.split(':')[0].split(' (')[0]}."
        return None

    def problem(self, total_text: str | None = None) -> str | None:
        """What stops this sale from being paid now, in the cashier's words."""
        if self.part_paid:
            return None
        if self.items:
            text = str(items_total(self.items))
        else:
            text = self.total_text if total_text is None else total_text
        return amount_problem(text) or self.ref_problem()

    def _show_problem(self, refused: str | None = None) -> None:
        """The line under the fields: the hint, or what is wrong (`refused`: what an Enter was
        refused for, shown even where typing alone would show the hint)."""
        hint = self.query_one("#total-hint", Static)
        empty = not self.items and not self.total_text
        # A bad reference is shown as soon as it is typed, even before the total.
        problem = refused or (self.ref_problem() if empty else self.problem())
        hint.update(problem or self._owed_line() or TOTAL_HINT)
        hint.set_class(problem is not None, "-error")
        for panel in self.query(C2BPanel):
            panel.for_sale(self.amount())
        self.update_bindings()

    def _owed_line(self) -> str | None:
        sale = self.open_sale
        if sale is None or not sale.part_paid:
            return None
        paid = ", ".join(tender_words(tender) for tender in sale.tenders)
        return (
            f"Paid {paid}. Still owed {shillings(sale.owed)}: Enter for M-Pesa, F10 cash. "
            "F4 clears it (the manager is told)."
        )

    def _lock_for_part_paid(self) -> None:
        """A sale with money taken keeps its total, items and reference."""
        locked = self.part_paid
        if locked and self.open_sale is not None:
            self.total_input.value = str(self.open_sale.total)
        self.total_input.disabled = locked or bool(self.items)
        self.sale_ref_input.disabled = locked

    def _show_items(self) -> None:
        table = self.items_table
        table.clear()
        for index, item in enumerate(self.items):
            table.add_row(
                item.name,
                str(item.quantity),
                shillings(item.unit_price),
                shillings(item.line_total),
                key=str(index),
            )
        if self.items:
            self.total_input.value = str(items_total(self.items))
            self.total_input.disabled = True
            self.items_total_text.update(
                f"{len(self.items)} line(s), total {shillings(items_total(self.items))}"
            )
        else:
            if self.total_input.disabled:
                # The total was the items' sum: with the last line gone there is no total.
                self.total_input.value = ""
            self.total_input.disabled = False
            self.items_total_text.update("F3 adds an item with a quantity.")
        self._show_problem()

    # -- events --------------------------------------------------------------------------------

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        # A refused Enter's notice goes once the cashier types again; the notice a finished
        # sale leaves (its fields emptied for the next one) stays.
        if self._refusal_shown:
            self._refusal_shown = False
            self.clear_notice()
        self._show_problem()

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        # Enter reaches the field when Pay was greyed as it arrived (its digits still queued,
        # or a real problem): the field's value at that Enter decides, and a problem is said.
        event.stop()
        self._pay_now(event.value if event.input.id == "total" else None)

    @on(DataTable.RowSelected)
    def _entered_on_items(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._pay_now()

    @on(C2BPanel.Reloaded)
    def _c2b_reloaded(self, message: C2BPanel.Reloaded) -> None:
        self.update_bindings()

    @on(ConnectionChanged)
    def _connection(self, message: ConnectionChanged) -> None:
        self.update_bindings()

    # -- actions -------------------------------------------------------------------------------

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pay":
            return None if self.till.connection.daraja_down or self.problem() else True
        if action == "cash":
            return None if self.problem() or self.amount() is None else True
        if action in ("add_item", "remove_item") and self.part_paid:
            return None
        if action == "remove_item":
            table = self.items_table
            return True if self.items and table.has_focus else None
        if action == "attach_c2b":
            # Hidden on a till without direct payments; greyed until one fits the sale.
            panels = self.query(C2BPanel)
            if not panels:
                return False
            return True if panels.first().suggested is not None else None
        if action == "show_qr":
            desk = self.till.services.c2b if self.till.is_open else None
            if desk is None or not desk.offers_qr:
                return False
            return None if self.till.connection.daraja_down or self.problem() else True
        if action == "clear_sale":
            busy = self.items or self.total_text or self.ref_problem() or self.part_paid
            return True if busy else None
        if action == "reprint_last":
            return self.till.printer is not None
        if action == "verify_receipt":
            # Hidden on a till without receipt checks (no relay for M-Pesa's answers); greyed
            # while a starting app's till opens (it is not known yet).
            if not self.till.is_open:
                return None
            return self.till.services.receipt_checks is not None
        return True

    def action_verify_receipt(self) -> None:
        # Loaded when first opened: the checkout is the first screen, and start-up stays light.
        from smartduka_tui.ui.screens.verify_receipt import VerifyReceiptScreen

        checks = self.till.services.receipt_checks
        if checks is not None:
            self.app.push_screen(VerifyReceiptScreen(checks))

    def action_pay(self) -> None:
        after_pending_keys(self, self._pay_now)

    def _pay_now(self, total_text: str | None = None) -> None:
        """Pay with what was typed up to the Enter, or say why not."""
        if not self.is_current:
            return
        problem = self.problem(total_text)
        amount = self.amount(total_text)
        if problem is not None or amount is None:
            self._show_problem(problem or TOTAL_HINT)
            self.app.bell()
            return
        if self.till.connection.daraja_down:
            self.show_notice(OFFLINE_REFUSAL, "error")
            self._refusal_shown = True
            self.app.bell()
            return
        self.clear_notice()
        from smartduka_tui.ui.screens.phone import PhoneScreen

        total = self.total(total_text) or amount
        self.app.push_screen(PhoneScreen(self.sale_ref, amount, total=total, lines=self.lines()))

    def action_cash(self) -> None:
        after_pending_keys(self, self._cash_now)

    def _cash_now(self) -> None:
        if not self.is_current:
            return
        problem, owed, total = self.problem(), self.amount(), self.total()
        if problem is not None or owed is None or total is None:
            self._show_problem(problem or TOTAL_HINT)
            self.app.bell()
            return
        self.clear_notice()
        sale_ref, lines = self.sale_ref, self.lines()

        def in_a_shift(refusal: str | None) -> None:
            """The cash screen, once the till has an open shift (the shifts work's cash gate);
            without one, the checkout says how to open it."""
            if refusal is not None:
                self.show_notice(refusal, "error")
                self.app.bell()
                return
            from smartduka_tui.ui.screens.cash import CashScreen

            self.app.push_screen(CashScreen(sale_ref, total, owed, lines))

        self.call_service(
            self.till.services.payments.sales.cash_refusal,
            in_a_shift,
            "checking the shift",
            name="cash-gate",
            waits=False,
        )

    def action_add_item(self) -> None:
        from smartduka_tui.ui.screens.item import ItemScreen

        def added(item: SaleItem | None) -> None:
            if item is not None:
                self.items.append(item)
                self._show_items()
            if self.items:
                self.items_table.focus()
            else:
                self.total_input.focus()

        self.app.push_screen(ItemScreen(), added)

    def action_remove_item(self) -> None:
        table = self.items_table
        if not self.items:
            return
        row = table.cursor_row
        if 0 <= row < len(self.items):
            del self.items[row]
            self._show_items()
            if not self.items:
                self.total_input.focus()

    def action_attach_c2b(self) -> None:
        """Attach the one direct payment that fits this sale; the relay decides, shop-wide."""
        from smartduka_tui.payments.c2b import C2BAttachError
        from smartduka_tui.payments.sales import SaleRefused

        panel = self.query_one(C2BPanel)
        suggested, sale_ref = panel.suggested, self.sale_ref
        if suggested is None or self.ref_problem() is not None:
            self.app.bell()
            return
        total, lines = None if self.part_paid else self.total(), self.lines()
        payments = self.till.services.payments

        async def attach() -> C2BRecord:
            if total is not None:
                await payments.sales.open(sale_ref, total, lines)
            return await panel.desk.attach(suggested.trans_id, sale_ref)

        def attached(record: C2BRecord) -> None:
            self.new_sale()
            paid = (
                f"✔ PAID directly: sale {record.sale_ref}, {shillings(record.amount)}, "
                f"M-Pesa receipt {record.trans_id}."
            )
            self.show_notice(paid)
            panel.reload()
            self._print_paid_directly(sale_ref, paid)

        def refused(error: SaleRefused | C2BAttachError) -> None:
            self._say_refused(f"Not attached: {error.message}")
            if isinstance(error, C2BAttachError):
                panel.reload()

        self.call_service(
            attach,
            attached,
            "attaching a direct payment",
            name="attach-c2b",
            refusals=(SaleRefused, C2BAttachError),
            refused=refused,
            waits=False,
        )

    def _print_paid_directly(self, sale_ref: str, paid: str) -> None:
        """Print a directly paid sale's receipt as the success screen does for a prompt's;
        the outcome joins the PAID line while that line is still shown."""
        printer = self.till.printer
        if printer is None or not printer.desk.printer.auto_print:
            return
        from smartduka_tui.ui.screens.receipt import outcome_words
        from smartduka_tui.ui.widgets.printer_status import why_not_printing

        why = why_not_printing(printer.status)
        if why is not None:
            self.show_notice(f"{paid} Receipt not printed: {why}.")
            return

        def done(outcome: PrintOutcome) -> None:
            if self.is_mounted and self.notice_text == paid:
                self.show_notice(f"{paid} {outcome_words(outcome)}")

        printer.print(sale_ref, copy=False, via="checkout", done=done)

    def action_show_qr(self) -> None:
        """Ask M-Pesa for this sale's QR and show it; the payment arrives as a direct one."""
        from smartduka_tui.payments.c2b import QrUnavailable

        desk, amount = self.till.services.c2b, self.amount()
        if desk is None or amount is None or self.problem() is not None:
            self.app.bell()
            return

        def show(qr: SaleQr) -> None:
            from smartduka_tui.ui.screens.qr import QrScreen

            self.app.push_screen(QrScreen(qr))

        def refused(error: QrUnavailable) -> None:
            self._say_refused(str(error))

        self.call_service(
            partial(desk.sale_qr, self.sale_ref, amount),
            show,
            "making the sale's QR code",
            name="show-qr",
            refusals=(QrUnavailable,),
            refused=refused,
            waits=False,
        )

    def _say_refused(self, text: str) -> None:
        self.show_notice(text, "error")
        self._refusal_shown = True
        self.app.bell()

    def action_clear_sale(self) -> None:
        """Clear the sale; one with money taken is left ABANDONED for the manager."""
        self.clear_notice()
        sale_ref = self.sale_ref
        self.open_sale = None
        self.new_sale()
        if self.till.is_open and sale_ref:
            self._abandon(sale_ref)

    def _abandon(self, sale_ref: str) -> None:
        # One call per sale: clearing another sale must not cancel this one's.
        self.call_service(
            partial(self.till.services.payments.sales.abandon, sale_ref),
            self._abandoned,
            "clearing the sale",
            name=f"abandon {sale_ref}",
            waits=False,
        )

    def _abandoned(self, left: SaleView | None) -> None:
        if left is not None and left.tenders:
            self.show_notice(
                f"Sale {left.sale_ref} cleared with {shillings(left.paid)} of "
                f"{shillings(left.total)} paid: it is on the manager's problem list "
                "(give the money back, or the manager finishes it).",
                "warning",
            )

    def action_reprint_last(self) -> None:
        printer = self.till.printer
        if printer is None:
            return

        def found(sale_ref: str | None) -> None:
            if sale_ref is None:
                self.show_notice(NOTHING_TO_REPRINT, "warning")
                return
            from smartduka_tui.ui.screens.receipt import ReceiptScreen

            self.app.push_screen(ReceiptScreen(printer, sale_ref, reprint=True))

        self.call_service(
            printer.desk.last_paid_sale,
            found,
            "finding the last receipt",
            name="reprint",
            waits=False,
        )

    # -- a new sale ----------------------------------------------------------------------------

    def new_sale(self) -> None:
        """Empty the sale and suggest the next free sale reference. A sale left part paid (its
        M-Pesa part not paid, the cashier moving on) is abandoned for the manager."""
        left, self.open_sale = self.open_sale, None
        if left is not None and left.part_paid and self.till.is_open:
            self._abandon(left.sale_ref)
        self._lock_for_part_paid()
        self.items.clear()
        self.total_input.value = ""
        self.sale_ref_input.value = ""
        self._show_items()
        self.total_input.focus()
        if self.till.is_open:
            self._suggest_reference()

    def on_screen_resume(self) -> None:
        # The sale screens just closed: their drawn lines go with them (render_caches).
        release_closed_screens()
        # Back from a sale screen: money may have been taken toward this sale meanwhile.
        if self.till.is_open and self.sale_ref:
            self._load_sale()

    def _load_sale(self) -> None:
        sale_ref = self.sale_ref

        def loaded(sale: SaleView | None) -> None:
            if sale_ref != self.sale_ref:
                return
            self.open_sale = sale if sale is not None and sale.part_paid else None
            self._lock_for_part_paid()
            self._show_problem()

        self.call_service(
            partial(self.till.services.payments.sales.get, sale_ref),
            loaded,
            "reading the sale",
            name="open-sale",
            waits=False,
        )

    async def till_opened(self) -> None:
        """The till behind a starting app is open: name it, show its direct payments, and
        suggest the sale's reference."""
        await self.query_one(StatusBar).show_identity(self.till.services.identity)
        desk = self.till.services.c2b
        if desk is not None:
            await self.query_one("#checkout-body").mount(C2BPanel(desk), before="#items-title")
        await self._fill_reference()
        self._show_problem()

    @work(group="sale-ref", exclusive=True, exit_on_error=False)
    async def _suggest_reference(self) -> None:
        await self._fill_reference()

    async def _fill_reference(self) -> None:
        try:
            payments = self.till.services.payments
            reference = await payments.next_sale_ref(f"checkout {id(self):x}")
        except Exception as error:
            self.till.report_unexpected(error, "choosing the next sale reference")
            return
        ref_input = self.sale_ref_input
        if not ref_input.value:
            ref_input.value = reference
