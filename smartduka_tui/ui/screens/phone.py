"""Phone entry: type the customer's number (checked as it is typed) or pick a recent one, then
Enter sends the M-Pesa prompt.

The check is the protocol layer's `normalise_phone`, the one the payment service applies, so
what the screen accepts is exactly what `start_payment` accepts; its PhoneNumberError message is
shown word for word.
Recent numbers are listed masked (the screen faces the counter) and picked with the arrow keys.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from smartduka_tui.mpesa.phone import PhoneNumberError, format_local, mask_phone, normalise_phone
from smartduka_tui.payments.api import (
    InvalidPaymentInput,
    PaymentError,
    PaymentRefused,
    PaymentView,
)
from smartduka_tui.ui.events import ConnectionChanged, PaymentChanged
from smartduka_tui.ui.format import shillings
from smartduka_tui.ui.screens.base import SaleScreen
from smartduka_tui.ui.widgets.inputs import till_input

PHONE_HINT = "Type the customer's M-Pesa number, e.g. 0712 345 678, or press ↓ for a recent one."
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
        Binding("down", "recent", "Recent numbers", id="phone.recent", tooltip="Pick a recent one"),
        Binding("escape", "back", "Back", id="phone.back", tooltip="Back to the sale"),
    ]

    class PromptSent(Message, bubble=False):
        """The service stored the attempt and sent (or is sending) the prompt."""

        def __init__(self, view: PaymentView) -> None:
            super().__init__()
            self.view = view

    class SendRefused(Message, bubble=False):
        """The service said no; nothing was sent."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class RecentLoaded(Message, bubble=False):
        def __init__(self, phones: list[str]) -> None:
            super().__init__()
            self.phones = phones

    def __init__(
        self,
        sale_ref: str,
        amount: int,
        *,
        retry_of: PaymentView | None = None,
        customer_got_no_sms: bool = False,
    ) -> None:
        super().__init__()
        self.sale_ref = sale_ref
        self.amount = amount
        self.retry_of = retry_of
        self.customer_got_no_sms = customer_got_no_sms
        self.sending = False
        self._moved = False
        self.recent: list[str] = []

    def compose_body(self) -> ComposeResult:
        blink = self.till.options.cursor_blink
        if self.retry_of is None:
            title = f"Pay {shillings(self.amount)} by M-Pesa · sale {self.sale_ref}"
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
                restrict=r"[0-9 +\-]*",
                max_length=20,
                blink=blink,
            )
            yield Static(PHONE_HINT, id="phone-check")
            yield Label("Recent at this till", id="recent-title")
            yield OptionList(id="recent")

    def on_mount(self) -> None:
        self.query_one("#phone", Input).focus()
        self._load_recent()

    # -- what would be sent --------------------------------------------------------------------

    def chosen_phone(self) -> str | None:
        """The recent number highlighted (while the list has focus), else the typed one if
        valid."""
        recent = self.query_one("#recent", OptionList)
        if recent.has_focus and recent.highlighted is not None and self.recent:
            return self.recent[recent.highlighted]
        phone, _ = phone_check(self.query_one("#phone", Input).value)
        return phone

    # -- events --------------------------------------------------------------------------------

    @on(Input.Changed, "#phone")
    def _typed(self, event: Input.Changed) -> None:
        self._show_check(event.value)
        self.clear_notice()
        self.update_bindings()

    def _show_check(self, value: str) -> None:
        phone, line = phone_check(value)
        check = self.query_one("#phone-check", Static)
        check.update(line)
        check.set_class(phone is None and bool(value.strip()), "-error")
        check.set_class(phone is not None, "-ok")

    @on(OptionList.OptionHighlighted)
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            check = self.query_one("#phone-check", Static)
            check.update(f"✔ Recent number {mask_phone(event.option.id)}: Enter sends the prompt")
            check.set_classes("-ok")
        self.update_bindings()

    @on(events.DescendantFocus)
    def _back_to_typing(self, event: events.DescendantFocus) -> None:
        if event.widget.id == "phone":
            self._show_check(self.query_one("#phone", Input).value)

    @on(RecentLoaded)
    def _show_recent(self, message: RecentLoaded) -> None:
        self.recent = message.phones
        recent = self.query_one("#recent", OptionList)
        recent.clear_options()
        recent.add_options(Option(mask_phone(phone), id=phone) for phone in self.recent)
        if not self.recent:
            recent.add_option(Option("No payments at this till yet", disabled=True))
        self.update_bindings()

    def watches(self, view: PaymentView) -> bool:
        # While sending, the engine reports the stored (CREATED) attempt before Daraja answers
        # the push: show the waiting screen at once instead of a frozen phone screen.
        return self.sending and not self._moved and view.sale_ref == self.sale_ref

    @on(PaymentChanged)
    def _stored(self, message: PaymentChanged) -> None:
        if self.watches(message.view):
            self._moved = True
            self.move_to(self.till.screen_for(message.view))

    @on(PromptSent)
    def _sent(self, message: PromptSent) -> None:
        if not self._moved:
            self._moved = True
            self.move_to(self.till.screen_for(message.view))

    @on(SendRefused)
    def _refused(self, message: SendRefused) -> None:
        self.sending = False
        self.show_notice(message.text, "error")
        self.update_bindings()

    @on(ConnectionChanged)
    def _connection(self) -> None:
        self.update_bindings()

    # -- actions -------------------------------------------------------------------------------

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "send":
            blocked = self.sending or self.till.connection.daraja_down
            return None if blocked or self.chosen_phone() is None else True
        if action == "recent" and (not self.recent or self.query_one("#recent").has_focus):
            return None
        return True

    def action_send(self) -> None:
        phone = self.chosen_phone()
        if self.sending or phone is None or self.till.connection.daraja_down:
            return
        self.sending = True
        self.show_notice("Sending the payment request…")
        self.update_bindings()
        self._send(phone)

    def action_recent(self) -> None:
        if self.recent:
            recent = self.query_one("#recent", OptionList)
            recent.focus()
            if recent.highlighted is None:
                recent.highlighted = 0

    def action_back(self) -> None:
        if self.sending:
            return
        if self.retry_of is not None:
            self.move_to(self.till.screen_for(self.retry_of))
        else:
            self.back_to_checkout()

    # -- workers -------------------------------------------------------------------------------

    @work(group="send", exit_on_error=False)
    async def _send(self, phone: str) -> None:
        payments = self.till.services.payments
        try:
            if self.retry_of is None:
                call = payments.start_payment(self.sale_ref, self.amount, phone)
            else:
                call = payments.retry(
                    self.sale_ref, phone=phone, customer_got_no_sms=self.customer_got_no_sms
                )
            view = await self.till.call_service(call)
        except InvalidPaymentInput as error:
            label = FIELD_LABELS.get(error.field, error.field)
            back = "" if error.field == "phone" else " Press Escape to go back and fix it."
            self.post_message(self.SendRefused(f"{label}: {error.message}{back}"))
        except PaymentRefused as error:
            self.post_message(self.SendRefused(refusal_text(error)))
        except PaymentError as error:
            self.post_message(self.SendRefused(error.message))
        except Exception as error:
            self.till.report_unexpected(error, "sending the payment request")
            self.post_message(self.SendRefused("The prompt was not sent. Try again."))
        else:
            self.post_message(self.PromptSent(view))

    @work(group="recent", exclusive=True, exit_on_error=False)
    async def _load_recent(self) -> None:
        try:
            phones = await self.till.services.payments.recent_phones(limit=5)
        except Exception as error:
            self.till.report_unexpected(error, "loading recent phone numbers")
            phones = []
        self.post_message(self.RecentLoaded(phones))


def refusal_text(error: PaymentRefused) -> str:
    """The service's refusal, with when to try again if it said."""
    if error.retry_after:
        return f"{error.message} (try again in {error.retry_after} s)"
    return error.message
