"""Waiting: the prompt is on its way or on the customer's phone.

A 60-second countdown (the injectable clock's), what is happening in words, and when the attempt
gives up. The end of the countdown is not a failure: the attempt stays live until M-Pesa says
otherwise, so retry and "another phone" stay greyed. The screen moves on the moment the engine
reports a final state (listener -> message -> handler); "stop waiting" leaves the attempt with
the reconciler and starts a new sale.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label, Static

from smartduka_tui.payments.api import PaymentError, PaymentView
from smartduka_tui.ui.events import ConnectionChanged, PaymentChanged
from smartduka_tui.ui.format import countdown, local_time, seconds_left, shillings
from smartduka_tui.ui.freshness import is_stale
from smartduka_tui.ui.screens.base import SaleScreen
from smartduka_tui.ui.summary import PROMPT_TIME_UP, STAGE_WORDS

OFFLINE_NOTE = (
    "The connection dropped: this payment may still complete. "
    "It is checked automatically when the connection is back."
)


WHY_NO_RETRY_YET = (
    "Not yet: this prompt may still be paid. Retry opens when M-Pesa answers; s stops waiting."
)


class WaitingScreen(SaleScreen):
    CSS_PATH = "waiting.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "check_now", "Check now", id="waiting.check", tooltip="Ask M-Pesa now"),
        Binding(
            "s",
            "stop_waiting",
            "Stop waiting",
            id="waiting.stop",
            tooltip="Leave this payment to be checked in the background; start a new sale",
        ),
        Binding(
            "r",
            "retry",
            "Retry",
            id="waiting.retry",
            tooltip="Only once M-Pesa has given a final answer",
        ),
        Binding(
            "a",
            "another_phone",
            "Other phone",
            id="waiting.another_phone",
            tooltip="Only once M-Pesa has given a final answer",
        ),
    ]
    WAITS = frozenset({"check_now", "stop_waiting"})

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view
        self._last_poll: datetime | None = None

    def watches(self, view: PaymentView) -> bool:
        return view.attempt_id == self.view.attempt_id

    def compose_body(self) -> ComposeResult:
        with Vertical(id="waiting-body"):
            yield Label("", id="sale-line")
            yield Static("", id="stage")
            with Horizontal(id="countdown-row"):
                yield Digits("", id="countdown")
                yield Static("", id="countdown-label")
            yield Static("", id="expiry")
            yield Static("", id="message")
            yield Static(OFFLINE_NOTE, id="offline-note")

    def on_mount(self) -> None:
        self._take(self.catch_up(self.view))

    # -- rendering -----------------------------------------------------------------------------

    def _render_view(self) -> None:
        view = self.view
        self.query_one("#sale-line", Label).update(
            f"Sale {view.sale_ref} · {shillings(view.amount)} · {view.phone_masked}"
            f" · attempt {view.attempt_number}"
        )
        self.query_one("#message", Static).update(view.cashier_message)
        self._render_time()
        self._render_connection()
        self.update_bindings()

    def prompt_seconds_left(self) -> int | None:
        if self.view.prompt_deadline is None:
            return None
        return seconds_left(self.view.prompt_deadline, self.till.now)

    def _render_time(self) -> None:
        view, now = self.view, self.till.now
        left = self.prompt_seconds_left()
        stage_words = STAGE_WORDS.get(view.stage, view.cashier_message)
        if left == 0:
            stage_words = PROMPT_TIME_UP
        self.query_one("#stage", Static).update(stage_words)
        digits = self.query_one("#countdown", Digits)
        label = self.query_one("#countdown-label", Static)
        if left is None:
            digits.update("-:--")
            label.update("Prompt not on the phone yet")
        else:
            digits.update(countdown(left))
            label.update(
                "left for the customer to enter their PIN"
                if left
                else "Prompt time is up; the answer can still come"
            )
        digits.set_class(left == 0, "-over")
        expiry_left = seconds_left(view.expires_at, now)
        self.query_one("#expiry", Static).update(
            f"If M-Pesa never answers, this attempt ends at {local_time(view.expires_at)}"
            f" (in {countdown(expiry_left)})."
        )

    def _render_connection(self) -> None:
        self.query_one("#offline-note", Static).set_class(self.till.connection.offline, "-shown")

    def clock_moved(self, now: datetime) -> None:
        self._render_time()
        refresh_s = self.till.settings.timings.ui_refresh_s
        if self._last_poll is None or (now - self._last_poll).total_seconds() >= refresh_s:
            self._last_poll = now
            self._refresh_view()

    # -- events --------------------------------------------------------------------------------

    def _take(self, view: PaymentView) -> None:
        if is_stale(view, self.view):
            return
        self.view = view
        if view.is_live:
            self._render_view()
        else:
            self.move_to(self.till.screen_for(view))

    @on(PaymentChanged)
    def _changed(self, message: PaymentChanged) -> None:
        if self.watches(message.view):
            self._take(message.view)

    def _stopped(self, view: PaymentView) -> None:
        if not view.is_live:
            self._take(view)
            return
        self.till.finish_sale(
            f"Sale {view.sale_ref} ({shillings(view.amount)}, {view.phone_masked}) is being "
            "checked in the background; its outcome will show here when M-Pesa answers."
        )

    @on(ConnectionChanged)
    def _connection(self, message: ConnectionChanged) -> None:
        self._render_connection()
        if message.previous.offline and not message.state.offline:
            # Back online: the callback may have been missed while we were away.
            self._check(quiet=True)

    # -- actions -------------------------------------------------------------------------------

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "another_phone"):
            return None if self.view.is_live else True
        return True

    def action_check_now(self) -> None:
        if not self.busy:
            self._check(quiet=False)

    def action_stop_waiting(self) -> None:
        if not self.busy:
            self.call_service(
                partial(self.till.services.payments.stop_waiting, self.view.attempt_id),
                self._stopped,
                "handing the payment to the background check",
                name="stop",
                refusals=(PaymentError,),
                failed="Could not stop waiting; try again.",
            )

    def action_retry(self) -> None:
        """Greyed while the attempt is live (see `on_key`); the failure screen owns retries."""

    def action_another_phone(self) -> None:
        """Greyed while the attempt is live (see `on_key`); the failure screen owns retries."""

    def on_key(self, event: events.Key) -> None:
        # Textual drops the key of a greyed binding silently: a cashier pressing r or a while
        # the prompt is live was left guessing (issue #12 case 6). Say why, and what to do.
        if event.key in ("r", "a") and not self.check_action("retry", ()):
            event.stop()
            self.show_notice(WHY_NO_RETRY_YET, "warning")

    # -- service calls -------------------------------------------------------------------------

    def _check(self, quiet: bool) -> None:
        """Ask M-Pesa now: the cashier's "check now", or a quiet check once back online (it
        greys nothing and says no refusal)."""

        def checked(view: PaymentView) -> None:
            if not quiet:
                self.clear_notice()
            self._take(view)

        self.call_service(
            partial(self.till.services.payments.check_now, self.view.attempt_id),
            checked,
            "checking the payment with M-Pesa",
            name="check",
            refusals=(PaymentError,),
            refused=None if not quiet else self._quietly_refused,
            failed="Could not check now; it is checked again soon.",
            waits=not quiet,
            working=None if quiet else "Asking M-Pesa…",
        )

    def _quietly_refused(self, error: PaymentError) -> None:
        """A quiet check's refusal: the regular checks carry on."""

    def _refresh_view(self) -> None:
        def refreshed(view: PaymentView) -> None:
            if view != self.view:
                self._take(view)

        self.call_service(
            partial(self.till.services.payments.get, self.view.attempt_id),
            refreshed,
            "refreshing the payment status",
            name="refresh",
            waits=False,
        )
