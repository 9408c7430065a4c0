"""Phone entry: type the customer's number (checked as it is typed) or pick a recent one, then
Enter sends the M-Pesa prompt.

The check is the protocol layer's `normalise_phone`, the one the payment service applies, so
what the screen accepts is exactly what `start_payment` accepts; its PhoneNumberError message is
shown word for word.
Recent numbers are listed masked (the screen faces the counter), with as many final digits as
it takes to tell them apart. F3 charges less than what is owed (a split: the rest in cash).
The field keeps the focus at all times, so every key typed lands in
it: ↓/↑ only mark a recent number, and the mark counts only while nothing is typed.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from smartduka_tui.mpesa.phone import PhoneNumberError, format_local, normalise_phone
from smartduka_tui.payments.api import (
    InvalidPaymentInput,
    PaymentError,
    PaymentRefused,
    PaymentView,
)
from smartduka_tui.ui.events import ConnectionChanged, PaymentChanged
from smartduka_tui.ui.format import masked_apart, shillings
from smartduka_tui.ui.screens.base import SaleScreen
from smartduka_tui.ui.widgets.inputs import after_pending_keys, till_input

PHONE_HINT = "Type the customer's M-Pesa number, e.g. 0712 345 678, or press ↓ for a recent one."
NOTHING_TO_SEND = "Type the customer's number first, or press ↓ to pick a recent one."
CLEAR_TO_PICK = "A number is typed: delete it (Backspace) to pick a recent one instead."
OFFLINE_REFUSAL = "M-Pesa cannot be reached: nothing was sent. Try again when the banner clears."
FIELD_LABELS = {"phone": "Phone number", "amount": "Total", "sale_ref": "Sale reference"}


def phone_check(text: str) -> tuple[str | None, str]:
    """(normalised phone or None, the line to show) for what the cashier has typed."""
    if not text.strip():
        return None, PHONE_HINT
    try:
        phone = normalise_phone(text)
    except PhoneNumberError as error:
        return None, f"✖ {error}"
    return phone, f"✔ {format_local(phone)} → {phone}"


class PhoneScreen(SaleScreen):
    """Which phone gets the prompt: for a new sale, or for a retry with another phone."""

    CSS_PATH = "phone.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "send",
            "Send prompt",
            priority=True,
            id="phone.send",
            tooltip="Send the M-Pesa PIN prompt to this phone",
        ),
        Binding(
            "down", "recent(1)", "Recent numbers", id="phone.recent", tooltip="Mark a recent one"
        ),
        Binding("up", "recent(-1)", "Previous recent", id="phone.recent_up", show=False),
        Binding(
            "f3",
            "charge_less",
            "Charge less",
            id="phone.charge_less",
            tooltip="Charge only part of what is owed by M-Pesa; the rest is taken in cash",
        ),
        Binding("escape", "back", "Back", id="phone.back", tooltip="Back to the sale"),
    ]
    WAITS = frozenset({"send", "charge_less"})

    phone_check_text = getters.query_one("#phone-check", Static)
    phone_input = getters.query_one("#phone", Input)
    recent_options = getters.query_one("#recent", OptionList)

    def __init__(
        self,
        sale_ref: str,
        amount: int,
        *,
        retry_of: PaymentView | None = None,
        customer_got_no_sms: bool = False,
        total: int | None = None,
        lines: tuple[tuple[str, int, int], ...] = (),
    ) -> None:
        super().__init__()
        self.sale_ref = sale_ref
        self.amount = amount
        self.owed = amount
        """What the sale still owes: the most this prompt may charge."""
        self.total = amount if total is None else total
        self.lines = lines
        self.retry_of = retry_of
        self.customer_got_no_sms = customer_got_no_sms
        self._moved = False
        self.recent: list[str] = []
        self.marked: int | None = None
        """The recent number marked with ↓/↑ (an index into `recent`), if any."""

    def compose_body(self) -> ComposeResult:
        if self.retry_of is None:
            title = self._title()
        else:
            title = (
                f"Try again with another phone · {shillings(self.amount)} · sale {self.sale_ref}"
                f" (was {self.retry_of.phone_masked})"
            )
        with Vertical(id="phone-body"):
            yield Label(title, id="phone-title")
            yield Label("Customer's phone number", classes="field-label")
            yield till_input(
                id="phone",
                placeholder="07XX XXX XXX",
                max_length=20,
            )
            yield Static(PHONE_HINT, id="phone-check")
            yield Label("Recent at this till", id="recent-title")
            recent = OptionList(id="recent")
            # Never focused: an arrow key must not carry the typing away from the field.
            recent.can_focus = False
            yield recent

    def on_mount(self) -> None:
        self.phone_input.focus()
        self._load_recent()

    def _title(self) -> str:
        title = f"Pay {shillings(self.amount)} by M-Pesa · sale {self.sale_ref}"
        if self.amount != self.total:
            title += f" (of {shillings(self.total)})"
        return title

    # -- what would be sent --------------------------------------------------------------------

    def chosen_phone(self, typed: str | None = None) -> str | None:
        """The typed number when anything is typed (valid, else None); otherwise the marked
        recent number, if one is marked."""
        text = self.phone_input.value if typed is None else typed
        if text.strip():
            phone, _ = phone_check(text)
            return phone
        if self.marked is not None and self.marked < len(self.recent):
            return self.recent[self.marked]
        return None

    # -- events --------------------------------------------------------------------------------

    @on(Input.Changed, "#phone")
    def _typed(self, event: Input.Changed) -> None:
        # The field as it is now, not as this (possibly late) event saw it: a burst of keys
        # has its Changed events handled after an Enter may already have judged the whole.
        value = self.phone_input.value
        if value.strip():
            self._mark(None)
        self._show_check(value)
        self.clear_notice()
        self.update_bindings()

    @on(Input.Submitted, "#phone")
    def _entered(self, event: Input.Submitted) -> None:
        # Enter reaches the field when Send was greyed as it arrived (digits still queued, or a
        # real problem): the field's value at that Enter decides, and a problem is said.
        event.stop()
        self._send_now(event.value)

    def _show_check(self, value: str) -> None:
        if not value.strip() and self.marked is not None:
            line, ok = f"✔ Recent number {self._shown[self.marked]}: Enter sends the prompt", True
        else:
            phone, line = phone_check(value)
            ok = phone is not None
        check = self.phone_check_text
        check.update(line)
        check.set_class(not ok and bool(value.strip()), "-error")
        check.set_class(ok, "-ok")

    def _mark(self, index: int | None) -> None:
        self.marked = index
        self.recent_options.highlighted = index

    @property
    def _shown(self) -> list[str]:
        return masked_apart(self.recent)

    @on(OptionList.OptionSelected)
    def _clicked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and not self.phone_input.value.strip():
            self._mark(event.option_index)
            self._show_check("")
            self.update_bindings()

    def _show_recent(self, phones: list[str]) -> None:
        self.recent = phones
        recent = self.recent_options
        recent.clear_options()
        recent.add_options(
            Option(shown, id=phone) for phone, shown in zip(self.recent, self._shown, strict=True)
        )
        if not self.recent:
            recent.add_option(Option("No payments at this till yet", disabled=True))
        self.update_bindings()

    def watches(self, view: PaymentView) -> bool:
        # While sending, the engine reports the stored (CREATED) attempt before Daraja answers
        # the push: show the waiting screen at once instead of a frozen phone screen.
        return self.busy and not self._moved and view.sale_ref == self.sale_ref

    @on(PaymentChanged)
    def _stored(self, message: PaymentChanged) -> None:
        if self.watches(message.view):
            self._moved = True
            self.move_to(self.till.screen_for(message.view))

    def _sent(self, view: PaymentView) -> None:
        if not self._moved:
            self._moved = True
            self.move_to(self.till.screen_for(view))

    def _refused(self, error: PaymentError) -> None:
        if isinstance(error, InvalidPaymentInput):
            label = FIELD_LABELS.get(error.field, error.field)
            back = "" if error.field == "phone" else " Press Escape to go back and fix it."
            self.show_notice(f"{label}: {error.message}{back}", "error")
        else:
            self.show_notice(refusal_text(error), "error")

    @on(ConnectionChanged)
    def _connection(self) -> None:
        self.update_bindings()

    # -- actions -------------------------------------------------------------------------------

    @property
    def sending(self) -> bool:
        """A prompt is being asked for: this screen's service call is in flight."""
        return self.busy

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "send":
            blocked = self.till.connection.daraja_down
            return None if blocked or self.chosen_phone() is None else True
        if action == "recent" and not self.recent:
            return None
        if action == "charge_less":
            return self.retry_of is None
        return True

    def action_charge_less(self) -> None:
        if self.busy or self.retry_of is not None:
            return
        from smartduka_tui.ui.screens.part_amount import PartAmountScreen

        def chosen(amount: int | None) -> None:
            if amount is not None:
                self.amount = amount
                self.query_one("#phone-title", Label).update(self._title())
                rest = self.owed - amount
                note = f" {shillings(rest)} is left for cash." if rest else ""
                self.show_notice(f"The prompt charges {shillings(amount)}.{note}")
            self.phone_input.focus()

        self.app.push_screen(PartAmountScreen(self.owed, self.amount), chosen)

    def action_send(self) -> None:
        after_pending_keys(self, self._send_now)

    def _send_now(self, typed: str | None = None) -> None:
        """Send to what was typed (or marked) up to the Enter, or say why not."""
        if self.busy or not self.is_current:
            return
        text = self.phone_input.value if typed is None else typed
        phone = self.chosen_phone(text)
        if phone is None:
            # The check line says what is wrong with what was typed (or that nothing was).
            self._show_check(text)
            if not text.strip():
                check = self.phone_check_text
                check.update(f"✖ {NOTHING_TO_SEND}")
                check.set_classes("-error")
            self.app.bell()
            return
        if self.till.connection.daraja_down:
            self.show_notice(OFFLINE_REFUSAL, "error")
            self.app.bell()
            return
        self.call_service(
            partial(self._send, phone),
            self._sent,
            "sending the payment request",
            name="send",
            refusals=(PaymentError,),
            refused=self._refused,
            failed="The prompt was not sent. Try again.",
            working="Sending the payment request…",
        )

    def action_recent(self, step: int) -> None:
        if not self.recent:
            return
        if self.phone_input.value.strip():
            self.show_notice(CLEAR_TO_PICK)
            return
        if self.marked is None:
            index: int | None = 0 if step > 0 else None
        else:
            # No wrapping: past the top the mark goes away and the field is empty again.
            index = self.marked + step
            index = None if index < 0 else min(index, len(self.recent) - 1)
        self._mark(index)
        self._show_check("")
        self.update_bindings()

    def action_back(self) -> None:
        if self.busy:
            return
        if self.retry_of is not None:
            self.move_to(self.till.screen_for(self.retry_of))
        else:
            self.back_to_checkout()

    # -- workers -------------------------------------------------------------------------------

    async def _send(self, phone: str) -> PaymentView:
        payments = self.till.services.payments
        if self.retry_of is not None:
            return await payments.retry(
                self.sale_ref, phone=phone, customer_got_no_sms=self.customer_got_no_sms
            )
        if self.total != self.amount or self.lines:
            # A split or an item list: the sale (its total, its lines) is kept first.
            await payments.sales.open(self.sale_ref, self.total, self.lines)
        return await payments.start_payment(self.sale_ref, self.amount, phone)

    def _load_recent(self) -> None:
        self.call_service(
            partial(self.till.services.payments.recent_phones, limit=5),
            self._show_recent,
            "loading recent phone numbers",
            name="recent",
            failed=partial(self._show_recent, []),
            waits=False,
        )


def refusal_text(error: PaymentError) -> str:
    """The service's refusal, with when to try again if it said."""
    if isinstance(error, PaymentRefused) and error.retry_after:
        return f"{error.message} (try again in {error.retry_after} s)"
    return error.message
