"""A split sale's receipt from a real till store: part in cash (the cash given and the change)
and the rest by a direct M-Pesa payment (its receipt number), the sale number and its items; the
printed bytes are the stored receipt's, and a reprint is marked COPY."""

from __future__ import annotations

from pathlib import Path

from smartduka_tui.clock import ManualClock
from smartduka_tui.payments.c2b import receive
from smartduka_tui.payments.sales import SaleDesk, record_direct_payment
from smartduka_tui.printing import escpos_bytes
from smartduka_tui.receipts import render_text
from smartduka_tui.receipts.from_store import receipt_for_sale
from smartduka_tui.store import Store, create_keyring
from tests.manager.conftest import FIXED_SECRETS, SHOP, START, TILL, add_shop
from tests.receipts.conftest import expected
from tests.shifts.conftest import open_test_shift
from tests.support.daraja import PAYLOADS

SPLIT_SALE = "S3001"


async def test_a_split_sale_prints_every_tender_and_the_stored_bytes(tmp_path: Path) -> None:
    clock = ManualClock(START)
    keyring = create_keyring(tmp_path / "keyring")
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        await add_shop(store, FIXED_SECRETS)
        await open_test_shift(store, SHOP, TILL)  # cash needs an open shift
        desk = SaleDesk(store, SHOP, TILL, clock)
        lines = (("Unga 2kg", 2, 150), ("Sukari 1kg", 1, 150))
        taken = await desk.take_cash(SPLIT_SALE, 450, 500, part=300, lines=lines)
        assert (taken.change, taken.sale.owed) == (200, 150)
        clock.advance(40)
        # The Daraja sample confirmation (KES 150, TKQ9ZZ1A2B) attached as F6 attaches it.
        body = (PAYLOADS / "c2b_confirmation_v2_masked_msisdn.json").read_bytes()
        record, _ = await receive(store, SHOP, body)
        async with store.write() as tx:
            attached = await store.c2b.attach(tx, SHOP, record.trans_id, SPLIT_SALE, TILL)
            await record_direct_payment(store, tx, attached, TILL)
        receipt = await receipt_for_sale(store, SHOP, SPLIT_SALE)
    finally:
        await store.close()
    text = render_text(receipt)
    assert text == expected("S3001-split.txt").decode()
    pairs = [line.split() for line in text.splitlines()]
    for shown in (
        ["Cash", "KES", "500"],
        ["M-Pesa", "(direct)", "KES", "150"],
        ["Receipt", "TKQ9ZZ1A2B"],
        ["Change", "KES", "200"],
        ["Sale", SPLIT_SALE],
        ["TOTAL", "KES", "450"],
    ):
        assert shown in pairs, shown
    assert escpos_bytes(receipt) == expected("S3001-split.escpos")
    copy = render_text(receipt.as_copy())
    assert copy.splitlines()[0].strip() == copy.splitlines()[-1].strip() == "*** COPY ***"
    assert escpos_bytes(receipt.as_copy()) != escpos_bytes(receipt)
