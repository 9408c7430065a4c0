"""The manager's list of direct payments no sale holds, with the last statement pull, driven
through the real app (Pilot) on the seeded till database; one snapshot at 80x24."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion

from smartduka_tui.manager.direct import age_words, pull_words
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.c2b import receive
from smartduka_tui.store.pull import PullStatus
from smartduka_tui.ui.manager.direct_payments import DirectPaymentsScreen
from smartduka_tui.ui.manager.sign_in import SignInScreen
from smartduka_tui.ui.screens.manager_menu import ManagerMenuScreen
from tests.manager.conftest import PIN, SHOP, SIZE, TILL, Seeded, build_app, settle
from tests.manager.screen_text import screen_text

MENU_POSITION = 4
PAYERS = (
    ("TLA1B2C3D4", 250, "2547 ***** 126", "MARY", 7),
    ("TLB9Z8Y7X6", 1_200, "2541 ***** 553", "", 95),
    ("TLC5E6F7G8", 40, "2547 ***** 901", "OTIENO", 60 * 27),
)


def confirmation(trans_id: str, amount: int, payer: str, name: str, paid_at: datetime) -> bytes:
    return json.dumps(
        {
            "TransactionType": "Pay Bill",
            "TransID": trans_id,
            "TransTime": paid_at.astimezone(KENYA_TZ).strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount}.00",
            "BusinessShortCode": "600100",
            "BillRefNumber": "",
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": payer,
            "FirstName": name,
        }
    ).encode()


@pytest.fixture
async def with_payments(seeded: Seeded) -> Seeded:
    """Three direct payments (7 minutes, 95 minutes and 27 hours old) and one good pull."""
    now = seeded.clock.now()
    for trans_id, amount, payer, name, minutes in PAYERS:
        body = confirmation(trans_id, amount, payer, name, now - timedelta(minutes=minutes))
        await receive(seeded.store, SHOP, body)
    async with seeded.store.write() as tx:
        await seeded.store.pull.mark_registered(tx, SHOP, "600100")
        await seeded.store.pull.record_pull(
            tx, SHOP, "600100", error=None, pages=3, rows_seen=212, new_rows=5, problems_found=1
        )
    seeded.clock.advance(120)
    return seeded


async def open_direct_payments(pilot: Any) -> DirectPaymentsScreen:
    await settle(pilot)
    await pilot.press("f9")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ManagerMenuScreen)
    await pilot.press(*["down"] * MENU_POSITION, "enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, SignInScreen)
    await pilot.press(*PIN, "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, DirectPaymentsScreen)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    return screen


async def test_the_list_at_80x24(with_payments: Seeded, snapshot: SnapshotAssertion) -> None:
    app = build_app(with_payments)
    async with app.run_test(size=SIZE) as pilot:
        await open_direct_payments(pilot)
        svg = snapshot.use_extension(SVGImageExtension)
        assert svg(name="direct_payments") == app.export_screenshot(simplify=True)


async def test_unattached_payments_show_and_an_attached_one_leaves(with_payments: Seeded) -> None:
    seeded = with_payments
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_direct_payments(pilot)
        text = screen_text(app)
        for trans_id, amount, payer, _, _ in PAYERS:
            shown = payer.replace(" ", "").replace("*****", "***")  # as the till keeps it
            assert trans_id in text and f"{amount:,}" in text and shown in text
        assert "9 min" in text and "1 h" in text and "1 d" in text
        assert "Statement 600100: pulled" in text and "212 rows" in text
        assert "3 not attached, KES 1,490 in all" in text
        # A cashier attaches one at the counter (the write a granted claim makes).
        async with seeded.store.write() as tx:
            await seeded.store.c2b.attach(tx, SHOP, "TLB9Z8Y7X6", "0115001", TILL)
        await pilot.press("r")
        await settle(pilot)
        await pilot.pause()
        text = screen_text(app)
        assert "TLB9Z8Y7X6" not in text and "TLA1B2C3D4" in text
        assert "2 not attached, KES 290 in all" in text
        assert screen.view is not None and len(screen.view.payments) == 2


async def test_pull_now_without_a_nominated_number_says_what_to_set(
    with_payments: Seeded,
) -> None:
    seeded = with_payments
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_direct_payments(pilot)
        async with seeded.store.write() as tx:
            await tx.execute("DELETE FROM pull_status")
        await pilot.press("p")
        await settle(pilot)
        text = screen_text(app)
        assert "Pull failed: shortcode 600100 is not registered for Pull Transactions" in text
        assert "Statement 600100: pull FAILED" in text


async def test_pull_statement_needs_the_pin(seeded: Seeded) -> None:
    from smartduka_tui.manager import NotSignedIn

    with pytest.raises(NotSignedIn):
        await seeded.service.pull_statement()
    with pytest.raises(NotSignedIn):
        await seeded.service.direct_payments()


def test_pull_words() -> None:
    now = datetime(2026, 1, 15, 9, 0, tzinfo=KENYA_TZ)
    assert pull_words("600100", None, now) == (
        "Statement 600100: never pulled (smartduka pull, or P here)"
    )
    failed = PullStatus(
        "s", "600100", now, now - timedelta(minutes=3), None, "M-Pesa said no", 0, 0, 0, 0, 0
    )
    assert pull_words("600100", failed, now) == (
        "Statement 600100: pull FAILED 15 Jan 08:57 (3 min ago): M-Pesa said no"
    )
    assert [age_words(now, now - timedelta(seconds=s)) for s in (5, 61, 7200, 90000)] == [
        "just now",
        "1 min",
        "2 h",
        "1 d",
    ]
