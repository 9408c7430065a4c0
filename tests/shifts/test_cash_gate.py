"""Cash needs an open shift (the drawer's cash belongs to one); M-Pesa does not. In the core
(the sales desk refuses inside its transaction) and at the checkout (F10 says how to open
one, and the cash screen does not open)."""

from __future__ import annotations

from typing import Any

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import PrinterSettings
from smartduka_tui.payments.sales import SaleDesk, SaleRefused
from smartduka_tui.payments.shifts import NO_SHIFT_FOR_CASH, ShiftDesk
from smartduka_tui.store import Store
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from tests.payments.harness import TillHarness
from tests.shifts.conftest import SHOP, TILL
from tests.ui.conftest import SIZE, build_app, shop_till, wait_for_screen, wait_until
from tests.ui.test_flows import put

__all__ = ["shop_till"]


async def sales_state(store: Store) -> tuple[Any, ...]:
    sales = await store.db.fetchall("SELECT * FROM sales")
    tenders = await store.db.fetchall("SELECT * FROM sale_tenders")
    audit = await store.db.fetchone("SELECT count(*) FROM audit_log")
    assert audit is not None
    return tuple(map(tuple, sales)), tuple(map(tuple, tenders)), audit[0]


async def test_cash_without_an_open_shift_is_refused_and_changes_nothing(
    store: Store, clock: ManualClock
) -> None:
    sales = SaleDesk(store, SHOP, TILL, clock)
    shifts = ShiftDesk(store, SHOP, TILL, PrinterSettings())
    before = await sales_state(store)
    with pytest.raises(SaleRefused) as caught:
        await sales.take_cash("S1", 300, 500)
    assert caught.value.message == NO_SHIFT_FOR_CASH
    assert await sales_state(store) == before
    assert await sales.cash_refusal() == NO_SHIFT_FOR_CASH
    # A sale opened for M-Pesa (a prompt, or a direct payment F6 attaches) needs no shift.
    opened = await sales.open("M1", 250)
    assert opened.total == 250

    await shifts.open(1000, "Wanjiru")
    assert await sales.cash_refusal() is None
    taken = await sales.take_cash("S1", 300, 500)
    assert taken.change == 200

    await shifts.close(1300, via="test")
    with pytest.raises(SaleRefused, match="Cash needs an open shift"):
        await sales.take_cash("S2", 100, 100)
    assert (await shifts.z_report(1)).difference == 0


async def test_the_checkout_names_the_key_and_mpesa_needs_no_shift(shop_till: TillHarness) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        before = await sales_state(shop_till.store)
        await put(pilot, "#total", "350")
        await pilot.press("f10")
        await wait_until(pilot, lambda: checkout.notice_text != "", "the refusal")
        assert checkout.notice_text == NO_SHIFT_FOR_CASH
        assert app.screen is checkout
        assert await sales_state(shop_till.store) == before
        # M-Pesa goes on without a shift: Enter takes the customer's phone.
        await pilot.press("enter")
        await wait_for_screen(pilot, PhoneScreen)
