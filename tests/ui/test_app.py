"""The app around the sale screens: connection state, help, command palette, extension screens,
items, and what a cashier sees when something unexpected breaks."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import socket
import weakref
from typing import Any, ClassVar

import pytest
from rich.console import Console
from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Label, Static
from textual.widgets._footer import FooterKey

from smartduka_tui.connectivity import ConnectionBoard, ConnectionState, Reachability
from smartduka_tui.payments.api import Stage
from smartduka_tui.ui.app import SmartDukaApp, make_app, plain_failure_message
from smartduka_tui.ui.events import ConnectionChanged, PaymentChanged
from smartduka_tui.ui.extensions import ScreenCommand
from smartduka_tui.ui.screens.base import SaleScreen, TillScreen
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.help import HelpScreen
from smartduka_tui.ui.screens.item import ItemScreen
from smartduka_tui.ui.screens.manager_menu import ManagerMenuScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.waiting import OFFLINE_NOTE, WaitingScreen
from smartduka_tui.ui.services import HelpSection, UiOptions
from smartduka_tui.ui.widgets.footer import TillFooter
from smartduka_tui.ui.widgets.offline_banner import DARAJA_DOWN, RELAY_DOWN, OfflineBanner
from smartduka_tui.ui.widgets.status_bar import StatusBar
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.ui.conftest import ONLINE, SIZE, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import answer, put, script, start_sale, text_of

QUERY_PATH = "/mpesa/stkpushquery/v1/query"


def banner(app: SmartDukaApp) -> OfflineBanner:
    return app.screen.query_one(OfflineBanner)


def titles(app: SmartDukaApp) -> list[str]:
    return [command.title for command in app.get_system_commands(app.screen)]


# ------------------------------------------------------------------------------ connection


async def test_daraja_down_shows_a_banner_and_pauses_new_payments(
    shop_till: TillHarness,
) -> None:
    board = ConnectionBoard(ONLINE)
    app = build_app(shop_till, board=board)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await put(pilot, "#total", "100")
        assert checkout.check_action("pay", ()) is True
        assert not banner(app).display
        board.set(daraja=Reachability.UNREACHABLE)
        # Pushed, not polled: one turn of the message loop and the banner is up.
        await pilot.pause()
        assert banner(app).display
        assert str(banner(app).content) == DARAJA_DOWN
        assert "✖ M-Pesa OFFLINE" in str(checkout.query_one("#status-daraja", Label).content)
        assert checkout.check_action("pay", ()) is None
        await pilot.press("enter")
        assert app.screen is checkout
        board.set(daraja=Reachability.REACHABLE)
        await pilot.pause()
        assert not banner(app).display
        assert checkout.check_action("pay", ()) is True
        await pilot.press("enter")
        await wait_for_screen(pilot, PhoneScreen)


async def test_relay_down_during_the_wait_then_checked_on_reconnect(
    shop_till: TillHarness,
) -> None:
    """The relay goes down while the customer pays; the callback is lost with it. The screen
    says the payment may still complete, and when the relay is back the attempt is checked at
    once: M-Pesa's query says paid."""
    phone = await script(shop_till, unique_phone(), drop_callback=True)
    board = ConnectionBoard(ONLINE)
    app = build_app(shop_till, board=board)
    async with app.run_test(size=SIZE) as pilot:
        waiting = await start_sale(pilot, 70, phone)
        note = waiting.query_one("#offline-note", Static)
        assert not note.has_class("-shown")
        board.set(relay=Reachability.UNREACHABLE)
        await pilot.pause()
        assert str(banner(app).content) == RELAY_DOWN
        assert note.has_class("-shown") and str(note.content) == OFFLINE_NOTE
        assert waiting.check_action("retry", ()) is None
        await answer(shop_till)
        queries_before = len(
            [r for r in await shop_till.sim.requests(phone=phone) if r.path == QUERY_PATH]
        )
        board.set(relay=Reachability.REACHABLE)
        success: Any = await wait_for_screen(pilot, SuccessScreen)
        assert success.view.stage is Stage.PAID_RECEIPT_TO_FOLLOW
        queries = [r for r in await shop_till.sim.requests(phone=phone) if r.path == QUERY_PATH]
        assert len(queries) > queries_before


class _ChangesWhileMounting(Label):
    """Holds its screen's mount open until the status bar has mounted (and read the app's
    state), then moves that state, as a worker finishing in that window does."""

    async def on_mount(self) -> None:
        bar = self.screen.query_one(StatusBar)
        for _ in range(1000):
            if bar.is_mounted:
                break
            await asyncio.sleep(0)
        assert bar.is_mounted and not self.screen.is_mounted
        app = self.app
        assert isinstance(app, SmartDukaApp)
        app.awaiting = 2
        app.connection = ConnectionState(daraja=Reachability.UNREACHABLE)


class _MountingScreen(TillScreen):
    def compose_body(self) -> ComposeResult:
        yield _ChangesWhileMounting("")


async def test_a_change_while_a_screen_mounts_reaches_its_status_bar() -> None:
    """Found by a flaky Pilot test: the FailureScreen's bar read "1 awaiting outcome" as it
    mounted, the count went to 0 before the screen had finished mounting, and the app told
    only mounted screens, so the bar showed 1 (and its warning colour) for good."""
    app = make_app(options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await app.painted.wait()
        assert app.awaiting == 0
        screen = _MountingScreen()
        await app.push_screen(screen)
        await pilot.pause()
        awaiting = screen.query_one("#status-awaiting", Label)
        assert str(awaiting.content) == "2 awaiting outcome" and awaiting.has_class("-some")
        daraja = screen.query_one("#status-daraja", Label)
        assert str(daraja.content) == "✖ M-Pesa OFFLINE" and daraja.has_class("-down")


async def test_daraja_unreachable_at_push_time_is_a_plain_refusal(
    shop_till: TillHarness,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    daraja = shop_till.settings.daraja.model_copy(
        update={"base_url": f"http://127.0.0.1:{closed_port}"}
    )
    shop_till.settings = shop_till.settings.model_copy(update={"daraja": daraja})
    await shop_till.restart()
    phone = unique_phone()
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        ref = checkout.sale_ref
        await put(pilot, "#total", "55")
        await pilot.press("enter")
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        await put(pilot, "#phone", "0" + phone[3:])
        await pilot.press("enter")
        await wait_until(pilot, lambda: not phone_screen.sending, "the refusal")
        assert app.screen is phone_screen
        assert phone_screen.query_one("#notice").has_class("-error")
        assert "M-Pesa" in phone_screen.notice_text or "reach" in phone_screen.notice_text
        assert await shop_till.engine.sale_attempts(ref) == []
        assert phone_screen.check_action("send", ()) is True


# ------------------------------------------------------------------------------ help, palette


async def test_f1_help_lists_this_screens_keys_and_the_demo_phones(
    shop_till: TillHarness,
) -> None:
    section = HelpSection("Demo phone numbers", (("0700 000 001", "cancels the prompt (1032)"),))
    app = build_app(shop_till, help_sections=(section,))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("f1")
        help_screen = await wait_for_screen(pilot, HelpScreen)
        keys = help_screen.query_one("#help-keys", Static).content
        rendered = help_screen.query(".help-section").first(Static).content
        assert isinstance(keys, Table) and isinstance(rendered, Table)
        cells = [str(cell) for column in rendered.columns for cell in column._cells]
        assert "0700 000 001" in cells and "cancels the prompt (1032)" in cells
        key_cells = [str(cell) for column in keys.columns for cell in column._cells]
        assert any("M-Pesa: Take the customer" in cell for cell in key_cells)
        assert any("Cash: Take cash" in cell for cell in key_cells)
        assert any("(not now)" in cell for cell in key_cells)
        # The checkout's footer has no room for "^p palette": F1 names the key instead.
        assert any("palette" in cell.lower() for cell in key_cells), key_cells
        await pilot.press("escape")
        await wait_for_screen(pilot, CheckoutScreen)


async def test_command_palette_offers_what_the_current_screen_can_do(
    shop_till: TillHarness,
) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        assert "M-Pesa" not in titles(app)
        assert {"Item", "Help", "Quit"} <= set(titles(app))
        await put(pilot, "#total", "40")
        assert {"M-Pesa", "Cash"} <= set(titles(app))
        await pilot.press("enter")
        await wait_for_screen(pilot, PhoneScreen)
        await put(pilot, "#phone", "0" + phone[3:])
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        assert {"Check now", "Stop waiting"} <= set(titles(app))
        assert "Retry" not in titles(app) and "Item" not in titles(app)
        # Through the real palette: open it, search, run.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"stop wait")
        await wait_until(pilot, lambda: _palette_has_hits(app), "palette hits")
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        assert "checked in the background" in checkout.notice_text


def _palette_has_hits(app: SmartDukaApp) -> bool:
    from textual.command import CommandList

    found = app.screen.query(CommandList)
    return bool(found) and found.first().option_count > 0


class _ProblemsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Label("problem payments", id="problems")


async def test_extension_screens_appear_in_the_manager_menu_and_the_palette(
    shop_till: TillHarness,
) -> None:
    command = ScreenCommand(
        id="manager.problems",
        title="Problem payments",
        help="Failed, stuck and suspicious payments",
        open=lambda app: _ProblemsScreen(),
    )
    app = build_app(shop_till, extensions=[command])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, CheckoutScreen)
        assert "Problem payments" in titles(app)
        assert app.check_action("manager", ()) is True
        await pilot.press("f9")
        await wait_for_screen(pilot, ManagerMenuScreen)
        await pilot.press("enter")
        await wait_for_screen(pilot, _ProblemsScreen)
        await pilot.press("escape")
        await wait_for_screen(pilot, CheckoutScreen)


async def test_without_extensions_the_manager_key_is_hidden(shop_till: TillHarness) -> None:
    app = build_app(shop_till, extensions=[])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, CheckoutScreen)
        assert app.check_action("manager", ()) is False
        await pilot.press("f9")
        assert isinstance(app.screen, CheckoutScreen)


# ------------------------------------------------------------------------------ items


async def test_items_with_quantities_make_the_total(shop_till: TillHarness) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("f3")
        item = await wait_for_screen(pilot, ItemScreen)
        await put(pilot, "#item-name", "Sugar 1kg")
        await put(pilot, "#item-qty", "0")
        await put(pilot, "#item-price", "185")
        await pilot.press("enter")
        assert app.screen is item
        assert (
            text_of(item, "#item-problem") == "The quantity must be a whole number from 1 to 999."
        )
        await put(pilot, "#item-qty", "2")
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("f3")
        await wait_for_screen(pilot, ItemScreen)
        await put(pilot, "#item-name", "Bread")
        await put(pilot, "#item-price", "65")
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)
        assert checkout.amount() == 435
        assert checkout.query_one("#items", DataTable).row_count == 2
        assert "total KES 435" in text_of(checkout, "#items-total")
        checkout.query_one("#items", DataTable).focus()
        await pilot.press("delete")
        assert checkout.amount() == 65
        await pilot.press("escape")
        assert checkout.check_action("pay", ()) is True


# ------------------------------------------------------------------------------ failures


class _DiskOnFire:
    """The real engine, except that choosing the next sale number fails."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def next_sale_ref(self, holder: str = "till") -> str:
        raise RuntimeError("disk on fire: consumer_secret=do-not-show")


async def test_an_unexpected_error_becomes_a_plain_message_and_a_log_entry(
    shop_till: TillHarness, caplog: pytest.LogCaptureFixture
) -> None:
    shop_till.opened.engine = _DiskOnFire(shop_till.engine)  # type: ignore[assignment]
    app = build_app(shop_till)
    with caplog.at_level(logging.ERROR, logger="smartduka_tui.ui.app"):
        async with app.run_test(size=SIZE) as pilot:
            checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: bool(checkout.notice_text), "a notice")
            assert checkout.notice_text.startswith(
                "Something went wrong while choosing the next sale reference"
            )
            assert "disk on fire" not in checkout.notice_text
            assert "Traceback" not in checkout.notice_text
            assert app.is_running
    assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)
    shop_till.opened.engine = shop_till.engine._engine  # type: ignore[attr-defined]


class _Broken(Screen[None]):
    def on_mount(self) -> None:
        raise RuntimeError("a bug in a screen")


async def test_a_crash_in_a_handler_stops_the_app_with_a_plain_message(
    shop_till: TillHarness, caplog: pytest.LogCaptureFixture
) -> None:
    command = ScreenCommand(id="broken", title="Broken", help="", open=lambda app: _Broken())
    app = build_app(shop_till, extensions=[command])
    printed = io.StringIO()
    app.error_console = Console(file=printed, width=100)
    with (
        caplog.at_level(logging.CRITICAL, logger="smartduka_tui.ui.app"),
        pytest.raises(RuntimeError, match="a bug in a screen"),
    ):
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_screen(pilot, CheckoutScreen)
            app.open_extension(command)
            await pilot.pause()
    assert app.return_code == 1
    shown = printed.getvalue()
    assert shown.split() == plain_failure_message(None).split()
    assert "Traceback" not in shown and "a bug in a screen" not in shown
    assert any(r.exc_info for r in caplog.records)


def test_app_messages_do_not_bubble_back_to_the_app() -> None:
    """The app forwards these to screens; bubbling would forward them again for ever."""
    assert PaymentChanged.bubble is False
    assert ConnectionChanged.bubble is False


async def test_closed_sale_screens_are_released(shop_till: TillHarness) -> None:
    """A till sells all day: every sale's screens, and the footer keys they showed, must be
    freed when the sale ends (Textual keeps anything that watches the app, or that a footer
    bound, until the watched value changes; see TillFooter)."""
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        waiting = weakref.ref(await start_sale(pilot, 85, phone))
        await answer(shop_till)
        await wait_for_screen(pilot, SuccessScreen)
        await pilot.press("enter")
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        for total in ("1", "12", "", "5"):  # the pay key's state flips: the footer rebuilds
            await put(pilot, "#total", total)
        await pilot.pause()
        gc.collect()
        assert waiting() is None
        assert not [o for o in gc.get_objects() if isinstance(o, SaleScreen)]
        footer = checkout.query_one(TillFooter)
        assert footer.bound_keys <= len(footer.query(FooterKey))


class _Caller(Screen[None]):
    """Makes one service call from a worker, as the sale screens do."""

    def __init__(self, through_app: bool) -> None:
        super().__init__()
        self.through_app = through_app
        self.timeout: asyncio.TimerHandle | None = None

    def on_mount(self) -> None:
        self._call()

    @work(exit_on_error=False)
    async def _call(self) -> None:
        call = _call_with_a_timeout()
        app: Any = self.app
        self.timeout = await (app.call_service(call) if self.through_app else call)


async def _call_with_a_timeout() -> asyncio.TimerHandle:
    # As a network call does: a timeout set for later. asyncio keeps the handle, and the
    # context it copied, until then (cancelling it only marks it).
    return asyncio.get_running_loop().call_later(3600, lambda: None)


async def _answered(pilot: Any, caller: _Caller) -> tuple[_Caller, asyncio.TimerHandle]:
    await pilot.app.push_screen(caller)
    await wait_until(pilot, lambda: caller.timeout is not None, "the call's answer")
    assert caller.timeout is not None
    return caller, caller.timeout


@pytest.mark.parametrize("through_app", [True, False], ids=["call_service", "awaited_directly"])
async def test_a_service_call_does_not_keep_its_closed_screen_alive(
    shop_till: TillHarness, through_app: bool
) -> None:
    """A call awaited in a screen's worker leaves its timers holding the worker's context, and
    so the screen, until they are due; through `call_service` they hold the app's. The direct
    await shows the test can see it."""
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, CheckoutScreen)
        caller, timeout = await _answered(pilot, _Caller(through_app))
        closed = weakref.ref(caller)
        del caller
        app.pop_screen()
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.pause()
        gc.collect()
        assert (closed() is None) is through_app
        timeout.cancel()


async def test_a_stop_asked_before_the_first_screen_is_up_waits_for_it(
    shop_till: TillHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal can arrive while the app starts (the demo forwards SIGINT and SIGTERM here):
    it ends the app as the cashier quitting would, never as a crash."""
    app = build_app(shop_till)
    compose_checkout = CheckoutScreen.compose

    def stop_while_composing(screen: CheckoutScreen) -> Any:
        app.stop(130)  # as a signal's handler would, between two steps of the event loop
        return compose_checkout(screen)

    monkeypatch.setattr(CheckoutScreen, "compose", stop_while_composing)
    await asyncio.wait_for(app.run_async(headless=True, size=SIZE), timeout=30)
    assert app.return_code == 130
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
