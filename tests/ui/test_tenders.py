"""Cash and split tenders at the checkout, driven through the real app (Pilot) on a real till:
cash for the whole sale with its change in large figures, part cash then an M-Pesa prompt for
the rest, a prompt for part (F3 on the phone screen) then cash, bad cash input refused with
words and nothing changed, and a part paid sale cleared with F4 left for the manager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.widgets import Static

from smartduka_tui.model import ProblemKind, SaleState, TenderKind
from smartduka_tui.payments.sales import Secret
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.ui.screens.cash import CashScreen
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.failure import FailureScreen
from smartduka_tui.ui.screens.part_amount import PartAmountScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.sales import SalesScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.undo_sale import UndoSaleScreen
from smartduka_tui.ui.screens.waiting import WaitingScreen
from smartduka_tui.ui.widgets.big_text import BigText
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.shifts.conftest import open_test_shift
from tests.ui.conftest import SIZE, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import answer, put, script


@pytest.fixture(autouse=True)
async def cash_drawer_shift(shop_till: TillHarness) -> None:
    """Cash needs an open shift (the shifts work's cash gate): each test has one open."""
    await open_test_shift(shop_till.store, shop_till.shop_id, shop_till.till_id)


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


def text_of(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def shows(screen: Any, selector: str, text: str) -> Callable[[], bool]:
    return lambda: text_of(screen, selector) == text


async def ready_checkout(pilot: Any) -> CheckoutScreen:
    checkout = await wait_for_screen(pilot, CheckoutScreen)
    await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
    return checkout


async def open_cash(pilot: Any, total: int | None = None) -> CashScreen:
    if total is not None:
        await put(pilot, "#total", str(total))
    await pilot.press("f10")
    return await wait_for_screen(pilot, CashScreen)


async def sale_state(harness: TillHarness) -> tuple[Any, ...]:
    sales = await harness.store.db.fetchall("SELECT * FROM sales ORDER BY sale_ref")
    tenders = await harness.store.db.fetchall("SELECT * FROM sale_tenders ORDER BY id")
    return tuple(map(tuple, sales)), tuple(map(tuple, tenders))


async def test_cash_for_the_whole_sale_shows_the_change_large_and_pays_it(
    shop_till: TillHarness, svg: SnapshotAssertion
) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await ready_checkout(pilot)
        sale_ref = checkout.sale_ref
        cash = await open_cash(pilot, 350)
        await put(pilot, "#cash-given", "1,000")
        await pilot.press("enter")
        await wait_until(pilot, lambda: cash.taken is not None, "the cash taken")
        await pilot.pause()
        assert cash.query_one("#change-big", BigText).text == "650"
        assert text_of(cash, "#cash-outcome") == (
            f"✔ PAID: sale {sale_ref}, KES 350. Cash given KES 1,000, change KES 650. "
            "Enter: next sale."
        )
        assert svg == app.export_screenshot()
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref not in ("", sale_ref), "next sale")
    sale = await shop_till.engine.sales.get(sale_ref)
    assert sale is not None and sale.state is SaleState.PAID
    [tender] = sale.tenders
    assert (tender.kind, tender.amount, tender.cash_given, tender.change_given) == (
        TenderKind.CASH,
        350,
        1000,
        650,
    )


async def test_bad_cash_input_is_refused_with_words_and_changes_nothing(
    shop_till: TillHarness, svg: SnapshotAssertion
) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await ready_checkout(pilot)
        cash = await open_cash(pilot, 500)
        before = await sale_state(shop_till)
        cases = [
            (
                "300",
                "500",
                "✖ KES 300 given is less than the KES 500 still owed. To take part in cash and "
                "the rest by M-Pesa, type the cash part in 'Pay in cash' (e.g. 300).",
            ),
            ("abc", "500", "✖ The cash given must be whole shillings in digits (0 to 9)."),
            ("500.50", "500", "✖ The cash given: whole shillings only (M-Pesa takes no cents)."),
            (
                "900",
                "600",
                "✖ KES 600 is more than the KES 500 still owed: the tenders must add up to the "
                "total exactly. Type at most the amount owed.",
            ),
            (
                "900",
                "0",
                "✖ A part of KES 0 pays nothing: type the part paid in cash, at least KES 1.",
            ),
        ]
        for given, part, message in cases:
            await put(pilot, "#cash-given", given)
            await put(pilot, "#cash-part", part)
            await pilot.press("enter")
            await wait_until(pilot, shows(cash, "#cash-problem", message), message, timeout=10)
            assert cash.taken is None
            assert await sale_state(shop_till) == before
        await put(pilot, "#cash-given", "300")
        await put(pilot, "#cash-part", "500")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "less than" in text_of(cash, "#cash-problem"), "refusal")
        await pilot.pause()
        assert svg == app.export_screenshot()
    assert await sale_state(shop_till) == before


async def test_part_cash_then_a_prompt_for_the_rest(shop_till: TillHarness) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await ready_checkout(pilot)
        sale_ref = checkout.sale_ref
        cash = await open_cash(pilot, 500)
        await put(pilot, "#cash-given", "200")
        await put(pilot, "#cash-part", "200")
        await pilot.press("enter")
        await wait_until(pilot, lambda: cash.taken is not None, "the cash taken")
        assert text_of(cash, "#cash-outcome").startswith("KES 200 paid in cash; KES 300 still")
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.part_paid, "the part paid sale")
        assert checkout.sale_ref == sale_ref and checkout.amount() == 300
        assert text_of(checkout, "#total-hint").startswith("Paid KES 200 cash. Still owed KES 300")
        await pilot.press("enter")
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        assert phone_screen.amount == 300
        await put(pilot, "#phone", "0" + phone[3:])
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        await answer(shop_till)
        success = await wait_for_screen(pilot, SuccessScreen)
        assert success.owed == 0
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref not in ("", sale_ref), "next sale")
    sale = await shop_till.engine.sales.get(sale_ref)
    assert sale is not None
    assert (sale.state, sale.cash, sale.mpesa) == (SaleState.PAID, 200, 300)


async def test_a_prompt_for_part_then_cash_for_the_rest(
    shop_till: TillHarness, svg: SnapshotAssertion
) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await ready_checkout(pilot)
        sale_ref = checkout.sale_ref
        await put(pilot, "#total", "700")
        await pilot.press("enter")
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        await pilot.press("f3")
        part = await wait_for_screen(pilot, PartAmountScreen)
        for typed, message in (
            ("800", "✖ KES 800 is more than the KES 700 owed: the tenders must add up to the "
             "total exactly."),
            ("0", "✖ A part of KES 0 charges nothing: type at least KES 1."),
            ("4.50", "✖ The amount: whole shillings only (M-Pesa takes no cents)."),
        ):  # fmt: skip
            await put(pilot, "#part-amount", typed)
            await pilot.press("enter")
            await wait_until(pilot, shows(part, "#part-problem", message), message)
        await put(pilot, "#part-amount", "450")
        await pilot.pause()
        assert svg == app.export_screenshot()
        await pilot.press("enter")
        await wait_for_screen(pilot, PhoneScreen)
        assert phone_screen.amount == 450
        assert "Pay KES 450 by M-Pesa" in str(phone_screen.query_one("#phone-title").render())
        await put(pilot, "#phone", "0" + phone[3:])
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        await answer(shop_till)
        success = await wait_for_screen(pilot, SuccessScreen)
        await wait_until(pilot, lambda: success.owed == 250, "the rest owed")
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.part_paid, "the part paid sale")
        cash = await open_cash(pilot)
        await put(pilot, "#cash-given", "300")
        await pilot.press("enter")
        await wait_until(pilot, lambda: cash.taken is not None, "the cash taken")
        assert cash.query_one("#change-big", BigText).text == "50"
    sale = await shop_till.engine.sales.get(sale_ref)
    assert sale is not None
    assert (sale.state, sale.mpesa, sale.cash, sale.change) == (SaleState.PAID, 450, 250, 50)


async def test_a_part_paid_sale_cleared_with_f4_goes_to_the_manager(
    shop_till: TillHarness,
) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await ready_checkout(pilot)
        sale_ref = checkout.sale_ref
        cash = await open_cash(pilot, 800)
        await put(pilot, "#cash-given", "500")
        await put(pilot, "#cash-part", "500")
        await pilot.press("enter")
        await wait_until(pilot, lambda: cash.taken is not None, "the cash taken")
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.part_paid, "the part paid sale")
        await pilot.press("f4")
        await wait_until(pilot, lambda: not checkout.part_paid, "the sale cleared")
        await wait_until(pilot, lambda: "problem list" in checkout.notice_text, "the notice")
        assert checkout.notice_text == (
            f"Sale {sale_ref} cleared with KES 500 of KES 800 paid: it is on the manager's "
            "problem list (give the money back, or the manager finishes it)."
        )
    sale = await shop_till.engine.sales.get(sale_ref)
    assert sale is not None and sale.state is SaleState.ABANDONED
    [problem] = await shop_till.store.problems.list(shop_till.shop_id)
    assert problem.kind is ProblemKind.ABANDONED_SALE


async def test_void_and_refund_from_f2_sales_ask_the_pin_and_a_note(
    shop_till: TillHarness, svg: SnapshotAssertion
) -> None:
    assert (await ManagerPin.of(shop_till.store).set(Secret("4827"))).accepted
    desk = shop_till.engine.sales
    await desk.take_cash("C1", 200, 500)
    shop_till.clock.advance(1)
    await desk.take_cash("C2", 300, 300)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await ready_checkout(pilot)
        await pilot.press("f2")
        sales = await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: len(sales.rows) == 2, "both cash sales")
        assert [(r.sale_ref, r.phone, r.status) for r in sales.rows] == [
            ("C2", "cash", "paid cash"),
            ("C1", "cash", "paid cash"),
        ]
        await pilot.press("x")
        undo = await wait_for_screen(pilot, UndoSaleScreen)
        before = await sale_state(shop_till)
        for pin, note, message in (
            ("1111", "rang up twice", "✖ Wrong manager PIN: 4 tries left before it locks for "
             "5 minutes."),
            ("4827", "", "✖ Say why in the note (1 to 500 characters)."),
        ):  # fmt: skip
            await put(pilot, "#undo-pin", pin)
            await put(pilot, "#undo-note", note)
            await pilot.press("enter")

            await wait_until(pilot, shows(undo, "#undo-problem", message), message)
            assert await sale_state(shop_till) == before
        await pilot.pause()
        assert svg == app.export_screenshot()
        await put(pilot, "#undo-pin", "4827")
        await put(pilot, "#undo-note", "rang up twice")
        await pilot.press("enter")
        await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: "voided" in sales.notice_text, "the notice")
        assert sales.notice_text == "Sale C2 voided: give the customer KES 300 cash back."
        await wait_until(pilot, lambda: sales.rows[0].status == "voided", "the row voided")
        # Voiding it again is refused with words.
        await pilot.press("x")
        undo = await wait_for_screen(pilot, UndoSaleScreen)
        await put(pilot, "#undo-pin", "4827")
        await put(pilot, "#undo-note", "again")
        await pilot.press("enter")
        message = "✖ Sale C2 is voided already."
        await wait_until(pilot, shows(undo, "#undo-problem", message), message)
        await pilot.press("escape")
        await wait_for_screen(pilot, SalesScreen)
        await pilot.press("down", "r")
        undo = await wait_for_screen(pilot, UndoSaleScreen)
        assert undo.sale_ref == "C1" and undo.refund
        await put(pilot, "#undo-pin", "4827")
        await put(pilot, "#undo-note", "goods returned")
        await pilot.press("enter")
        await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: "refunded" in sales.notice_text, "the notice")
    voided, refunded = await desk.get("C2"), await desk.get("C1")
    assert voided is not None and voided.state is SaleState.VOIDED
    assert refunded is not None and refunded.state is SaleState.REFUNDED


async def test_refunding_a_split_sale_says_only_the_cash_goes_back_and_names_the_receipt(
    shop_till: TillHarness,
) -> None:
    """R on a sale paid part cash, part M-Pesa: the screen says before and after that only the
    cash is refunded and which receipt still needs its reversal (V); the row says so too."""
    assert (await ManagerPin.of(shop_till.store).set(Secret("4827"))).accepted
    desk = shop_till.engine.sales
    await desk.take_cash("C5", 500, 200, part=200)
    view = await shop_till.engine.start_payment("C5", 300, unique_phone())
    await shop_till.advance_sim(5)
    receipt = (await shop_till.engine.get(view.attempt_id)).receipt
    assert receipt
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await ready_checkout(pilot)
        await pilot.press("f2")
        sales = await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: len(sales.rows) == 1, "the split sale")
        assert sales.rows[0].status == f"paid {receipt}"
        await pilot.press("r")
        undo = await wait_for_screen(pilot, UndoSaleScreen)
        assert text_of(undo, "#undo-help") == (
            "Manager only. This refunds only the KES 200 cash. The KES 300 paid by M-Pesa "
            f"({receipt}) is not refunded here: reverse it with V in the manager's screens."
        )
        await put(pilot, "#undo-pin", "4827")
        await put(pilot, "#undo-note", "goods returned")
        await pilot.press("enter")
        await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: "refunded" in sales.notice_text, "the notice")
        assert sales.notice_text == (
            "Sale C5 refunded: give the customer KES 200 cash back. The KES 300 M-Pesa part "
            f"({receipt}) awaits its reversal: V in the manager's screens."
        )
        await wait_until(
            pilot, lambda: sales.rows[0].status == "refunded: reverse M-Pesa", "the row"
        )
    refunded = await desk.get("C5")
    assert refunded is not None and refunded.state is SaleState.REFUNDED


async def test_a_split_whose_prompt_fails_and_is_cancelled_goes_to_the_manager(
    shop_till: TillHarness,
) -> None:
    phone = await script(shop_till, unique_phone(), result_code=1032)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await ready_checkout(pilot)
        sale_ref = checkout.sale_ref
        cash = await open_cash(pilot, 600)
        await put(pilot, "#cash-given", "100")
        await put(pilot, "#cash-part", "100")
        await pilot.press("enter")
        await wait_until(pilot, lambda: cash.taken is not None, "the cash taken")
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.part_paid, "the part paid sale")
        await pilot.press("enter")
        await wait_for_screen(pilot, PhoneScreen)
        await put(pilot, "#phone", "0" + phone[3:])
        await pilot.press("enter")
        await wait_for_screen(pilot, WaitingScreen)
        await answer(shop_till)
        await wait_for_screen(pilot, FailureScreen)
        await pilot.press("escape")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: "problem list" in checkout.notice_text, "the notice")
        assert checkout.sale_ref != sale_ref
    sale = await shop_till.engine.sales.get(sale_ref)
    assert sale is not None and (sale.state, sale.owed) == (SaleState.ABANDONED, 500)
    [problem] = await shop_till.store.problems.list(shop_till.shop_id)
    assert problem.kind is ProblemKind.ABANDONED_SALE


async def test_a_screen_service_call_answered_refused_or_failing_unexpectedly(
    shop_till: TillHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one call helper (`ServiceCalls.call_service`) on a real screen, each outcome in turn:
    a refusal shows the service's words and changes nothing; an unexpected error is reported in
    plain words (no exception text) and changes nothing; then the same key is offered again and
    its answer lands."""
    desk = shop_till.engine.sales
    take_cash = desk.take_cash
    calls: list[int] = []

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[2])
        if len(calls) == 2:
            raise RuntimeError("disk on fire: consumer_secret=do-not-show")
        return await take_cash(*args, **kwargs)

    monkeypatch.setattr(desk, "take_cash", fails_once)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await ready_checkout(pilot)
        cash = await open_cash(pilot, 500)
        before = await sale_state(shop_till)

        await put(pilot, "#cash-given", "300")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "less than" in text_of(cash, "#cash-problem"), "refusal")
        assert not cash.busy and cash.check_action("take", ()) is True
        assert cash.taken is None
        assert await sale_state(shop_till) == before

        await put(pilot, "#cash-given", "600")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(calls) == 2 and not cash.busy, "the failed call")
        await pilot.pause()
        assert text_of(cash, "#cash-problem") == "✖ No cash was recorded. Try again."
        assert cash.notice_text.startswith("Something went wrong while taking cash")
        assert "disk on fire" not in cash.notice_text
        assert cash.taken is None and cash.check_action("take", ()) is True
        assert await sale_state(shop_till) == before

        await pilot.press("enter")
        await wait_until(pilot, lambda: cash.taken is not None, "the cash taken")
        assert cash.taken is not None and cash.taken.change == 100
        assert calls == [300, 600, 600]
