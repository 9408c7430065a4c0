"""Shift test fixtures: a real till database (shop `duka1`, till `till1`) on a manual clock at
the manager tests' fixed start, with the end-of-session scan for canary secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import Actor, SaleState, TenderKind
from smartduka_tui.store import Keyring, Store, create_keyring
from smartduka_tui.store.pull import PulledRow
from smartduka_tui.store.sales import NewTender, SaleLine
from tests.manager.conftest import FIXED_SECRETS, SHOP, START, TILL, Story, add_shop
from tests.store.conftest import no_canary_on_disk  # noqa: F401 - the end-of-session scan

__all__ = ["SHOP", "TILL"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return create_keyring(tmp_path / "keys" / "keyring")


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock, keyring: Keyring) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        await add_shop(opened, FIXED_SECRETS)
        yield opened
    finally:
        await opened.close()


SHORTCODE = "600100"
"""The story shop's paybill (tests/manager/conftest.py)."""


async def sale(
    store: Store,
    clock: ManualClock,
    sale_ref: str,
    total: int,
    tenders: list[NewTender],
    *,
    till: str = TILL,
    then: SaleState | None = None,
    touch: Callable[[], None] = lambda: None,
) -> None:
    """Ring up a sale as the tenders work does: open it, add its tenders a minute apart,
    PAID once they cover the total; `then` moves it on (REFUNDED, VOIDED, ABANDONED)."""
    clock.advance(60)
    touch()
    async with store.write() as tx:
        await store.sales.open(tx, SHOP, till, sale_ref, total, [SaleLine("Goods", 1, total)])
    for tender in tenders:
        clock.advance(30)
        touch()
        async with store.write() as tx:
            await store.sales.add_tender(tx, SHOP, sale_ref, till, tender)
    paid = sum(t.amount for t in tenders)
    async with store.write() as tx:
        if paid == total:
            await store.sales.move(
                tx, SHOP, sale_ref, {SaleState.OPEN}, SaleState.PAID, actor=Actor.CASHIER
            )
        if then is not None:
            now = await store.sales.get(SHOP, sale_ref, tx=tx)
            assert now is not None
            await store.sales.move(
                tx, SHOP, sale_ref, {now.state}, then, actor=Actor.MANAGER, note="test"
            )


async def ring_up_day(
    store: Store, clock: ManualClock, touch: Callable[[], None] = lambda: None
) -> None:
    """A shift's sales: cash with change, a split of M-Pesa and cash, a direct payment, a
        refunded cash sale, a sale left part paid, and another till's M-Pesa sale; and the pulled
        statement (pulled at 12:00 Kenya time, before the close), with one receipt this till
        does not know and the other till's one.

        Cash taken 350 + 400 + 300 + 100 = 1,150, refunds 300: with a float of 2,000 the drawer
        should hold 2,850. `touch` is called at each step of the clock (a manager session kept
    alive while the screen is open)."""

    def cash(amount: int, given: int) -> NewTender:
        return NewTender(TenderKind.CASH, amount, cash_given=given)

    await sale(store, clock, "S1", 350, [cash(350, 500)], touch=touch)
    story = Story(store, clock)
    story.count = 900  # attempt refs of their own beside the manager story's
    attempt_id = (await story.attempt("S2", 600, "254712000099")).id
    stk = NewTender(TenderKind.MPESA_STK, 600, receipt_number="SDK1A2B3C4", attempt_id=attempt_id)
    await sale(store, clock, "S2", 1000, [stk, cash(400, 400)], touch=touch)
    direct = NewTender(TenderKind.MPESA_C2B, 150, receipt_number="TKQ9ZZ1A2B")
    await sale(store, clock, "S3", 150, [direct], touch=touch)
    await sale(store, clock, "S4", 300, [cash(300, 300)], then=SaleState.REFUNDED, touch=touch)
    await sale(store, clock, "S5", 200, [cash(100, 100)], touch=touch)
    # Another till of the shop took a direct payment the statement shows too.
    async with store.write() as tx:
        await tx.execute(
            "INSERT INTO c2b_payments (shop_id, trans_id, shortcode, amount, paid_at, payer,"
            " first_name, bill_ref, received_at, body_sha256, sale_ref, attached_till,"
            " attached_at) VALUES (?, 'OTH0000001', ?, 700, ?, '2547****098', 'A', 'T1', ?,"
            " 'x', 'T1', 'till2', ?)",
            (SHOP, SHORTCODE, tx.now_ms(), tx.now_ms(), tx.now_ms()),
        )
    paid_at = clock.now()
    rows = [
        PulledRow("SDK1A2B3C4", SHORTCODE, 600, paid_at, "2547****099", "MDS2", "Pay Bill"),
        PulledRow("TKQ9ZZ1A2B", SHORTCODE, 150, paid_at, "2547****123", "S3", "Pay Bill"),
        PulledRow("XYZ0000009", SHORTCODE, 500, paid_at, "2547****555", "", "Pay Bill"),
        PulledRow("OTH0000001", SHORTCODE, 700, paid_at, "2547****098", "MDT1", "Pay Bill"),
    ]
    clock.advance(60)
    async with store.write() as tx:
        await store.pull.add(tx, SHOP, SHORTCODE, rows)
        await store.pull.record_pull(tx, SHOP, SHORTCODE, error=None, pages=1, rows_seen=4)


async def open_test_shift(store: Store, shop_id: str, till_id: str, opening_float: int = 0) -> None:
    """Open the till's shift, as a manager does before the first cash sale (cash needs one)."""
    async with store.write() as tx:
        await store.shifts.open(
            tx,
            shop_id=shop_id,
            till_id=till_id,
            cashier="Cashier",
            opening_float=opening_float,
            actor=Actor.MANAGER,
        )
