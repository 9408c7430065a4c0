"""One SVG snapshot per screen state, taken from the real app on the real engine and simulator.

Deterministic by construction: 80x24, the ManualClock's fixed start, a fixed shop name, till
and phone per flow, fixed sale references (a fresh store numbers from 0115001), the cursor not
blinking, toasts hidden (Pilot's default). Receipt numbers are the one thing the simulator makes
up at random, so where a receipt shows, the test plays Safaricom: it takes the callback the
simulator sent and hands it to the engine with a fixed receipt number.

These use pytest-textual-snapshot's SVG extension through syrupy's `snapshot` rather than its
`snap_compare`: `snap_compare` runs the app under a fresh `asyncio.run`, while the real engine
(aiosqlite, httpx, the loopback callback receiver) must live on the test's event loop. Update
with `pytest tests/ui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.screen import Screen
from textual.widgets import Label

from smartduka_tui.connectivity import ConnectionBoard, Reachability
from smartduka_tui.model import AttemptState
from smartduka_tui.ui.extensions import ScreenCommand
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.confirm_no_sms import ConfirmNoSmsScreen
from smartduka_tui.ui.screens.failure import FailureScreen
from smartduka_tui.ui.screens.help import HelpScreen
from smartduka_tui.ui.screens.item import ItemScreen
from smartduka_tui.ui.screens.manager_menu import ManagerMenuScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.quit import ConfirmQuitScreen
from smartduka_tui.ui.screens.sales import SalesScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.waiting import WaitingScreen
from smartduka_tui.ui.services import HelpSection
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess
from tests.ui.conftest import ONLINE, SIZE, advance, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import answer, pushes_answered, put, script

DEMO_HELP = (
    HelpSection(
        "Demo phone numbers (simulator)",
        (
            ("0700 000 000", "pays"),
            ("0700 000 001", "cancels the prompt (1032)"),
            ("0700 000 003", "enters a wrong PIN (2001)"),
        ),
    ),
)


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def shot(pilot: Any, svg: SnapshotAssertion, name: str) -> None:
    await pilot.pause()
    # The status bar's awaiting count is refreshed by a worker that a queued PaymentChanged
    # starts, maybe after the other workers have finished: wait for the count itself to be the
    # engine's, then for the screen's and the app's workers (only the clock's tick runs for the
    # app's whole life).
    awaiting = await pilot.app.services.payments.awaiting_count()
    await wait_until(
        pilot,
        lambda: (
            pilot.app.awaiting == awaiting
            and all(w.is_finished for w in pilot.app.workers if w.group != "clock")
        ),
        "the awaiting count and the workers to finish",
    )
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    assert svg(name=name) == pilot.app.export_screenshot(simplify=True)


async def deliver(pilot: Any, harness: TillHarness, *receipts: str) -> None:
    """Play Safaricom's callbacks: the ones the simulator sent, in order, each success with the
    next of `receipts` as its receipt number."""
    await answer(harness)
    await wait_until(pilot, lambda: bool(harness.receiver.events), "the simulator's callback")
    events, harness.receiver.events[:] = list(harness.receiver.events), []
    fixed = iter(receipts)
    for event in events:
        body = event.body
        if b"MpesaReceiptNumber" in body:
            sent = body.split(b'"MpesaReceiptNumber", "Value": "', 1)
            if len(sent) == 1:
                sent = body.split(b'"MpesaReceiptNumber","Value":"', 1)
            original = sent[1][:10]
            body = body.replace(original, next(fixed).encode())
        await harness.engine.apply_callback(event.model_copy(update={"body": body}))


async def to_phone(pilot: Any, amount: str) -> PhoneScreen:
    checkout = await wait_for_screen(pilot, CheckoutScreen)
    await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
    await put(pilot, "#total", amount)
    await pilot.press("enter")
    return await wait_for_screen(pilot, PhoneScreen)


async def test_sale_that_is_paid(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    phone = await script(quiet_till, "254712000101")
    app = build_app(quiet_till, help_sections=DEMO_HELP)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await shot(pilot, svg, "checkout_empty")
        await pilot.press("f1")
        await wait_for_screen(pilot, HelpScreen)
        await shot(pilot, svg, "help")
        await pilot.press("escape")
        await to_phone(pilot, "1250")
        await pilot.press(*"0712 000 1")
        await shot(pilot, svg, "phone_invalid")
        await pilot.press(*"01")
        await shot(pilot, svg, "phone_valid")
        await pilot.press("enter")
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        await wait_until(pilot, lambda: waiting.view.state is AttemptState.PENDING, "pending")
        await advance(pilot, quiet_till, 17)
        await shot(pilot, svg, "waiting_countdown")
        await deliver(pilot, quiet_till, "SDK4T9Q2XZ")
        await wait_for_screen(pilot, SuccessScreen)
        # The status bar's count follows the payment on a worker of its own: under load the
        # shot could come before it (the sale's rows now commit with the payment).
        await wait_until(pilot, lambda: app.awaiting == 0, "the awaiting count")
        await shot(pilot, svg, "success_receipt")
        await pilot.press("enter")
        phone_screen = await to_phone(pilot, "80")
        await wait_until(pilot, lambda: bool(phone_screen.recent), "recent phones")
        await pilot.press("down")
        await shot(pilot, svg, "phone_recent_picked")
        assert phone


async def test_failures_and_retries(
    tmp_path: Path, simulator: ServerProcess, svg: SnapshotAssertion
) -> None:
    async with till(
        tmp_path,
        simulator.base_url,
        confirm_callbacks_by_query=False,
        limits={"max_retries": 1},
    ) as harness:
        phone = await script(harness, "254712000202", result_code=1032)
        app = build_app(harness)
        async with app.run_test(size=SIZE) as pilot:
            await to_phone(pilot, "450")
            await put(pilot, "#phone", "0712000202")
            await pilot.press("enter")
            await wait_for_screen(pilot, WaitingScreen)
            await answer(harness)
            await wait_for_screen(pilot, FailureScreen)
            await advance(pilot, harness, 2)
            await shot(pilot, svg, "failure_cancelled_wait")
            # The same phone waits out Daraja's code-17 window (two minutes from the push).
            await harness.sim.advance_clock(120)
            await advance(pilot, harness, 118)
            failure: Any = pilot.app.screen
            await wait_until(pilot, lambda: failure.check_action("retry", ()) is True, "retry")
            await shot(pilot, svg, "failure_cancelled_retry_open")
            await script(harness, phone, result_code=1032)
            await pilot.press("r")
            await wait_for_screen(pilot, WaitingScreen)
            await answer(harness)
            second: Any = await wait_until_other_failure(pilot, failure)
            assert second.view.attempt_number == 2
            await shot(pilot, svg, "failure_no_retries_left")


async def wait_until_other_failure(pilot: Any, first: Any) -> Any:
    await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, FailureScreen) and pilot.app.screen is not first,
        "the second failure",
    )
    return pilot.app.screen


async def test_offline(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    await script(quiet_till, "254712000303")
    board = ConnectionBoard(ONLINE)
    app = build_app(quiet_till, board=board)
    async with app.run_test(size=SIZE) as pilot:
        await to_phone(pilot, "300")
        await put(pilot, "#phone", "0712000303")
        await pilot.press("enter")
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        await wait_until(pilot, lambda: waiting.view.state is AttemptState.PENDING, "pending")
        board.set(relay=Reachability.UNREACHABLE)
        await shot(pilot, svg, "waiting_relay_down")
        await advance(pilot, quiet_till, 61)
        await shot(pilot, svg, "waiting_prompt_time_up")
        await pilot.press("s")
        await wait_for_screen(pilot, CheckoutScreen)
        board.set(relay=Reachability.REACHABLE, daraja=Reachability.UNREACHABLE)
        await put(pilot, "#total", "120")
        await shot(pilot, svg, "checkout_daraja_down")


async def test_expired_then_paid_late(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    await script(quiet_till, "254712000404")
    app = build_app(quiet_till)
    async with app.run_test(size=SIZE) as pilot:
        await to_phone(pilot, "500")
        await put(pilot, "#phone", "0712000404")
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        # Expiry is counted once the push is answered: a reconciler pass before then finds it
        # still being sent.
        await pushes_answered(quiet_till)
        await advance(pilot, quiet_till, quiet_till.settings.timings.attempt_expiry_s + 10)
        await quiet_till.engine.reconcile_once()
        expired: Any = await wait_for_screen(pilot, FailureScreen)
        await advance(pilot, quiet_till, 5)
        await wait_until(pilot, lambda: expired.check_action("retry", ()) is True, "retry")
        await shot(pilot, svg, "failure_expired")
        await pilot.press("r")
        await wait_for_screen(pilot, ConfirmNoSmsScreen)
        await shot(pilot, svg, "confirm_no_sms")
        # Meanwhile the customer did pay the first prompt (its callback is still on its way).
        await quiet_till.sim.advance_clock(130)
        await wait_until(pilot, lambda: bool(quiet_till.receiver.events), "the late callback")
        await pilot.press("y")
        # Before the retry prompt the first attempt is asked about: paid, so no second prompt.
        await wait_for_screen(pilot, SuccessScreen)
        await shot(pilot, svg, "success_paid_late")


async def test_paid_by_query_then_receipt(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    await script(quiet_till, "254712000505", drop_callback=True)
    app = build_app(quiet_till)
    async with app.run_test(size=SIZE) as pilot:
        await to_phone(pilot, "95")
        await put(pilot, "#phone", "0712000505")
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        await answer(quiet_till)
        await advance(pilot, quiet_till, 31)
        await quiet_till.engine.reconcile_once()
        await wait_for_screen(pilot, SuccessScreen)
        await shot(pilot, svg, "success_receipt_to_follow")


async def test_needs_review(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    await script(quiet_till, "254712000606")
    app = build_app(quiet_till)
    async with app.run_test(size=SIZE) as pilot:
        await to_phone(pilot, "700")
        await put(pilot, "#phone", "0712000606")
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        await answer(quiet_till)
        await wait_until(pilot, lambda: bool(quiet_till.receiver.events), "the callback")
        # Safaricom says a different amount was paid: evidence disagrees, a manager decides.
        event = quiet_till.receiver.events.pop()
        body = event.body.replace(b"700.00", b"70.00").replace(b"700.0", b"70.0")
        await quiet_till.engine.apply_callback(event.model_copy(update={"body": body}))
        review: Any = await wait_for_screen(pilot, FailureScreen)
        assert review.view.state is AttemptState.NEEDS_REVIEW
        await shot(pilot, svg, "failure_needs_review")


class _ProblemsScreen(Screen[None]):
    def compose(self) -> Any:
        yield Label("problem payments")


async def test_items_and_menus(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    problems = ScreenCommand(
        id="manager.problems",
        title="Problem payments",
        help="failed, stuck and suspicious payments",
        open=lambda app: _ProblemsScreen(),
    )
    app = build_app(quiet_till, extensions=[problems])
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        for name, qty, price in (("Sugar 1kg", "2", "185"), ("Bread 400g", "1", "65")):
            await pilot.press("f3")
            await wait_for_screen(pilot, ItemScreen)
            await put(pilot, "#item-name", name)
            await put(pilot, "#item-qty", qty)
            await put(pilot, "#item-price", price)
            if name.startswith("Bread"):
                await shot(pilot, svg, "item_dialog")
            await pilot.press("enter")
            await wait_for_screen(pilot, CheckoutScreen)
        await shot(pilot, svg, "checkout_items")
        await pilot.press("f9")
        await wait_for_screen(pilot, ManagerMenuScreen)
        await shot(pilot, svg, "manager_menu")


async def test_counter_refusals(shop_till: TillHarness, svg: SnapshotAssertion) -> None:
    """What M-Pesa cannot take, refused on screen as typed (issue #12)."""
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await pilot.press(*"10.50")
        await shot(pilot, svg, "checkout_cents_refused")
        await put(pilot, "#total", "50")
        await put(pilot, "#sale-ref", "REF123456789")
        await pilot.press("enter")
        await shot(pilot, svg, "checkout_reference_too_long")
        await pilot.press("f4")
        await wait_until(pilot, lambda: checkout.ref_problem() is None, "a fresh reference")
        await pilot.press("f3")
        await wait_for_screen(pilot, ItemScreen)
        await pilot.press(*"Sugar", "tab", "tab", *"185.50", "enter")
        await shot(pilot, svg, "item_price_cents_refused")


async def test_recent_numbers_told_apart(quiet_till: TillHarness, svg: SnapshotAssertion) -> None:
    phones = ["254712000403", "254712000413"]
    app = build_app(quiet_till)
    async with app.run_test(size=SIZE) as pilot:
        for phone in phones:
            await script(quiet_till, phone)
            await to_phone(pilot, "60")
            await put(pilot, "#phone", "0" + phone[3:])
            await pilot.press("enter")
            await wait_for_screen(pilot, WaitingScreen)
            await pilot.press("s")
            await wait_for_screen(pilot, CheckoutScreen)
        phone_screen: Any = await to_phone(pilot, "70")
        await wait_until(pilot, lambda: len(phone_screen.recent) == 2, "recent phones")
        await pilot.press("down", "down")
        await shot(pilot, svg, "phone_recent_told_apart")
        await pilot.press("escape")
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("ctrl+q")
        await wait_for_screen(pilot, ConfirmQuitScreen)
        await shot(pilot, svg, "quit_with_payments_waiting")
        await pilot.press("n")
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("f2")
        sales: Any = await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: len(sales.views) == 2, "the two sales")
        await shot(pilot, svg, "sales_today")
