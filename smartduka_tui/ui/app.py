"""The cashier app and its one factory, `make_app(settings, services)`.

The app owns the state every screen shows (the clock's `now`, the connection state, the number
of attempts awaiting an outcome) and bridges the engine's and the connection source's plain
listeners onto its message loop. Screens hold no business logic: they call the payment service
from workers and render the views it returns.

The console script starts the app before the till is open (`make_app()` with no services): the
checkout paints and takes the cashier's digits while the engine, its store and the network
clients load, then `open_till` hands them over. Keys the checkout cannot take yet (Enter, a
function key, and every key after one of those) are held in order and replayed then.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Input

from smartduka_tui.connectivity import ConnectionState
from smartduka_tui.ui.events import ConnectionChanged, PaymentChanged
from smartduka_tui.ui.extensions import ScreenCommand
from smartduka_tui.ui.screens.base import SaleScreen, TillScreen
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.help import HelpScreen
from smartduka_tui.ui.screens.manager_menu import ManagerMenuScreen
from smartduka_tui.ui.screens.quit import ConfirmQuitScreen, waiting_words
from smartduka_tui.ui.services import AppServices, UiOptions

if TYPE_CHECKING:
    from rich.console import RenderableType

    # The payment modules (pydantic models, the store's records) and the sale screens load
    # after the checkout's first paint: imported where they are first used.
    from smartduka_tui.config import Settings
    from smartduka_tui.payments.api import PaymentView
    from smartduka_tui.printing import PrinterStatus
    from smartduka_tui.ui.printer import PrinterWatch

log = logging.getLogger(__name__)
T = TypeVar("T")

LATEST_KEPT = 256
# The editing keys a field handles itself (Backspace, the arrows...): a starting checkout lets
# them through with the digits. Enter is the checkout's Pay, which needs the till.
FIELD_KEYS = frozenset(
    key
    for binding in Input.BINDINGS
    if isinstance(binding, Binding)
    for key in binding.key.split(",")
) - {"enter"}
HERE = Path(__file__).parent
FIRST_STYLESHEETS = (HERE / "app.tcss", HERE / "screens" / "checkout.tcss")


def later_stylesheets() -> list[Path]:
    """Every other screen's stylesheet (found when the till opens, not at import: the listing
    is no part of the first paint)."""
    found = (*(HERE / "screens").glob("*.tcss"), *(HERE / "manager").glob("*.tcss"))
    return sorted(path for path in found if path not in FIRST_STYLESHEETS)


THEME = Theme(
    name="smartduka",
    primary="#2FA84F",
    secondary="#1E88C7",
    accent="#F2B705",
    warning="#F2A104",
    error="#E5484D",
    success="#3DD68C",
    foreground="#E8ECEF",
    background="#101416",
    surface="#182024",
    panel="#22303A",
    dark=True,
)
"""M-Pesa green on a dark counter-friendly background. Screens use only its variables."""


def plain_failure_message(log_path: Path | None) -> str:
    """What the cashier reads when the app has to stop: no traceback, what to do next."""
    where = f" The details are in {log_path}." if log_path else ""
    return (
        "SmartDuka Till stopped after an unexpected problem." + where + "\n"
        "No payment is lost: every attempt is saved before it is sent. Start the till again to "
        "see payments in progress."
    )


class TillOpened(Message):
    """The till behind a starting app is open: its settings and services (`open_till`)."""

    def __init__(self, settings: Settings, services: AppServices) -> None:
        super().__init__()
        self.settings = settings
        self.services = services


class SmartDukaApp(App[int]):
    """The till's cashier app."""

    TITLE = "SmartDuka Till"
    # Only the checkout's stylesheets before the first paint: every rule read costs each
    # widget styled, and that is most of a start. The other screens' are read once when the
    # till opens (`_read_later_stylesheets`): Textual would otherwise parse a screen's CSS_PATH
    # the first time it is shown and restyle the whole app, a visible pause mid-sale.
    CSS_PATH: ClassVar[list[str | PurePath]] = list(FIRST_STYLESHEETS)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f1",
            "help",
            "Help",
            id="app.help",
            tooltip="Keys, how a sale goes, and (in the demo) the test phone numbers",
        ),
        Binding(
            "f2",
            "sales",
            "Sales",
            id="app.sales",
            tooltip="Today's sales and payments still waiting: reopen one",
        ),
        Binding(
            "f9",
            "manager",
            "Manager",
            id="app.manager",
            tooltip="Manager screens: problem payments, settings, audit log",
            # Not in the footer, which 80 columns fill with the sale's own keys; F1 and the
            # command palette list it.
            show=False,
        ),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit",
            priority=True,
            show=False,
            tooltip="Close the till (asks first while payments wait for M-Pesa; they are kept "
            "and checked on restart)",
        ),
    ]

    now: var[datetime] = var(datetime.min)
    """The injectable clock's time at the last tick; countdowns watch it."""
    connection: var[ConnectionState] = var(ConnectionState())
    awaiting: var[int] = var(0)
    """How many of this till's attempts are live (awaiting an outcome)."""

    def __init__(
        self,
        settings: Settings | None,
        services: AppServices | None,
        options: UiOptions,
        extensions: Sequence[ScreenCommand],
    ) -> None:
        super().__init__()
        # Before the app runs, so that the theme is applied while there is nothing to restyle:
        # set from on_mount, it restyled every widget a second time (a fifth of the start).
        self.register_theme(THEME)
        self.theme = THEME.name
        self._settings = settings
        self._services = services
        self.options = options
        self.extensions = tuple(extensions)
        self.checkout = CheckoutScreen()
        self.painted = asyncio.Event()
        """Set once the checkout's first frame is drawn: the console script then opens the till."""
        self._when_closing: list[Callable[[], None]] = []
        self._told_to_exit = False
        self._held_keys: list[events.Key] = []
        self._starting = services is None
        """Until the till is open and its checkout ready for a sale, keys may be held."""
        self._unsubscribe: list[Callable[[], None]] = []
        self.latest: OrderedDict[str, PaymentView] = OrderedDict()
        """The newest view the engine reported for each recent attempt (screens that open
        after a change catch up from here)."""
        if services is not None:
            self.set_reactive(SmartDukaApp.now, services.clock.now())
            self.set_reactive(SmartDukaApp.connection, services.connection.current())
        self._service_context = contextvars.copy_context()
        self._up = False
        self._exit_when_ready: int | None = None
        self._left_waiting: tuple[int, str] | None = None
        """The start-up notice on the checkout (how many it names, its words) while shown."""
        self.printer: PrinterWatch | None = None
        """The receipt printer's state, once the till is open and only if it has receipts."""
        if services is not None:
            self._watch_printer(services)

    # -- the till behind the app -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the till is open (always, unless the app was started before it)."""
        return self._services is not None

    @property
    def services(self) -> AppServices:
        if self._services is None:
            raise RuntimeError("the till is not open yet")
        return self._services

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("the till is not open yet")
        return self._settings

    def _watch_printer(self, services: AppServices) -> None:
        if services.receipts is not None:
            # The printing modules load with the till, behind the painted checkout.
            from smartduka_tui.ui.printer import PrinterWatch

            self.printer = PrinterWatch(self, services.receipts)

    async def load_behind(self, load: Callable[[], object]) -> None:
        """Run `load` (the till's imports) on a thread while the painted checkout takes keys.

        The imports are most of a start, and run on the event loop they held every key typed
        meanwhile until they were done. CPython imports safely from any thread and switches
        back to the loop every few milliseconds, so the checkout answers as they load. Only
        imports go there: widgets, screens and the app are touched on the loop alone."""
        await asyncio.to_thread(load)

    def open_till(self, settings: Settings, services: AppServices) -> None:
        """Hand a starting app its till (callable from outside the app's message loop)."""
        self.post_message(TillOpened(settings, services))

    async def call_service(self, call: Awaitable[T]) -> T:
        """Await a service call in the app's own context instead of the calling worker's.

        Whatever a call schedules (its network timeouts' timers, the engine's tasks) copies the
        context it runs in. A screen's worker context holds the worker, which holds the screen,
        and asyncio keeps a cancelled timer (and so its context) until the time it was set
        for: a closed screen would stay in memory that long. Cancelling the caller cancels the
        call, as awaiting it directly would.
        """

        async def run() -> T:
            return await call

        return await asyncio.create_task(run(), context=self._service_context)

    # -- life cycle ----------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        # The checkout is the first screen itself, not pushed over Textual's blank default
        # one: that screen cost a compose, a layout and a screen switch before the first paint.
        # Its stylesheet is the app's (FIRST_STYLESHEETS), so it is styled as a pushed one.
        return self.checkout

    @on(TillOpened)
    async def _till_opened(self, message: TillOpened) -> None:
        services = message.services
        self._settings, self._services = message.settings, services
        self._watch_printer(services)
        self.now = services.clock.now()
        self._serve_till()
        self._read_later_stylesheets()
        # The held keys may pay the sale: only once it has its reference.
        await self.checkout.till_opened()
        held, self._held_keys = self._held_keys, []
        self._starting = False
        # Posted in one go, ahead of any key the terminal sends from now on.
        for key in held:
            self.post_message(events.Key(key.key, key.character))

    async def on_event(self, event: events.Event) -> None:
        if self._holds(event):
            return
        await super().on_event(event)

    def _holds(self, event: events.Event) -> bool:
        """Hold a key the starting checkout cannot take yet (the focused field takes what it
        types and edits with), and every key after a held one, so their order stays."""
        if not self._starting or not isinstance(event, events.Key) or event.is_forwarded:
            return False
        for_the_field = event.is_printable or event.key in FIELD_KEYS
        if not self._held_keys and for_the_field and isinstance(self.focused, Input):
            return False
        self._held_keys.append(event)
        return True

    def _read_later_stylesheets(self) -> None:
        """Every other screen's stylesheet, read and applied in one go (as Textual reads a
        pushed screen's own), so that no screen restyles the app when it first shows."""
        for path in later_stylesheets():
            if not self.stylesheet.has_source(str(path), ""):
                self.stylesheet.read(path)
        self.stylesheet.reparse()
        self.stylesheet.update(self)

    def _serve_till(self) -> None:
        """Follow the open till: its engine's changes, its connections, its clock."""
        self._unsubscribe.append(self.services.payments.add_listener(self._engine_changed))
        self._unsubscribe.append(self.services.connection.subscribe(self._connection_changed))
        # The state may have moved between construction and subscription.
        self._connection_changed(self.services.connection.current())
        self._tick()
        self.refresh_awaiting()
        self._pending_at_start()
        if self.printer is not None:
            self.printer.start()

    async def on_ready(self) -> None:
        # Textual says Ready once the first screen (the checkout) is mounted and laid out.
        self._up = True
        if self._exit_when_ready is not None:
            self.exit(return_code=self._exit_when_ready)
            return
        if self.is_open:
            self._serve_till()
            self._read_later_stylesheets()
        await self._take_early_keys()
        self.call_after_refresh(self.painted.set)

    async def _take_early_keys(self) -> None:
        """Keys the terminal sent before the checkout had mounted were held (there was no field
        to take them): the ones its field takes go to it now, the rest stay held for the till.
        Handled here, inside this handler, so that they come before any key still queued."""
        held, self._held_keys = self._held_keys, []
        for key in held:
            again = events.Key(key.key, key.character)
            if not self._holds(again):
                await super().on_event(again)

    def exit(
        self,
        result: int | None = None,
        return_code: int = 0,
        message: RenderableType | None = None,
    ) -> None:
        if not self._told_to_exit:
            self._told_to_exit = True
            for callback in self._when_closing:
                callback()
        super().exit(result, return_code, message)

    def when_closing(self, callback: Callable[[], None]) -> None:
        """Call `callback` (once, at once, on the app's thread) when the app is told to exit:
        the cashier quit, or a signal. The demo stops its servers then, while the app closes
        (the app's own closing keeps the event loop busy for a while)."""
        self._when_closing.append(callback)

    def stop(self, return_code: int) -> None:
        """End as the cashier quitting would (a signal's handler calls this). Before the first
        screen is up, the exit waits for it: an exit while that screen mounts would take its
        widgets away under its own mount handler."""
        if self._up:
            self.exit(return_code=return_code)
        else:
            self._exit_when_ready = return_code

    def on_unmount(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    # -- the state every screen shows ------------------------------------------------------------
    # Pushed to the screens from here rather than watched by their widgets: a watcher on the
    # app keeps a closed screen alive until the watched value next changes.

    def _till_screens(self) -> Iterator[TillScreen]:
        return (screen for screen in self.screen_stack if isinstance(screen, TillScreen))

    def watch_now(self, now: datetime) -> None:
        for screen in self._till_screens():
            if screen.is_mounted:
                screen.clock_moved(now)

    # Screens still mounting are told too: a status bar that has mounted (and read the old
    # value) inside a screen that has not finished mounting would otherwise keep the old count
    # or light until the next change. A bar not composed yet reads the new value when it mounts.

    def watch_connection(self, state: ConnectionState) -> None:
        for screen in self._till_screens():
            screen.show_connection(state)

    def watch_awaiting(self, count: int) -> None:
        for screen in self._till_screens():
            screen.show_awaiting(count)
        self._follow_left_waiting(count)

    def _follow_left_waiting(self, count: int) -> None:
        """The start-up notice names the payments left waiting: as they finish it says how
        many still are, and goes when none is (it must not outlive what it describes)."""
        if self._left_waiting is None:
            return
        named, shown = self._left_waiting
        if not self.checkout.is_mounted or self.checkout.notice_text != shown:
            self._left_waiting = None  # the cashier moved on; another line replaced it
        elif count == 0:
            self.checkout.clear_notice()
            self._left_waiting = None
        elif count < named:
            self._show_left_waiting(count)

    def _show_left_waiting(self, count: int) -> None:
        words = f"{waiting_words(count)} still waiting from before; checking with M-Pesa now (F2)."
        self.checkout.show_notice(words)
        self._left_waiting = (count, words)

    def show_printer(self, status: PrinterStatus) -> None:
        # Screens still mounting too: a status bar reads the status when it mounts, and one
        # that mounted just before this change must not keep the old one until the next.
        for screen in self._till_screens():
            screen.show_printer(status)

    # -- listeners (called outside the message loop: post, never touch state) -----------------

    def _engine_changed(self, view: PaymentView) -> None:
        self.post_message(PaymentChanged(view))

    def _connection_changed(self, state: ConnectionState) -> None:
        self.post_message(ConnectionChanged(state, self.connection))

    # -- handlers (own the state) --------------------------------------------------------------

    @on(PaymentChanged)
    def _forward_payment(self, message: PaymentChanged) -> None:
        from smartduka_tui.ui.freshness import is_stale
        from smartduka_tui.ui.summary import outcome_summary

        view = message.view
        self.refresh_awaiting()
        known = self.latest.get(view.attempt_id)
        if known is not None and is_stale(view, known):
            return
        self.latest[view.attempt_id] = view
        self.latest.move_to_end(view.attempt_id)
        while len(self.latest) > LATEST_KEPT:
            self.latest.popitem(last=False)
        watched = False
        for screen in self.screen_stack:
            if isinstance(screen, SaleScreen) and screen.watches(view):
                screen.post_message(PaymentChanged(view))
                watched = True
        if not watched and not view.is_live:
            summary = outcome_summary(view)
            self.notify(summary.text, title=summary.title, severity=summary.severity, timeout=10)

    @on(ConnectionChanged)
    def _apply_connection(self, message: ConnectionChanged) -> None:
        previous, state = self.connection, message.state
        if state == previous:
            return
        self.connection = state
        for screen in self.screen_stack:
            screen.post_message(ConnectionChanged(state, previous))
            screen.refresh_bindings()
        back = (previous.daraja_down and not state.daraja_down) or (
            previous.relay_down and not state.relay_down
        )
        if back:
            self._reconnected()

    # -- workers (do I/O, post or set reactives) -----------------------------------------------

    @work(group="clock", exclusive=True, exit_on_error=False)
    async def _tick(self) -> None:
        clock, tick = self.services.clock, self.options.tick_s
        while True:
            # Land on whole ticks of the clock so every countdown on screen moves together.
            delay = tick - (clock.now().timestamp() % tick)
            await clock.sleep(delay if delay > 0.01 else tick)
            self.now = clock.now()

    @work(group="awaiting", exclusive=True, exit_on_error=False)
    async def refresh_awaiting(self) -> None:
        """Re-read the number of attempts awaiting an outcome."""
        try:
            self.awaiting = await self.services.payments.awaiting_count()
        except Exception as error:
            self.report_unexpected(error, "counting the payments in progress")

    @work(group="pending-at-start", exclusive=True, exit_on_error=False)
    async def _pending_at_start(self) -> None:
        """Payments left waiting when the till last closed: say so on the checkout (not in a
        passing toast) and have them checked now rather than at the next regular pass."""
        try:
            count = await self.call_service(self.services.payments.awaiting_count())
            if count:
                self._show_left_waiting(count)
                await self.call_service(self.services.payments.on_reconnected())
        except Exception as error:
            self.report_unexpected(error, "checking the payments left waiting")

    @work(group="reconnect", exclusive=True, exit_on_error=False)
    async def _reconnected(self) -> None:
        try:
            await self.services.payments.on_reconnected()
        except Exception as error:
            self.report_unexpected(error, "checking payments after the connection came back")

    # -- what screens call ---------------------------------------------------------------------

    def screen_for(self, view: PaymentView) -> SaleScreen:
        """The screen that shows `view` as it is now."""
        from smartduka_tui.ui.screens.failure import FailureScreen
        from smartduka_tui.ui.screens.success import SuccessScreen
        from smartduka_tui.ui.screens.waiting import WaitingScreen

        if view.is_paid:
            return SuccessScreen(view)
        if view.is_live:
            return WaitingScreen(view)
        return FailureScreen(view)

    def finish_sale(self, notice: str = "", *, new_sale: bool = True) -> None:
        """Leave the sale screens for the checkout, with a new sale unless told otherwise."""
        if new_sale:
            self.checkout.new_sale()
        if notice:
            self.checkout.show_notice(notice)
        while self.screen_stack[-1] is not self.checkout:
            self.pop_screen()

    def report_unexpected(self, error: BaseException, doing: str) -> None:
        """An error no screen expected: a log entry with the details, a plain line on screen."""
        log.error("unexpected error while %s", doing, exc_info=error)
        log_path = self._services.log_path if self._services is not None else None
        where = f" (details in {log_path})" if log_path else ""
        text = f"Something went wrong while {doing}{where}. Nothing was lost; try again."
        screen = self.screen
        if isinstance(screen, TillScreen):
            screen.show_notice(text, "error")
        else:
            self.notify(text, severity="error", timeout=15)

    def _handle_exception(self, error: Exception) -> None:
        """Textual's last resort. Its default paints a traceback; a cashier gets a plain message
        and the details go to the log. The app still stops: a widget whose handler raised no
        longer processes messages, so carrying on could show stale payment states."""
        log.critical("the cashier app stopped on an unexpected error", exc_info=error)
        self._return_code = 1
        if self._exception is None:
            # Pilot tests re-raise it; a real run only prints the plain message.
            self._exception = error
            self._exception_event.set()
        log_path = self._services.log_path if self._services is not None else None
        self.panic(Text(plain_failure_message(log_path)))

    # -- actions and commands ------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Close the till; with payments still waiting for M-Pesa, first say they stay safe
        and ask."""
        if isinstance(self.screen, ConfirmQuitScreen):
            return
        try:
            count = await self.call_service(self.services.payments.awaiting_count())
        except Exception as error:
            self.report_unexpected(error, "counting the payments in progress")
            count = self.awaiting
        if not count:
            self.exit()
            return

        def answered(close: bool | None) -> None:
            if close:
                self.exit()

        self.push_screen(ConfirmQuitScreen(count), answered)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_manager(self) -> None:
        self.push_screen(ManagerMenuScreen(self.available_extensions()))

    def action_sales(self) -> None:
        if self.screen is self.checkout:
            from smartduka_tui.ui.screens.sales import SalesScreen

            self.push_screen(SalesScreen())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_open and action in ("help", "manager", "sales"):
            return None
        if action == "manager":
            return bool(self.available_extensions())
        if action == "sales":
            # From the checkout only: a sale screen on top is already about one sale.
            return self.screen is self.checkout
        return True

    def available_extensions(self) -> list[ScreenCommand]:
        return [command for command in self.extensions if command.available(self)]

    def open_extension(self, command: ScreenCommand) -> None:
        try:
            screen = command.open(self)
        except Exception as error:
            self.report_unexpected(error, f"opening {command.title}")
            return
        self.push_screen(screen)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        if isinstance(screen, TillScreen):
            yield from screen.palette_commands()
        for command in self.available_extensions():
            yield SystemCommand(
                command.title, command.describe(self), partial(self.open_extension, command)
            )
        if screen is self.checkout:
            yield SystemCommand("Sales", "Today's sales; reopen one", self.action_sales)
        yield SystemCommand("Help", "Keys, how a sale goes, test phone numbers", self.action_help)
        yield SystemCommand("Quit", "Close the till", self.action_quit)


def make_app(
    settings: Settings | None = None,
    services: AppServices | None = None,
    *,
    options: UiOptions | None = None,
    extensions: Sequence[ScreenCommand] | None = None,
) -> SmartDukaApp:
    """The one way to build the cashier app: the console script, the demo and tests all use it.
    Without settings and services it starts before its till: see `SmartDukaApp.open_till`."""
    if (settings is None) != (services is None):
        raise TypeError("make_app takes settings and services together, or neither")
    if extensions is None:
        from smartduka_tui.ui.manager import screen_commands

        extensions = screen_commands()
    return SmartDukaApp(settings, services, options or UiOptions(), extensions)
