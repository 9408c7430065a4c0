"""The checkout's footer at 80 columns: every key it offers shows whole, with and without item
lines (issue #12 case 9; the direct-payment keys F6 and F7 had pushed F2 Sales off the line)."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from smartduka_tui.connectivity import ConnectionBoard
from smartduka_tui.mpesa.statement import QrCodeResponse
from smartduka_tui.payments.c2b import C2BDesk
from smartduka_tui.relay_client import c2b_claimer
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.item import ItemScreen
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from tests.manager.screen_text import screen_lines
from tests.payments.harness import TillHarness
from tests.ui.conftest import ONLINE, SIZE, wait_for_screen, wait_until
from tests.ui.test_flows import put

KEYS = ["⏎ M-Pesa", "f10 Cash", "f3 Item", "f6 Direct", "f7 QR", "f1 Help", "f2 Sales"]


async def no_qr(sale_ref: str, amount: int) -> QrCodeResponse:
    raise AssertionError("these tests never ask for a QR")


def full_app(harness: TillHarness) -> Any:
    """A till with every checkout key: direct payments (F6) and the sale's QR (F7)."""
    claim = c2b_claimer("http://127.0.0.1:9", "t000000000000.unused")
    desk = C2BDesk(
        harness.engine.store, harness.shop_id, harness.till_id, harness.clock, claim, make_qr=no_qr
    )
    identity = TillIdentity(
        harness.shop_id, harness.till_id, "Test Duka", harness.engine.shop.account_prefix
    )
    services = AppServices(
        payments=harness.engine,
        clock=harness.clock,
        identity=identity,
        connection=ConnectionBoard(ONLINE),
        c2b=desk,
    )
    return make_app(harness.settings, services, options=UiOptions(cursor_blink=False))


async def test_every_checkout_key_fits_80_columns(shop_till: TillHarness) -> None:
    app = full_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await pilot.pause()
        line = screen_lines(app)[-1]
        assert all(key in line for key in KEYS), line
        await pilot.press("f3")
        await wait_for_screen(pilot, ItemScreen)
        await put(pilot, "#item-name", "Sugar")
        await put(pilot, "#item-price", "185")
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: bool(checkout.items), "the item line")
        checkout.query_one("#items", DataTable).focus()
        await pilot.pause()
        line = screen_lines(app)[-1]
        assert len(line.rstrip()) <= SIZE[0]
        assert all(key in line for key in [*KEYS, "del Remove"]), line
