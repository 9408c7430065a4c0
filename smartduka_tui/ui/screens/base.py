"""The frame every cashier screen shares, and the rules for moving between sale screens.

`ServiceCalls` is the one way a screen (or a dialog) calls a service. `TillScreen` composes the
status bar, the offline banner, the screen's own body, a notice line and the footer, and turns
the screen's enabled bindings into command-palette commands (so the palette always knows the
current screen). `SaleScreen` is a screen about one sale: it leaves for
the next screen only while it is the one on top, so a help or confirmation modal is never
replaced under the cashier's eyes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import getters
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from smartduka_tui.connectivity import ConnectionState
from smartduka_tui.ui.events import ServiceAnswered, ServiceRefused
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.inputs import TYPING_ORDER_BINDINGS
from smartduka_tui.ui.widgets.notice import Notice, Severity
from smartduka_tui.ui.widgets.offline_banner import OfflineBanner
from smartduka_tui.ui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from smartduka_tui.payments.api import PaymentView
    from smartduka_tui.printing import PrinterStatus
    from smartduka_tui.ui.app import SmartDukaApp

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Pending:
    """What to do with the answer of the call in flight under one name."""

    ticket: int
    done: Callable[[Any], object]
    refused: Callable[[Any], object] | None
    failed: Callable[[], object] | str | None
    waits: bool


class ServiceCalls:
    """Mixin for screens and dialogs: one way to call a service.

    The call runs on a worker through `app.call_service`; its outcome comes back on the message
    loop as a `ServiceAnswered` or `ServiceRefused` naming the call, and the handlers below
    route it to the callables given with the call (kept here, not carried in the message).
    A second call under the same name replaces the first (an exclusive worker group), and an
    answer to the replaced one is dropped.
    """

    WAITS: ClassVar[frozenset[str]] = frozenset()
    """The actions that call a service: greyed while a call is in flight."""
    REFUSALS: ClassVar[tuple[type[Exception], ...]] = ()
    """The errors this screen's calls expect by default: refusals, shown, not reported."""
    busy = False
    """A service call is in flight: the actions in WAITS wait for its answer (greyed)."""
    _pending: dict[str, _Pending]
    _tickets = 0

    @property
    def till(self) -> SmartDukaApp:
        return cast("SmartDukaApp", cast("Screen[Any]", self).app)

    def call_service(
        self,
        call: Callable[[], Awaitable[T]],
        done: Callable[[T], object],
        doing: str,
        *,
        name: str = "service",
        refusals: tuple[type[Exception], ...] | None = None,
        refused: Callable[[Any], object] | None = None,
        failed: Callable[[], object] | str | None = None,
        waits: bool = True,
        working: str | None = None,
    ) -> None:
        """Call `call()` on a worker. Its result goes to `done`; an error in `refusals` (by
        default REFUSALS) to `refused` (by default `show_refusal`); anything else is reported
        once in plain words as "Something went wrong while {doing}", then `failed` runs (words
        instead of a callable go to the notice line, as an error). While it runs (unless
        `waits` is off) the keys in WAITS are greyed, and `working` (if given) says on the
        notice line what is happening."""
        self._tickets += 1
        if not hasattr(self, "_pending"):
            self._pending = {}  # a mixin has no __init__ of its own to make it in
        replaced = self._pending.get(name)
        self._pending[name] = _Pending(self._tickets, done, refused, failed, waits)
        if working is not None:
            self.show_notice(working)
        if waits or (replaced is not None and replaced.waits):
            self._follow_waits()
            self.update_bindings()
        expected = self.REFUSALS if refusals is None else refusals
        cast("Screen[Any]", self).run_worker(
            self._serve(name, self._tickets, call, expected, doing),
            group=name,
            exclusive=True,
            exit_on_error=False,
        )

    async def _serve(
        self,
        name: str,
        ticket: int,
        call: Callable[[], Awaitable[T]],
        refusals: tuple[type[Exception], ...],
        doing: str,
    ) -> None:
        screen = cast("Screen[Any]", self)
        try:
            result = await self.till.call_service(call())
        except refusals as error:
            screen.post_message(ServiceRefused(name, ticket, error))
        except Exception as error:
            self.till.report_unexpected(error, doing)
            screen.post_message(ServiceRefused(name, ticket, None))
        else:
            screen.post_message(ServiceAnswered(name, ticket, result))

    # Named handlers (not @on): Textual finds these on a mixin through the MRO.
    def on_service_answered(self, message: ServiceAnswered[Any]) -> None:
        pending = self._answered(message.name, message.ticket)
        if pending is not None and not self._leaving():
            pending.done(message.result)
            self._after_answer()

    def on_service_refused(self, message: ServiceRefused) -> None:
        pending = self._answered(message.name, message.ticket)
        if pending is None or self._leaving():
            return
        if message.error is not None:
            self.route_refusal(message.error, pending.refused)
        elif isinstance(pending.failed, str):
            self.show_notice(pending.failed, "error")
        elif pending.failed is not None:
            pending.failed()
        self._after_answer()

    def _answered(self, name: str, ticket: int) -> _Pending | None:
        """The call this answer is for, now answered; None for a replaced call's answer."""
        pending = self._pending.get(name)
        if pending is None or pending.ticket != ticket:
            return None
        del self._pending[name]
        if pending.waits:
            self._follow_waits()
        return pending

    def _leaving(self) -> bool:
        """The screen is on its way out (popped, or the app closing): its widgets may be gone
        already, so an answer arriving now has nowhere to go and is dropped. (An error was
        reported when it happened; the call's own handlers would only redraw this screen.)"""
        screen = cast("Screen[Any]", self)
        return screen._closing or screen._closed or screen._pruning or not screen.is_attached

    def _follow_waits(self) -> None:
        self.busy = any(pending.waits for pending in self._pending.values())

    def _after_answer(self) -> None:
        if cast("Screen[Any]", self).is_attached:
            self.update_bindings()

    def route_refusal(self, error: Exception, refused: Callable[[Any], object] | None) -> None:
        """A refusal goes to the call's `refused`, or to `show_refusal`."""
        (refused or self.show_refusal)(error)

    def show_refusal(self, error: Any) -> None:
        """A refusal the call named no handler for: its words, on the notice line."""
        self.show_notice(error.message, "error")

    def show_notice(self, text: str, severity: Severity = "information") -> None:
        """Dialogs without a notice line pass their own `refused` and no `working`."""
        raise NotImplementedError

    def update_bindings(self) -> None:
        """Dialogs grey nothing while they wait."""


class TillScreen(ServiceCalls, Screen[None]):
    """Status bar, offline banner, body, notice, footer."""

    BINDINGS: ClassVar[list[BindingType]] = list(TYPING_ORDER_BINDINGS)
    FOOTER_PALETTE: ClassVar[bool] = True
    """Whether the footer ends with "^p palette": screens whose own keys fill 80 columns (the
    manager's) leave it out; Ctrl+P still opens the palette, and F1 says so."""

    notice_line = getters.query_one("#notice", Notice)

    def __init__(self) -> None:
        super().__init__()
        self._binding_states: tuple[bool | None, ...] | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield OfflineBanner()
        yield from self.compose_body()
        yield Notice(id="notice")
        yield TillFooter(show_command_palette=self.FOOTER_PALETTE)

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        return iter(())

    def show_notice(self, text: str, severity: Severity = "information") -> None:
        self.notice_line.show(text, severity)

    def clear_notice(self) -> None:
        self.notice_line.clear()

    @property
    def notice_text(self) -> str:
        return self.notice_line.text

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys typed ahead of a screen change reach the new screen before it has mounted; they
        # are ignored rather than run against a half-built screen.
        if not self.is_mounted:
            return None
        return self.action_state(action, parameters)

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Whether `action` can run now: True, None (shown greyed) or False (hidden). Every
        screen greys its keys the same way: what the screen needs goes in `ready`, and while a
        service call is in flight (`busy`) the actions in WAITS are greyed too."""
        state = self.ready(action, parameters)
        if state is True and self.busy and action in self.WAITS:
            return None
        return state

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Whether `action` could run, a call in flight aside: True, None (greyed) or False
        (not offered at all)."""
        return True

    def show_connection(self, state: ConnectionState) -> None:
        """The app's connection state changed: the status bar and the banner follow."""
        for bar in self.query(StatusBar):
            bar.show_connection(state)
        for banner in self.query(OfflineBanner):
            banner.show(state)

    def show_printer(self, status: PrinterStatus) -> None:
        for bar in self.query(StatusBar):
            bar.show_printer(status)

    def show_awaiting(self, count: int) -> None:
        for bar in self.query(StatusBar):
            bar.show_awaiting(count)

    def clock_moved(self, now: datetime) -> None:
        """The clock ticked: screens with countdowns redraw them."""

    def update_bindings(self) -> None:
        """Refresh the footer only when a key became enabled or disabled: the footer rebuilds
        its keys on every refresh, which is too much work for every keystroke."""
        states = tuple(
            self.check_action(binding.action.partition("(")[0], ())
            for binding in self.own_bindings()
        )
        if states != self._binding_states:
            self._binding_states = states
            self.refresh_bindings()

    def own_bindings(self) -> Iterator[Binding]:
        """This screen's bindings, in declaration order."""
        for _key, binding in self._bindings:
            yield binding

    def palette_commands(self) -> Iterable[SystemCommand]:
        """A command for each of this screen's shown bindings that is enabled right now."""
        for binding in self.own_bindings():
            if not binding.show or not binding.description:
                continue
            action, _, _ = binding.action.partition("(")
            if self.check_action(action, ()) is not True:
                continue
            yield SystemCommand(
                binding.description,
                binding.tooltip or f"{binding.description} ({self.app.get_key_display(binding)})",
                partial(self.app.run_action, binding.action, self),
            )


class SaleScreen(TillScreen):
    """A screen about one sale. Moves on (replaces itself) only while it is on top."""

    def __init__(self) -> None:
        super().__init__()
        self._next: Screen[Any] | None = None
        self._left = False

    def catch_up(self, view: PaymentView) -> PaymentView:
        """`view`, or the newer one the app heard about while this screen was on its way."""
        from smartduka_tui.ui.freshness import newest

        return newest(view, self.till.latest.get(view.attempt_id))

    def watches(self, view: PaymentView) -> bool:
        """Whether a change to `view` concerns this screen (the app forwards it if so)."""
        return False

    def move_to(self, screen: Screen[Any]) -> None:
        """Replace this screen with `screen` now, or as soon as the modal above it closes.

        Only the first call counts: a listener event and a poll can both report the same final
        state, and the second must not stack a duplicate screen on top of the first.
        """
        if self._left:
            return
        self._left = True
        if self.is_current:
            self.app.switch_screen(screen)
        else:
            self._next = screen

    def on_screen_resume(self) -> None:
        if self._next is not None:
            screen, self._next = self._next, None
            self.app.switch_screen(screen)

    def back_to_checkout(self) -> None:
        """Close this sale screen; the checkout below starts a new sale or keeps the current one
        as the caller told it."""
        if self.is_current:
            self.app.pop_screen()
