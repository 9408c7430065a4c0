"""A sale paid directly (C2B) prints its receipt with the TransID as the tender: the real
simulator's customer pays the till, the real relay grants F6's claim, the file printer gets
the receipt the store rebuilds."""

from __future__ import annotations

from pathlib import Path

from smartduka_tui.clock import SystemClock
from smartduka_tui.config import PrinterKind, PrinterSettings
from smartduka_tui.printing import escpos_bytes
from smartduka_tui.receipts import TenderKind, render_text
from smartduka_tui.receipts.desk import ReceiptDesk
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from smartduka_tui.ui.widgets.c2b_panel import C2BPanel
from smartduka_tui.ui.widgets.notice import Notice
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle
from tests.integration.test_c2b_e2e import registered_till_pair
from tests.ui.conftest import SIZE, wait_for_screen, wait_until
from tests.ui.test_flows import put


async def test_f6_attaches_a_direct_payment_and_prints_its_transid(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, _, _ = await registered_till_pair(tmp_path, relay, sim)
    device = tmp_path / "lp0"
    clock = SystemClock()
    async with first.opened(clock=clock) as opened:
        engine, link = opened.engine, opened.link
        printer = PrinterSettings(kind=PrinterKind.FILE, path=device)
        receipts = ReceiptDesk(engine.store, engine.shop_id, engine.till_id, printer)
        services = AppServices(
            payments=engine,
            clock=clock,
            identity=TillIdentity(engine.shop_id, engine.till_id, "C2B Duka", "OWN"),
            connection=link.connection,
            c2b=opened.c2b,
            receipts=receipts,
        )
        app = make_app(engine.settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=SIZE) as pilot:
            checkout = await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
            sale_ref = checkout.sale_ref
            panel = checkout.query_one(C2BPanel)
            paid = await sim.pay_till(first.shortcode or "", unique_phone(), 320, first_name="JO")
            await wait_until(pilot, lambda: bool(panel.waiting), "the payment on the checkout")
            await put(pilot, "#total", "320")
            await wait_until(pilot, lambda: panel.suggested is not None, "the suggestion")
            await pilot.press("f6")
            notice = checkout.query_one("#notice", Notice)
            await wait_until(pilot, lambda: "Receipt printed." in notice.text, "the print")
            assert notice.text == (
                f"✔ PAID directly: sale {sale_ref}, KES 320, M-Pesa receipt {paid.trans_id}. "
                "Receipt printed."
            )
        receipt = await receipts.receipt(sale_ref)
    assert [(t.kind, t.amount, t.reference) for t in receipt.tenders] == [
        (TenderKind.MPESA_C2B, 320, paid.trans_id)
    ]
    assert (receipt.total, receipt.change) == (320, 0)
    assert f"  Receipt {paid.trans_id}" in render_text(receipt).splitlines()
    assert device.read_bytes() == escpos_bytes(receipt)
