"""Sales and their tenders on a real till (store, engine, simulator): every paid sale is a sale
record written in the payment's own transaction; cash and split in either order; bad cash input
refused with words and nothing changed; abandoned sales for the manager; void and refund."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from smartduka_tui.manager import PaymentLists, ProblemCategory, ProblemFilter
from smartduka_tui.model import AttemptState, AuditAction, ProblemKind, SaleState, TenderKind
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.sales import SaleDesk, SaleRefused, SaleView, numbered_ref
from smartduka_tui.store import Secret
from smartduka_tui.store.pin import ManagerPin
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.shifts.conftest import open_test_shift


@pytest.fixture(autouse=True)
async def cash_drawer_shift(shop_till: TillHarness) -> None:
    """Cash needs an open shift (the shifts work's cash gate): each test has one open."""
    await open_test_shift(shop_till.store, shop_till.shop_id, shop_till.till_id)


PIN = "4827"


async def _paid_by_prompt(harness: TillHarness, sale_ref: str, amount: int) -> str:
    view = await harness.engine.start_payment(sale_ref, amount, unique_phone())
    assert view.state is AttemptState.PENDING
    await harness.advance_sim(5)
    view = await harness.engine.get(view.attempt_id)
    assert view.state is AttemptState.COMPLETED, view
    return view.attempt_id


async def _sale_actions(harness: TillHarness) -> list[str]:
    entries = await harness.store.audit.search(harness.shop_id, include_system=True, limit=500)
    return [e.action for e in reversed(entries) if e.action.startswith("sale.")]


async def _state(harness: TillHarness) -> tuple[Any, ...]:
    """What a refused input must leave as it was: the sales, their tenders and the audit."""
    sales = await harness.store.db.fetchall("SELECT * FROM sales ORDER BY sale_ref")
    tenders = await harness.store.db.fetchall("SELECT * FROM sale_tenders ORDER BY id")
    audit = await harness.store.db.fetchone("SELECT count(*) AS n FROM audit_log")
    assert audit is not None
    return tuple(map(tuple, sales)), tuple(map(tuple, tenders)), audit["n"]


def _desk(harness: TillHarness) -> SaleDesk:
    return harness.engine.sales


async def test_a_prompt_paid_sale_is_a_sale_record_with_its_tender(shop_till: TillHarness) -> None:
    attempt_id = await _paid_by_prompt(shop_till, "S1", 120)
    sale = await _desk(shop_till).get("S1")
    assert sale is not None
    assert (sale.state, sale.total, sale.owed) == (SaleState.PAID, 120, 0)
    [tender] = sale.tenders
    view = await shop_till.engine.get(attempt_id)
    assert (tender.kind, tender.amount, tender.receipt) == (TenderKind.MPESA_STK, 120, view.receipt)
    # The attempt's completion and the sale's entries follow each other: one transaction.
    entries = await shop_till.store.audit.entries(shop_till.shop_id, limit=20)
    actions = [e.action for e in reversed(entries)]
    done = actions.index(
        AuditAction.ATTEMPT_TRANSITION, actions.index(AuditAction.ATTEMPT_TRANSITION) + 1
    )
    assert actions[done : done + 4] == [
        AuditAction.ATTEMPT_TRANSITION,
        AuditAction.SALE_OPENED,
        AuditAction.SALE_TENDER_ADDED,
        AuditAction.SALE_PAID,
    ]


async def test_the_sale_tender_and_the_completion_commit_together(
    shop_till: TillHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tender that cannot be written takes the attempt's completion down with it."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk said no")

    # The answer waits for the simulator's clock alone: at its default 1.5 real seconds, a busy
    # machine could deliver it before the tender write is broken below.
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, callback_delay_s=60)
    view = await shop_till.engine.start_payment("S2", 80, phone)
    monkeypatch.setattr(shop_till.store.sales, "add_tender", broken)
    await shop_till.sim.advance_clock(61)
    with pytest.raises(RuntimeError, match="disk said no"):
        await shop_till.settle()
    assert (await shop_till.engine.get(view.attempt_id)).state is AttemptState.PENDING
    assert await _desk(shop_till).get("S2") is None


async def test_cash_for_the_whole_sale_gives_change_and_pays_it(shop_till: TillHarness) -> None:
    desk = _desk(shop_till)
    taken = await desk.take_cash("S3", 350, 500, lines=[("Sugar", 1, 200), ("Tea", 3, 50)])
    assert (taken.part, taken.given, taken.change, taken.completed) == (350, 500, 150, True)
    sale = await desk.get("S3")
    assert sale is not None and sale.state is SaleState.PAID
    assert [(t.kind, t.amount, t.cash_given, t.change_given) for t in sale.tenders] == [
        (TenderKind.CASH, 350, 500, 150)
    ]
    assert await _sale_actions(shop_till) == ["sale.opened", "sale.tender_added", "sale.paid"]
    assert await shop_till.engine.sales.ref_in_use("S3")


async def test_part_cash_then_a_prompt_for_the_rest(shop_till: TillHarness) -> None:
    desk = _desk(shop_till)
    taken = await desk.take_cash("S4", 500, 1000, part=200)
    assert (taken.change, taken.completed, taken.sale.owed) == (800, False, 300)
    await _paid_by_prompt(shop_till, "S4", 300)
    sale = await desk.get("S4")
    assert sale is not None
    assert (sale.state, sale.cash, sale.mpesa, sale.owed) == (SaleState.PAID, 200, 300, 0)


async def test_a_prompt_for_part_then_cash_for_the_rest(shop_till: TillHarness) -> None:
    desk = _desk(shop_till)
    opened = await desk.open("S5", 700)
    assert opened.state is SaleState.OPEN
    await _paid_by_prompt(shop_till, "S5", 450)
    sale = await desk.get("S5")
    assert sale is not None and (sale.state, sale.owed) == (SaleState.OPEN, 250)
    taken = await desk.take_cash("S5", 700, 300)
    assert (taken.part, taken.change, taken.completed) == (250, 50, True)


async def test_bad_cash_input_is_refused_with_words_and_changes_nothing(
    shop_till: TillHarness,
) -> None:
    desk = _desk(shop_till)
    await desk.take_cash("S6", 500, 100, part=100)
    before = await _state(shop_till)
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"given": 300},
            "KES 300 given is less than the KES 400 still owed. To take part in cash and the "
            "rest by M-Pesa, type the cash part in 'Pay in cash' (e.g. 300).",
        ),
        (
            {"given": 600, "part": 450},
            "KES 450 is more than the KES 400 still owed: the tenders must add up to the total "
            "exactly. Type at most the amount owed.",
        ),
        (
            {"given": 100, "part": 0},
            "A part of KES 0 pays nothing: type the part paid in cash, at least KES 1.",
        ),
        (
            {"given": 100, "part": 200},
            "KES 100 given is less than the KES 200 part in cash: the cash given must cover "
            "the part it pays.",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(SaleRefused) as refused:
            await desk.take_cash("S6", 500, **kwargs)
        assert refused.value.message == message
        assert await _state(shop_till) == before
    with pytest.raises(SaleRefused, match="the total cannot change now"):
        await desk.open("S6", 900)
    assert await _state(shop_till) == before


async def test_a_part_paid_sale_cleared_goes_to_the_manager_in_plain_words(
    shop_till: TillHarness,
) -> None:
    desk = _desk(shop_till)
    await desk.take_cash("S7", 900, 500, part=400)
    abandoned = await desk.abandon("S7")
    assert abandoned is not None and abandoned.state is SaleState.ABANDONED
    assert await desk.abandon("S7") is None  # nothing open to clear any more
    # A sale with nothing paid is cleared quietly: no problem for anyone.
    await desk.open("S8", 50)
    await desk.abandon("S8")
    [problem] = await shop_till.store.problems.list(shop_till.shop_id)
    assert problem.kind is ProblemKind.ABANDONED_SALE
    lists = PaymentLists(shop_till.store, shop_till.shop_id)
    page = await lists.problems(
        ProblemFilter(categories=frozenset({ProblemCategory.ABANDONED_SALE}))
    )
    [row] = page.rows
    assert row.summary == (
        "Sale S7 was left part paid: KES 400 in cash taken of KES 900, KES 500 still owed "
        "(finish it, or give the money back)"
    )
    assert row.category is ProblemCategory.ABANDONED_SALE
    assert (row.category.label, row.sale_ref, row.amount) == ("Part paid", "S7", 400)


async def test_a_sale_left_open_by_a_stopped_till_is_abandoned_at_start(
    shop_till: TillHarness,
) -> None:
    await _desk(shop_till).open("S9", 300)
    await _paid_by_prompt(shop_till, "S9", 100)
    await shop_till.restart()
    sale = await _desk(shop_till).get("S9")
    assert sale is not None and sale.state is SaleState.ABANDONED
    [problem] = await shop_till.store.problems.list(shop_till.shop_id)
    assert problem.detail["tenders"][0]["kind"] == "MPESA_STK"
    assert (problem.detail["paid"], problem.detail["owed"]) == (100, 200)


async def _set_pin(harness: TillHarness) -> None:
    check = await ManagerPin.of(harness.store).set(Secret(PIN))
    assert check.accepted


async def test_void_and_refund_of_a_cash_sale(shop_till: TillHarness) -> None:
    await _set_pin(shop_till)
    desk = _desk(shop_till)
    start = shop_till.clock.now()
    await desk.take_cash("S10", 200, 200)
    await desk.take_cash("S11", 300, 500)
    await desk.take_cash("S12", 400, 400)
    shop_till.clock.advance(1)
    voided = await desk.void("S10", Secret(PIN), "rang up twice")
    assert (voided.state, voided.note) == (SaleState.VOIDED, "rang up twice")
    refunded = await desk.refund("S11", Secret(PIN), "goods returned")
    assert refunded.state is SaleState.REFUNDED
    totals = await shop_till.store.sales.tender_totals(
        shop_till.shop_id, start, shop_till.clock.now()
    )
    assert totals[TenderKind.CASH] == 400
    entries = await shop_till.store.audit.search(shop_till.shop_id, include_system=True, limit=50)
    void_entry = next(e for e in entries if e.action == AuditAction.SALE_VOIDED)
    assert void_entry.actor.value == "manager"
    assert void_entry.detail["note"] == "rang up twice"


async def test_void_and_refund_refusals_say_why_and_change_nothing(
    shop_till: TillHarness,
) -> None:
    await _set_pin(shop_till)
    desk = _desk(shop_till)
    await desk.take_cash("S13", 200, 200)
    await desk.void("S13", Secret(PIN), "mistake")
    await _paid_by_prompt(shop_till, "S14", 150)
    await desk.take_cash("S15", 90, 100)
    before = await _state(shop_till)
    cases: list[tuple[Callable[[], Awaitable[SaleView]], str]] = [
        (lambda: desk.void("S13", Secret(PIN), "again"), "Sale S13 is voided already."),
        (
            lambda: desk.refund("S14", Secret(PIN), "returned"),
            "Sale S14 has no cash tender: an M-Pesa payment is refunded by reversal (V on the "
            "payment in the manager's screens).",
        ),
        (
            lambda: desk.void("S14", Secret(PIN), "returned"),
            "Sale S14 was paid KES 150 by M-Pesa: that money goes back by reversal (V on the "
            "payment in the manager's screens), never by a void.",
        ),
        (
            lambda: desk.void("S15", Secret("0000"), "wrong pin"),
            "Wrong manager PIN: 4 tries left before it locks for 5 minutes.",
        ),
        (lambda: desk.void("S15", Secret(PIN), "  "), "Say why in the note (1 to 500 characters)."),
        (lambda: desk.void("S99", Secret(PIN), "no such"), "There is no sale S99 at this till."),
    ]
    for call, message in cases:
        with pytest.raises(SaleRefused) as refused:
            await call()
        assert refused.value.message == message
    after = await _state(shop_till)
    # The wrong PIN's try is audited (manager.sign_in_failed); the sales are as they were.
    assert after[:2] == before[:2]
    sale = await desk.get("S15")
    assert sale is not None and sale.state is SaleState.PAID


# ------------------------------------------------------------------------------ numbering


async def test_sale_numbers_run_gapless_from_one_each_day_past_every_use(
    shop_till: TillHarness,
) -> None:
    """The engine numbers sales `MMDD` and a counter in Kenya time: a number a sale record,
    an attempt or a cash sale used is never offered again, and asking again before it is
    used gives the same number (F4 on an untouched sale)."""
    engine = shop_till.engine
    first = await engine.next_sale_ref("checkout")
    day = f"{shop_till.clock.now().astimezone(KENYA_TZ):%m%d}"
    assert first == f"{day}001"
    assert await engine.next_sale_ref("checkout") == first
    await _desk(shop_till).take_cash(first, 100, 100)
    second = await engine.next_sale_ref("checkout")
    assert second == f"{day}002"
    await engine.start_payment(second, 50, unique_phone())
    third = await engine.next_sale_ref("checkout")
    assert third == f"{day}003"
    # A number typed by hand ahead of the run is stepped over, and the gap before it filled.
    await _desk(shop_till).take_cash(f"{day}005", 100, 100)
    await _desk(shop_till).take_cash(third, 100, 100)
    assert await engine.next_sale_ref("checkout") == f"{day}004"
    await _desk(shop_till).take_cash(f"{day}004", 100, 100)
    assert await engine.next_sale_ref("checkout") == f"{day}006"


async def test_two_holders_never_get_the_same_number(shop_till: TillHarness) -> None:
    engine = shop_till.engine
    one = await engine.next_sale_ref("window 1")
    other = await engine.next_sale_ref("window 2")
    cli = await engine.next_sale_ref("cli")
    assert len({one, other, cli}) == 3
    assert [one[-3:], other[-3:], cli[-3:]] == ["001", "002", "003"]
    # Each holder keeps its own until it is used.
    assert await engine.next_sale_ref("window 2") == other
    await _desk(shop_till).take_cash(one, 100, 100)
    assert (await engine.next_sale_ref("window 1"))[-3:] == "004"


async def test_sale_numbers_survive_a_restart(shop_till: TillHarness) -> None:
    first = await shop_till.engine.next_sale_ref("checkout")
    await _desk(shop_till).take_cash(first, 100, 100)
    engine = await shop_till.restart()
    assert (await engine.next_sale_ref("checkout"))[-3:] == "002"


async def test_sale_numbers_start_again_at_one_on_the_next_kenya_day(
    shop_till: TillHarness,
) -> None:
    first = await shop_till.engine.next_sale_ref("checkout")
    await _desk(shop_till).take_cash(first, 100, 100)
    now = shop_till.clock.now().astimezone(KENYA_TZ)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    shop_till.clock.advance((midnight - now).total_seconds())
    reference = await shop_till.engine.next_sale_ref("checkout")
    assert reference == f"{midnight:%m%d}001" and reference != first


def test_a_numbered_reference_widens_past_999() -> None:
    day = datetime(2026, 1, 15, 9, tzinfo=KENYA_TZ)
    assert [numbered_ref(day, n) for n in (1, 999, 1000, 9999)] == [
        "0115001",
        "0115999",
        "01151000",
        "01159999",
    ]
    # The Kenya date, not the UTC one: 22:30 UTC on the 14th is the 15th in Nairobi.
    assert numbered_ref(datetime(2026, 1, 14, 22, 30, tzinfo=UTC), 7) == "0115007"
