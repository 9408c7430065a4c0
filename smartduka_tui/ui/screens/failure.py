"""Failure: not paid (failed, expired, or waiting for a manager).

Shows the catalogue's message, whether and when it is safe to try again (the retry rule's
`not_before` as a live countdown), how many retries are used, and keys to retry with the same
phone or another, or to cancel. Whether a retry is allowed is the payment service's answer
(`PaymentView.retry`); the screen only greys keys by it and asks again when a wait is over.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Label, Static

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import PaymentError, PaymentView, RetryBlock
from smartduka_tui.ui.events import PaymentChanged
from smartduka_tui.ui.format import countdown, local_time, seconds_left, shillings
from smartduka_tui.ui.freshness import is_stale
from smartduka_tui.ui.screens.base import SaleScreen
from smartduka_tui.ui.screens.confirm_no_sms import ConfirmNoSmsScreen
from smartduka_tui.ui.screens.phone import PhoneScreen, refusal_text
from smartduka_tui.ui.screens.verify_receipt import VerifyReceiptScreen
from smartduka_tui.ui.summary import STAGE_WORDS

TITLES: dict[AttemptState, str] = {
    AttemptState.FAILED: "✖ NOT PAID",
    AttemptState.EXPIRED: "? OUTCOME UNKNOWN",
    AttemptState.NEEDS_REVIEW: "⚠ NEEDS A MANAGER",
}


class FailureScreen(SaleScreen):
    CSS_PATH = "failure.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r",
            "retry",
            "Retry",
            id="failure.retry",
            tooltip="Send a new prompt to the same phone, when it is safe",
        ),
        Binding(
            "a",
            "another_phone",
            "Other phone",
            id="failure.another_phone",
            tooltip="Send a new prompt to a different phone, when it is safe",
        ),
        Binding(
            "f5",
            "verify_receipt",
            "Receipt code",
            id="failure.verify_receipt",
            tooltip="The customer shows an M-Pesa receipt: check it and pay the sale with it",
        ),
        Binding(
            "escape,x",
            "cancel_sale",
            "Cancel sale",
            id="failure.cancel",
            tooltip="Not paid by M-Pesa: start the next sale",
        ),
    ]
    WAITS = frozenset({"retry", "another_phone", "verify_receipt"})

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view
        self._asked_after_wait = False
        self._explained: str | None = None
        """The greyed key whose reason the notice shows: kept current as the clock moves,
        cleared when the key opens, so the line never goes stale."""
        self._pressed_while_checking: str | None = None
        """A retry key pressed while the service is asked whether a wait is over: it runs
        (or is explained) when the answer lands, rather than being lost."""

    def watches(self, view: PaymentView) -> bool:
        # Any attempt of this sale: an earlier one may still be paid late.
        return view.sale_ref == self.view.sale_ref

    def compose_body(self) -> ComposeResult:
        with Vertical(id="failure-body"):
            yield Label("", id="failure-title")
            yield Static("", id="cashier-message")
            yield Static("", id="facts")
            yield Static("", id="retry-rule")
            yield Static("", id="retry-wait")
            yield Static("", id="manager-hint")

    def on_mount(self) -> None:
        self._render_view()
        self._take(self.catch_up(self.view))

    # -- rendering -----------------------------------------------------------------------------

    def _render_view(self) -> None:
        view = self.view
        title = self.query_one("#failure-title", Label)
        title.update(TITLES.get(view.state, STAGE_WORDS.get(view.stage, view.state.value)))
        title.set_class(view.state is AttemptState.NEEDS_REVIEW, "-review")
        self.query_one("#cashier-message", Static).update(self._cashier_words())
        code = f"M-Pesa code {view.result_code} · " if view.result_code else ""
        self.query_one("#facts", Static).update(
            f"{code}sale {view.sale_ref} · {shillings(view.amount)} · {view.phone_masked}"
            f" · attempt {view.attempt_number}"
        )
        rule = view.retry
        limit = rule.retries_used + rule.retries_left
        # A wait is shown as the live countdown below (in shop time), not as the rule's text.
        advice = "" if rule.block is RetryBlock.WAIT else f"{rule.message}\n"
        self.query_one("#retry-rule", Static).update(
            f"{advice}Retries used: {rule.retries_used} of {limit}."
        )
        hint = self.query_one("#manager-hint", Static)
        hint.update(f"For the manager: {view.manager_hint}" if view.manager_hint else "")
        hint.set_class(bool(view.manager_hint), "-shown")
        self._render_wait()
        self.update_bindings()

    def _cashier_words(self) -> str:
        """The catalogue's message; with no retries left, only what happened: its advice
        ("ask them to try again") would contradict "No retries left" beside it."""
        message = self.view.cashier_message
        if self.view.retry.block is not RetryBlock.NO_RETRIES_LEFT:
            return message
        happened, stop, _advice = message.partition(". ")
        return happened + "." if stop else message

    def wait_seconds(self) -> int | None:
        """Seconds until the service's `not_before` (None when the rule names no wait)."""
        not_before = self.view.retry.not_before
        return None if not_before is None else seconds_left(not_before, self.till.now)

    def _render_wait(self) -> None:
        wait = self.query_one("#retry-wait", Static)
        left = self.wait_seconds()
        if left is None:
            wait.update("")
            wait.set_class(False, "-shown")
            return
        wait.set_class(True, "-shown")
        not_before = self.view.retry.not_before
        if left and not_before is not None and self.view.retry.other_phone_now:
            wait.update(
                f"M-Pesa refuses this amount to this phone for {countdown(left)} more (until "
                f"{local_time(not_before)}); another phone (a) can be sent now"
            )
        elif left and not_before is not None:
            wait.update(f"Safe to try again in {countdown(left)} (at {local_time(not_before)})")
        else:
            wait.update("Checking whether it is safe to try again…")

    def clock_moved(self, now: datetime) -> None:
        self._render_wait()
        self._render_explained()
        if self.wait_seconds() == 0 and not self._asked_after_wait:
            # The wait is over: the service decides whether a retry is allowed now.
            self._asked_after_wait = True
            self._refresh()

    # -- events --------------------------------------------------------------------------------

    def _take(self, view: PaymentView) -> None:
        if view.attempt_id != self.view.attempt_id:
            if view.is_paid:
                self.move_to(self.till.screen_for(view))
            return
        if is_stale(view, self.view):
            return
        self.view = view
        self._asked_after_wait = False
        if view.is_paid:
            self.move_to(self.till.screen_for(view))
            return
        self._render_view()
        self._render_explained()
        pressed, self._pressed_while_checking = self._pressed_while_checking, None
        if pressed is not None and not self.checking():
            self.press(pressed)

    @on(PaymentChanged)
    def _changed(self, message: PaymentChanged) -> None:
        if self.watches(message.view):
            self._take(message.view)

    def _retry_sent(self, view: PaymentView) -> None:
        self.move_to(self.till.screen_for(view))

    def _retry_refused(self, error: PaymentError) -> None:
        self.show_notice(refusal_text(error), "error")

    # -- actions -------------------------------------------------------------------------------

    def checking(self) -> bool:
        """The rule's wait is over and the service is being asked whether a retry is allowed."""
        return self.view.retry.block is RetryBlock.WAIT and self.wait_seconds() == 0

    def why_not(self, action: str) -> str:
        """Why the greyed `action` cannot run now, in the cashier's words."""
        if self.busy:
            return "Sending the payment request already; wait for it."
        if self.till.connection.daraja_down:
            return "M-Pesa is offline: retry when its light is green again."
        rule, left = self.view.retry, self.wait_seconds()
        if rule.block is RetryBlock.WAIT and left and rule.not_before is not None:
            return (
                f"Not yet: safe to try again in {countdown(left)} "
                f"(at {local_time(rule.not_before)})."
            )
        return rule.message

    def press(self, action: str) -> None:
        """A retry key: run its action, or say why it cannot run (a greyed key that only
        changed colour left the cashier guessing)."""
        if self.busy:
            return
        if self.checking() and not self.till.connection.daraja_down:
            self._pressed_while_checking = action
            self.show_notice("Checking whether it is safe to try again; one moment…")
            return
        if self.check_action(action, ()):
            getattr(self, f"action_{action}")()
        else:
            self._explained = action
            self.show_notice(self.why_not(action), "warning")

    def _render_explained(self) -> None:
        action = self._explained
        if action is None or self.busy:
            return
        if self.checking() or self.check_action(action, ()):
            self._explained = None
            self.clear_notice()
        else:
            self.show_notice(self.why_not(action), "warning")

    def on_key(self, event: events.Key) -> None:
        # Textual drops the key of a disabled binding silently; the screen answers it instead.
        action = {"r": "retry", "a": "another_phone"}.get(event.key)
        if action is not None and not self.check_action(action, ()):
            event.stop()
            self.press(action)

    def retry_possible(self) -> bool:
        """Per the service's rule: now, or now with the cashier's no-SMS confirmation."""
        rule = self.view.retry
        if rule.allowed_now:
            return True
        return rule.block is RetryBlock.NEEDS_NO_SMS_CONFIRMATION and not self.wait_seconds()

    def other_phone_possible(self) -> bool:
        """A code's own wait (17, "unable to lock subscriber") is about the phone, so another
        phone may be allowed sooner; the service decides when asked."""
        return self.retry_possible() or self.view.retry.block is RetryBlock.WAIT

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "another_phone"):
            possible = self.retry_possible() if action == "retry" else self.other_phone_possible()
            return None if self.till.connection.daraja_down or not possible else True
        if action == "verify_receipt":
            # Hidden on a till without receipt checks (no relay for M-Pesa's answers).
            return self.till.services.receipt_checks is not None
        return True

    def action_verify_receipt(self) -> None:
        checks = self.till.services.receipt_checks
        if self.busy or checks is None:
            return

        def closed(paid: PaymentView | None) -> None:
            if paid is not None:
                self._take(paid)

        self.app.push_screen(VerifyReceiptScreen(checks, self.view), closed)

    def action_retry(self) -> None:
        if self.busy or not self.retry_possible():
            return
        if self.view.retry.needs_no_sms_confirmation:

            def confirmed(no_sms: bool | None) -> None:
                if no_sms:
                    self._start_retry(customer_got_no_sms=True)
                elif no_sms is False:
                    self._report_sms()

            self.app.push_screen(ConfirmNoSmsScreen(self.view), confirmed)
        else:
            self._start_retry(customer_got_no_sms=False)

    def action_another_phone(self) -> None:
        if self.busy or not self.other_phone_possible():
            return
        view = self.view
        if view.retry.needs_no_sms_confirmation:

            def confirmed(no_sms: bool | None) -> None:
                if no_sms:
                    self.move_to(
                        PhoneScreen(
                            view.sale_ref, view.amount, retry_of=view, customer_got_no_sms=True
                        )
                    )
                elif no_sms is False:
                    self._report_sms()

            self.app.push_screen(ConfirmNoSmsScreen(view), confirmed)
        else:
            self.move_to(PhoneScreen(view.sale_ref, view.amount, retry_of=view))

    def action_cancel_sale(self) -> None:
        if self.busy:
            return
        self.till.finish_sale(f"Sale {self.view.sale_ref} was not paid by M-Pesa.")

    def _start_retry(self, *, customer_got_no_sms: bool) -> None:
        self._explained = None
        retry = self.till.services.payments.retry
        self.call_service(
            partial(retry, self.view.sale_ref, customer_got_no_sms=customer_got_no_sms),
            self._retry_sent,
            "sending the payment request again",
            name="retry",
            refusals=(PaymentError,),
            refused=self._retry_refused,
            failed="The prompt was not sent. Try again.",
            working="Sending the payment request again…",
        )

    def _report_sms(self) -> None:
        """ "Got an SMS": the money may have moved, so the attempt goes to a manager."""
        payments = self.till.services.payments
        self.call_service(
            partial(payments.report_customer_sms, self.view.attempt_id),
            self._take,
            "recording the customer's SMS",
            name="report",
            failed="Not recorded; call the manager.",
            waits=False,
        )

    def _refresh(self) -> None:
        self.call_service(
            partial(self.till.services.payments.get, self.view.attempt_id),
            self._take,
            "refreshing the retry rule",
            name="refresh",
            waits=False,
        )
