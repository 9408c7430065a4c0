"""The checkout's direct-payments panel at 80x24, from the real app on a real till store: the
payments come in as the relay's feed would store them (`payments.c2b.receive`)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import segno
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion

from smartduka_tui.connectivity import ConnectionBoard
from smartduka_tui.mpesa.qr import qr_to_half_blocks
from smartduka_tui.payments.c2b import C2BDesk, SaleQr, receive
from smartduka_tui.relay_client import c2b_claimer
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.qr import QrScreen
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from smartduka_tui.ui.widgets.c2b_panel import C2BPanel
from tests.payments.harness import TillHarness
from tests.support.daraja import PAYLOADS
from tests.ui.conftest import ONLINE, SIZE, wait_for_screen, wait_until
from tests.ui.test_flows import put

# Two and three minutes before the ManualClock's start (12:00:00 in Kenya).
PAYMENTS = (
    {"TransID": "TKQ9ZZ1A2B", "TransTime": "20260115115800", "TransAmount": "150.00"},
    {"TransID": "TKQ9ZZ1A2C", "TransTime": "20260115115700", "TransAmount": "900.00",
     "FirstName": "ANNE", "MSISDN": "2547 ***** 388"},
)  # fmt: skip


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def paid_directly(harness: TillHarness, **changes: str) -> None:
    body = json.loads((PAYLOADS / "c2b_confirmation_v2_masked_msisdn.json").read_text())
    body["BusinessShortCode"] = harness.engine.shop.business_shortcode
    body.update(changes)
    await receive(harness.engine.store, harness.shop_id, json.dumps(body).encode())


def c2b_app(harness: TillHarness) -> Any:
    # A relay where nothing listens: these tests never attach (the e2e tests do, for real).
    claim = c2b_claimer("http://127.0.0.1:9", "t000000000000.unused")
    desk = C2BDesk(harness.engine.store, harness.shop_id, harness.till_id, harness.clock, claim)
    services = AppServices(
        payments=harness.engine,
        clock=harness.clock,
        identity=TillIdentity(
            harness.shop_id, harness.till_id, "Test Duka", harness.engine.shop.account_prefix
        ),
        connection=ConnectionBoard(ONLINE),
        c2b=desk,
    )
    return make_app(harness.settings, services, options=UiOptions(cursor_blink=False))


async def test_checkout_shows_the_payment_that_fits_the_sale_at_80x24(
    shop_till: TillHarness, svg: SnapshotAssertion
) -> None:
    for changes in PAYMENTS:
        await paid_directly(shop_till, **changes)
    app = c2b_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        panel = checkout.query_one(C2BPanel)
        await wait_until(pilot, lambda: len(panel.waiting) == 2, "both payments shown")
        assert panel.suggested is None
        assert not checkout.check_action("attach_c2b", ())
        await put(pilot, "#total", "150")
        await wait_until(pilot, lambda: panel.suggested is not None, "the one that fits")
        assert panel.suggested is not None and panel.suggested.trans_id == "TKQ9ZZ1A2B"
        text = str(panel.content)
        assert "F6 attaches: KES 150  11:58:00  2547***149  JOHN  TKQ9ZZ1A2B" in text
        assert "1 more direct payment(s) waiting." in text
        assert checkout.check_action("attach_c2b", ())
        await pilot.pause()
        assert svg == app.export_screenshot()


async def test_no_suggestion_when_two_payments_fit(shop_till: TillHarness) -> None:
    await paid_directly(shop_till, TransID="TKQ9ZZ1A3A", TransTime="20260115115800")
    await paid_directly(shop_till, TransID="TKQ9ZZ1A3B", TransTime="20260115115900")
    app = c2b_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        panel = checkout.query_one(C2BPanel)
        await wait_until(pilot, lambda: len(panel.waiting) == 2, "both payments shown")
        await put(pilot, "#total", "150")
        await pilot.pause()
        await wait_until(pilot, lambda: panel.sale_amount == 150, "the total seen")
        assert panel.suggested is None
        await pilot.press("f6")
        assert (await shop_till.engine.store.c2b.get(shop_till.shop_id, "TKQ9ZZ1A3A")) is not None
        unattached = await shop_till.engine.store.c2b.recent(
            shop_till.shop_id, unattached_only=True
        )
        assert len(unattached) == 2


async def test_a_payment_outside_the_window_is_not_suggested(shop_till: TillHarness) -> None:
    await paid_directly(shop_till, TransID="TKQ9ZZ1A4A", TransTime="20260115115800")
    desk = c2b_app(shop_till).services.c2b
    assert desk is not None
    found = await desk.suggest(150)
    assert found is not None and found.trans_id == "TKQ9ZZ1A4A"
    assert await desk.suggest(151) is None
    # Eleven minutes after the till received it (thirteen after M-Pesa's TransTime).
    shop_till.clock.advance(11 * 60)
    assert await desk.suggest(150) is None


async def test_the_sales_qr_screen_at_80x24(shop_till: TillHarness, svg: SnapshotAssertion) -> None:
    # A fixed code (the simulator's embeds a fresh shortcode each run): what is snapshotted is
    # the screen, drawn from a real PNG by the till's own half-block renderer.
    buffer = io.BytesIO()
    segno.make_qr("SMARTDUKA|0115001|150", error="m").save(buffer, kind="png", scale=4)
    qr = SaleQr("0115001", 150, tuple(qr_to_half_blocks(buffer.getvalue())), "QR-1")
    app = c2b_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, CheckoutScreen)
        app.push_screen(QrScreen(qr))
        await wait_for_screen(pilot, QrScreen)
        assert svg == app.export_screenshot()
        await pilot.press("escape")
        await wait_for_screen(pilot, CheckoutScreen)
