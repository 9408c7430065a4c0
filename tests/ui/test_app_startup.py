"""The till paints its checkout before the till behind it is open (issue #18, part 1).

`make_app()` without services is what the console script starts at a terminal; `open_till`
hands it the till later. Here the test holds that window open for as long as it likes (no
timing): every key typed in it counts, in order, once the till opens.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input, Label

from smartduka_tui.config import PrinterKind, PrinterSettings
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.receipts.desk import ReceiptDesk
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.sales import SalesScreen
from smartduka_tui.ui.services import UiOptions
from tests.payments.harness import TillHarness
from tests.ui.conftest import SIZE, services_for, wait_for_screen, wait_until


def todays_first_sale(harness: TillHarness) -> str:
    return f"{harness.clock.now().astimezone(KENYA_TZ):%m%d}001"


async def test_keys_typed_while_the_till_opens_are_all_counted(shop_till: TillHarness) -> None:
    app = make_app(options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await app.painted.wait()
        checkout = app.screen
        assert isinstance(checkout, CheckoutScreen) and not app.is_open
        assert checkout.query_one("#total", Input).has_focus
        assert "opening the till" in str(checkout.query_one("#status-till", Label).content)

        # A total with a slip corrected, and Enter to pay, all before the till is open.
        await pilot.press("1", "5", "9", "backspace", "0", "enter")
        assert checkout.total_text == "150"  # the field took the digits and the Backspace
        assert checkout.sale_ref == ""
        assert app.screen is checkout  # the Enter waits for the till: it needs its reference

        app.open_till(shop_till.settings, services_for(shop_till))
        phone = await wait_for_screen(pilot, PhoneScreen)
        assert (phone.sale_ref, phone.amount) == (todays_first_sale(shop_till), 150)
        assert "Test Duka" in str(checkout.query_one("#status-shop", Label).content)


async def test_keys_typed_before_the_first_paint_are_all_counted(shop_till: TillHarness) -> None:
    """The terminal takes keys from the moment the app starts, before the checkout (the first
    screen) has mounted or painted: as the driver does, they are posted to the app before it
    runs. The digits land in the total, the Enter waits for the till."""
    app = make_app(options=UiOptions(cursor_blink=False))
    for key, character in (("4", "4"), ("2", "2"), ("enter", "\r")):
        app.post_message(events.Key(key, character))
    async with app.run_test(size=SIZE) as pilot:
        await app.painted.wait()
        checkout = app.screen
        assert isinstance(checkout, CheckoutScreen) and not app.is_open
        await wait_until(pilot, lambda: checkout.total_text == "42", "the digits in the total")
        assert checkout.sale_ref == ""
        assert app.screen is checkout  # the Enter waits for the till

        app.open_till(shop_till.settings, services_for(shop_till))
        phone = await wait_for_screen(pilot, PhoneScreen)
        assert (phone.sale_ref, phone.amount) == (todays_first_sale(shop_till), 42)


async def test_the_till_screens_wait_for_the_till(shop_till: TillHarness) -> None:
    """F2 (today's sales) needs the till's store: greyed while it opens, then it opens."""
    app = make_app(options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await app.painted.wait()
        assert app.check_action("sales", ()) is None
        assert app.checkout.check_action("verify_receipt", ()) is None
        await pilot.press("f2")
        app.open_till(shop_till.settings, services_for(shop_till))
        await wait_for_screen(pilot, SalesScreen)
        assert app.check_action("help", ()) is True
        # This till has no receipt checks (no relay): F5 is hidden once that is known.
        assert app.checkout.check_action("verify_receipt", ()) is False


async def test_the_printer_shows_once_the_till_opens(
    shop_till: TillHarness, tmp_path: Path
) -> None:
    """A till with a receipt printer: the starting checkout has no printer to tell of; once the
    till is open the status bar shows it, as a checkout built with the till does."""
    printer = PrinterSettings(kind=PrinterKind.FILE, path=tmp_path / "printer", auto_print=True)
    receipts = ReceiptDesk(shop_till.engine.store, shop_till.shop_id, shop_till.till_id, printer)
    app = make_app(options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await app.painted.wait()
        assert app.printer is None and not app.screen.query("#status-printer")
        app.open_till(shop_till.settings, services_for(shop_till, receipts=receipts))
        await wait_until(pilot, lambda: bool(app.screen.query("#status-printer")), "printer")
        assert app.printer is not None and app.printer.desk is receipts
        await pilot.press("f8")
        await wait_until(pilot, lambda: "no receipt" in app.checkout.notice_text, "F8 answered")


def test_make_app_takes_settings_and_services_together(shop_till: TillHarness) -> None:
    with pytest.raises(TypeError, match="settings and services together"):
        make_app(shop_till.settings)


def test_the_checkout_paints_without_the_till_modules() -> None:
    """What the console script imports before the first paint leaves out the engine, the
    store's database layer, httpx, cryptography, pydantic and the manager tools: they load
    behind the painted checkout. A fresh interpreter, so nothing here is loaded already."""
    probe = (
        "import sys\n"
        "import smartduka_tui.cli as cli\n"
        "cli.build_parser()\n"
        "import smartduka_tui.ui.app\n"
        "heavy = ('smartduka_tui.payments.service', 'smartduka_tui.store.db', 'httpx',\n"
        "         'cryptography', 'pydantic', 'smartduka_tui.manager', 'aiosqlite')\n"
        "print(' '.join(name for name in heavy if name in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.split() == [], loaded.stdout


def test_the_open_till_leaves_out_what_a_cashier_may_never_use() -> None:
    """What an open till loads (the app's modules and what opening its services imports) leaves
    out the QR image decoder, the receipt printer's library, the simulator, the relay and the
    manager tools: each loads the first time it is used. A fresh interpreter."""
    probe = (
        "import sys\n"
        "from smartduka_tui.cli.common import load_modules\n"
        "from smartduka_tui.cli.app import APP_MODULES\n"
        "load_modules(APP_MODULES)\n"
        "import smartduka_tui.receipts.desk, smartduka_tui.ui.printer, smartduka_tui.clock\n"
        "import smartduka_tui.payments.statement, smartduka_tui.payments.c2b\n"
        "import smartduka_tui.payments.gateway, smartduka_tui.connectivity\n"
        "import smartduka_tui.ui.freshness, smartduka_tui.ui.summary\n"
        "unused = ('PIL', 'smartduka_tui.mpesa.qr', 'escpos', 'usb', 'smartduka_tui.simulator',\n"
        "          'callback_relay', 'uvicorn', 'starlette', 'smartduka_tui.manager')\n"
        "print(' '.join(name for name in unused if name in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.split() == [], loaded.stdout


def test_the_store_package_loads_each_name_on_first_use() -> None:
    probe = (
        "import sys, smartduka_tui.store as store\n"
        "before = 'smartduka_tui.store.db' in sys.modules\n"
        "missing = [name for name in store.__all__ if getattr(store, name, None) is None]\n"
        "print(before, sorted(store._HOMES) == sorted(store.__all__), missing)\n"
        "try:\n"
        "    store.NoSuchName\n"
        "except AttributeError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == [
        "False True []",
        "module 'smartduka_tui.store' has no attribute 'NoSuchName'",
    ]
