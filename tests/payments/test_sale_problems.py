"""Money that arrives for a sale left part paid (issue #15), on a real till (SQLite store,
engine, simulator): every path by which it can come (a late callback, the reconciler's
query, the statement pull, the manager's "paid, receipt X", a direct payment attached) makes
the sale and its "Part paid" problem true in the payment's own transaction; a void or refund
settles the problem; money a sale cannot take is never a tender but a problem to give back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from smartduka_tui.manager import (
    ManagerService,
    PaymentLists,
    ProblemCategory,
    ProblemFilter,
    Resolution,
)
from smartduka_tui.manager.lists import record_row
from smartduka_tui.model import (
    Actor,
    AttemptFlag,
    AttemptState,
    AuditAction,
    ProblemKind,
    SaleState,
    TenderKind,
)
from smartduka_tui.payments.api import PaymentRefused
from smartduka_tui.payments.c2b import receive
from smartduka_tui.payments.sales import (
    SaleDesk,
    SaleRefused,
    owed_for_direct,
    record_direct_payment,
)
from smartduka_tui.store import Secret
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.store.records import Problem
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.payments.test_pull import c2b_body, pull_of
from tests.shifts.conftest import open_test_shift

PIN = "4827"


@pytest.fixture(autouse=True)
async def cash_drawer_shift(shop_till: TillHarness) -> None:
    """Cash needs an open shift (the shifts work's cash gate): each test has one open."""
    await open_test_shift(shop_till.store, shop_till.shop_id, shop_till.till_id)


@pytest.fixture
async def pull_till(pull_till: TillHarness) -> TillHarness:
    """The pulling till (another shop on the same simulator) with a shift open too."""
    await open_test_shift(pull_till.store, pull_till.shop_id, pull_till.till_id)
    return pull_till


def desk(h: TillHarness) -> SaleDesk:
    return h.engine.sales


async def part_paid(h: TillHarness, sale_ref: str, total: int, cash: int) -> None:
    """A sale with `cash` taken toward `total`, cleared at the checkout: ABANDONED, a problem."""
    await desk(h).take_cash(sale_ref, total, cash, part=cash)
    abandoned = await desk(h).abandon(sale_ref)
    assert abandoned is not None and abandoned.state is SaleState.ABANDONED


async def sale_problems(h: TillHarness, sale_ref: str) -> list[Problem]:
    every = await h.store.problems.list(h.shop_id, include_resolved=True, limit=100)
    return [p for p in every if p.detail.get("sale_ref") == sale_ref]


async def part_paid_problem(h: TillHarness, sale_ref: str) -> Problem:
    [problem] = [
        p for p in await sale_problems(h, sale_ref) if p.kind is ProblemKind.ABANDONED_SALE
    ]
    return problem


async def actions(h: TillHarness) -> list[tuple[str, Mapping[str, Any]]]:
    entries = await h.store.audit.search(h.shop_id, include_system=True, limit=1000)
    return [(e.action, e.detail) for e in reversed(entries)]


async def assert_paid_in_full(h: TillHarness, sale_ref: str, note: str) -> None:
    """The sale is PAID, its problem resolved with `note`, in the payment's transaction: the
    tender, the sale's move and the resolution follow each other in the audit log."""
    sale = await desk(h).get(sale_ref)
    assert sale is not None
    assert (sale.state, sale.owed) == (SaleState.PAID, 0)
    problem = await part_paid_problem(h, sale_ref)
    assert problem.resolved_at is not None
    assert problem.resolution_note == note
    log = await actions(h)
    names = [name for name, _ in log]
    paid = names.index(AuditAction.SALE_PAID)
    assert names[paid - 1 : paid + 2] == [
        AuditAction.SALE_TENDER_ADDED,
        AuditAction.SALE_PAID,
        AuditAction.PROBLEM_RESOLVED,
    ]
    assert log[paid][1]["from"] == SaleState.ABANDONED.value
    assert log[paid + 1][1] == {"problem_id": problem.id, "note": note}
    # Nothing left on the manager's "Part paid" list for it.
    page = await PaymentLists(h.store, h.shop_id).problems(
        ProblemFilter(categories=frozenset({ProblemCategory.ABANDONED_SALE}))
    )
    assert [row.sale_ref for row in page.rows if row.sale_ref == sale_ref] == []


# ---------------------------------------------------------------- late money completes it


async def test_a_late_callback_that_pays_the_rest_makes_the_sale_paid_and_resolves_it(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, callback_delay_s=30)
    await desk(h).take_cash("LP1", 1000, 400, part=400)
    view = await h.engine.start_payment("LP1", 600, phone)
    await desk(h).abandon("LP1")  # the cashier moved on before the customer's PIN
    assert (await part_paid_problem(h, "LP1")).detail["owed"] == 600
    await h.advance_sim(31)
    paid = await h.view(view.attempt_id)
    assert paid.state is AttemptState.COMPLETED and paid.receipt
    await assert_paid_in_full(h, "LP1", f"Paid in full by late M-Pesa receipt {paid.receipt}")
    sale = await desk(h).get("LP1")
    assert sale is not None
    assert [(t.kind, t.amount, t.receipt) for t in sale.tenders] == [
        (TenderKind.CASH, 400, None),
        (TenderKind.MPESA_STK, 600, paid.receipt),
    ]


async def test_the_reconcilers_query_that_finds_it_paid_resolves_it_receipt_to_follow(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, drop_callback=True)
    await desk(h).take_cash("LP2", 500, 200, part=200)
    view = await h.engine.start_payment("LP2", 300, phone)
    await h.advance_sim(5)
    await desk(h).abandon("LP2")
    h.clock.advance(31)
    report = await h.reconcile()
    assert report.settled == 1
    await assert_paid_in_full(
        h,
        "LP2",
        f"Paid in full by a late M-Pesa payment (attempt {view.attempt_id}, receipt to follow)",
    )


async def test_a_sale_found_open_at_start_is_paid_by_the_statement_pull(
    pull_till: TillHarness,
) -> None:
    h = pull_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, drop_callback=True, query_anomaly="stuck_pending")
    await desk(h).take_cash("LP3", 400, 270, part=270)
    view = await h.engine.start_payment("LP3", 130, phone)
    await h.advance_sim(5)
    await h.restart()  # the till stopped mid-sale: found open, abandoned at start
    assert (await part_paid_problem(h, "LP3")).detail["how"] == "found open at start-up"
    h.clock.advance(h.settings.timings.attempt_expiry_s + 1)
    await h.reconcile()
    assert (await h.view(view.attempt_id)).state is AttemptState.EXPIRED
    assert (await desk(h).get("LP3")).state is SaleState.ABANDONED  # type: ignore[union-attr]
    await pull_of(h).pull()
    late = await h.store.attempts.get(h.shop_id, int(view.attempt_id))
    assert late is not None and late.state is AttemptState.COMPLETED and late.receipt_number
    assert late.flags & AttemptFlag.LATE
    await assert_paid_in_full(
        h, "LP3", f"Paid in full by late M-Pesa receipt {late.receipt_number}"
    )


async def test_the_managers_paid_receipt_x_pays_the_sale_and_resolves_it(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, result_code=1032)
    await desk(h).take_cash("LP4", 300, 100, part=100)
    view = await h.engine.start_payment("LP4", 200, phone)
    await h.advance_sim(5)
    assert (await h.view(view.attempt_id)).state is AttemptState.FAILED
    await desk(h).abandon("LP4")
    await ManagerPin.of(h.store).set(Secret(PIN))
    manager = ManagerService(h.store, h.settings, h.clock, shop_id=h.shop_id, till_id=h.till_id)
    assert (await manager.sign_in(Secret(PIN))).accepted
    await manager.resolve(f"A{view.attempt_id}", "on the statement", Resolution.PAID, "SDQ4LATE1")
    await assert_paid_in_full(h, "LP4", "Paid in full by late M-Pesa receipt SDQ4LATE1")
    resolved = [d for name, d in await actions(h) if name == AuditAction.PROBLEM_RESOLVED]
    entries = await h.store.audit.search(h.shop_id, include_system=True, limit=1000)
    by_manager = [e for e in entries if e.action == AuditAction.PROBLEM_RESOLVED]
    assert len(resolved) == 1 and by_manager[0].actor.value == "manager"


async def test_a_direct_payment_attached_for_the_rest_pays_the_sale(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    await part_paid(h, "LP5", 450, 300)
    record, _ = await receive(h.store, h.shop_id, c2b_body(h, "TLP5REST01", 150))
    async with h.store.write() as tx:
        attached = await h.store.c2b.attach(tx, h.shop_id, record.trans_id, "LP5", h.till_id)
        await record_direct_payment(h.store, tx, attached, h.till_id)
    await assert_paid_in_full(h, "LP5", "Paid in full by late direct M-Pesa payment TLP5REST01")


async def test_a_direct_payment_of_the_wrong_amount_for_a_part_paid_sale_is_refused(
    shop_till: TillHarness,
) -> None:
    """The attach's own check (C2BDesk.attach asks it before it claims the payment): a
    part-paid sale takes exactly its rest, else words, and nothing changes."""
    h = shop_till
    await part_paid(h, "LP6", 450, 300)
    before = await sale_problems(h, "LP6")
    assert await owed_for_direct(h.store, h.shop_id, "LP6", 100) == (
        "KES 100 is not the KES 150 still owed on sale LP6: a direct payment must pay exactly "
        "the rest"
    )
    assert await owed_for_direct(h.store, h.shop_id, "LP6", 150) is None
    sale = await desk(h).get("LP6")
    assert sale is not None and (sale.state, sale.paid) == (SaleState.ABANDONED, 300)
    assert await sale_problems(h, "LP6") == before


# ---------------------------------------------------------------- late money, still short


async def test_a_late_payment_that_leaves_some_owed_updates_the_problem(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, callback_delay_s=30)
    await desk(h).take_cash("LP7", 1000, 200, part=200)
    view = await h.engine.start_payment("LP7", 300, phone)
    await desk(h).abandon("LP7")
    await h.advance_sim(31)
    receipt = (await h.view(view.attempt_id)).receipt
    sale = await desk(h).get("LP7")
    assert sale is not None and (sale.state, sale.paid, sale.owed) == (
        SaleState.ABANDONED,
        500,
        500,
    )
    problem = await part_paid_problem(h, "LP7")
    assert problem.resolved_at is None
    assert (problem.detail["paid"], problem.detail["owed"], problem.detail["amount"]) == (
        500,
        500,
        500,
    )
    assert problem.detail["how"] == "cleared at the checkout"
    [row] = (
        await PaymentLists(h.store, h.shop_id).problems(
            ProblemFilter(categories=frozenset({ProblemCategory.ABANDONED_SALE}))
        )
    ).rows
    assert row.summary == (
        f"Sale LP7 was left part paid: KES 200 in cash and KES 300 by M-Pesa ({receipt}) taken "
        "of KES 1,000, KES 500 still owed (finish it, or give the money back)"
    )
    [updated] = [d for name, d in await actions(h) if name == AuditAction.PROBLEM_UPDATED]
    assert updated == {
        "problem_id": problem.id,
        "why": f"KES 300 more paid by late M-Pesa receipt {receipt}; KES 500 still owed",
    }


# ---------------------------------------------------------------- money a sale cannot take


async def test_a_late_payment_for_a_sale_paid_in_full_already_is_a_duplicate_not_a_tender(
    shop_till: TillHarness,
) -> None:
    """The sale was paid by cash while the prompt was out: the engine saw no other attempt
    paid, so the sale's rules flag the attempt a duplicate payment and list it to refund."""
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, callback_delay_s=30)
    await desk(h).open("LP8", 250)
    view = await h.engine.start_payment("LP8", 250, phone)
    await desk(h).take_cash("LP8", 250, 300)  # the customer paid cash instead
    await h.advance_sim(31)
    attempt = await h.store.attempts.get(h.shop_id, int(view.attempt_id))
    assert attempt is not None and attempt.state is AttemptState.COMPLETED
    assert attempt.flags & AttemptFlag.DUPLICATE_PAYMENT
    sale = await desk(h).get("LP8")
    assert sale is not None and sale.state is SaleState.PAID
    assert [t.kind for t in sale.tenders] == [TenderKind.CASH]
    [problem] = await sale_problems(h, "LP8")
    assert record_row(problem).summary == "Sale LP8 was paid twice: refund one payment"


async def test_the_check_before_a_retry_finds_the_first_prompt_paid_and_resolves_it(
    shop_till: TillHarness,
) -> None:
    """The customer comes back to pay the rest; the retry first asks M-Pesa about the expired
    prompt, which was paid after all: the sale is paid by it, and no second prompt goes out."""
    h = shop_till
    slow, quick = unique_phone(), unique_phone()
    # Its one query before expiry says "being processed"; the retry's own query says paid.
    await h.sim.set_phone_scenario(
        slow, drop_callback=True, query_anomaly="stuck_pending", query_anomaly_times=1
    )
    await desk(h).take_cash("LP9", 500, 100, part=100)
    first = await h.engine.start_payment("LP9", 400, slow)
    await h.advance_sim(5)
    h.clock.advance(h.settings.timings.attempt_expiry_s + 1)
    await h.reconcile()
    assert (await h.view(first.attempt_id)).state is AttemptState.EXPIRED
    await desk(h).abandon("LP9")
    h.clock.advance(300)  # past the retry's wait after an expired prompt
    with pytest.raises(PaymentRefused) as refused:
        await h.engine.retry("LP9", quick, customer_got_no_sms=True)
    assert refused.value.message == (
        "M-Pesa says the previous request was paid after all: this sale is paid."
    )
    late = await h.store.attempts.get(h.shop_id, int(first.attempt_id))
    assert late is not None and late.flags & AttemptFlag.LATE
    await assert_paid_in_full(
        h,
        "LP9",
        f"Paid in full by a late M-Pesa payment (attempt {first.attempt_id}, receipt to follow)",
    )
    assert len(await h.store.attempts.for_sale(h.shop_id, "LP9")) == 1


async def test_a_late_payment_of_more_than_is_owed_is_not_a_tender_but_a_problem(
    shop_till: TillHarness,
) -> None:
    """Cash was taken while the prompt was out, so the prompt now asks more than is owed."""
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, callback_delay_s=30)
    await desk(h).open("LP10", 1000)
    view = await h.engine.start_payment("LP10", 800, phone)
    await desk(h).take_cash("LP10", 1000, 300, part=300)
    await desk(h).abandon("LP10")
    before = await part_paid_problem(h, "LP10")
    await h.advance_sim(31)
    attempt = await h.store.attempts.get(h.shop_id, int(view.attempt_id))
    assert attempt is not None and attempt.state is AttemptState.COMPLETED
    assert attempt.flags & AttemptFlag.SUSPICIOUS
    assert not attempt.flags & AttemptFlag.DUPLICATE_PAYMENT
    sale = await desk(h).get("LP10")
    assert sale is not None
    assert (sale.state, sale.paid, [t.kind for t in sale.tenders]) == (
        SaleState.ABANDONED,
        300,
        [TenderKind.CASH],
    )
    assert await part_paid_problem(h, "LP10") == before  # it says what the sale took
    [money] = [
        p for p in await sale_problems(h, "LP10") if p.kind is ProblemKind.SUSPICIOUS_PATTERN
    ]
    assert record_row(money).summary == (
        f"Sale LP10 took no late KES 800 M-Pesa payment ({attempt.receipt_number}): KES 800 is "
        "more than the KES 700 sale LP10 still owes. Give it back by reversal, or settle with "
        "the customer"
    )


# ---------------------------------------------------------------- void and refund settle it


async def test_refunding_a_part_paid_sale_resolves_its_problem(shop_till: TillHarness) -> None:
    h = shop_till
    await ManagerPin.of(h.store).set(Secret(PIN))
    await part_paid(h, "LP11", 900, 400)
    refunded = await desk(h).refund("LP11", Secret(PIN), "customer took the cash back")
    assert refunded.state is SaleState.REFUNDED
    problem = await part_paid_problem(h, "LP11")
    assert problem.resolution_note == "Cash refunded by the manager: customer took the cash back"
    names = [name for name, _ in await actions(h)]
    assert names[-2:] == [AuditAction.SALE_REFUNDED, AuditAction.PROBLEM_RESOLVED]


async def test_voiding_a_part_paid_cash_sale_resolves_its_problem(shop_till: TillHarness) -> None:
    h = shop_till
    await ManagerPin.of(h.store).set(Secret(PIN))
    await part_paid(h, "LP12", 900, 400)
    voided = await desk(h).void("LP12", Secret(PIN), "goods stay on the shelf")
    assert voided.state is SaleState.VOIDED
    problem = await part_paid_problem(h, "LP12")
    assert problem.resolution_note == "Voided by the manager: goods stay on the shelf"


async def test_an_abandoned_sale_with_nothing_paid_cannot_be_undone(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    await ManagerPin.of(h.store).set(Secret(PIN))
    await desk(h).open("LP13", 50)
    await desk(h).abandon("LP13")
    before = await h.store.db.fetchall("SELECT * FROM sales ORDER BY sale_ref")
    with pytest.raises(SaleRefused) as refused:
        await desk(h).refund("LP13", Secret(PIN), "nothing")
    assert refused.value.message == "Sale LP13 is abandoned, not paid: nothing to undo."
    after = await h.store.db.fetchall("SELECT * FROM sales ORDER BY sale_ref")
    assert list(map(tuple, after)) == list(map(tuple, before))


# ---------------------------------------------------------------- refund of a split sale


async def test_a_split_sales_refund_returns_the_cash_and_names_the_m_pesa_to_reverse(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    await ManagerPin.of(h.store).set(Secret(PIN))
    await desk(h).take_cash("LP14", 500, 200, part=200)
    view = await h.engine.start_payment("LP14", 300, unique_phone())
    await h.advance_sim(5)
    receipt = (await h.view(view.attempt_id)).receipt
    assert receipt
    paid = await desk(h).get("LP14")
    assert paid is not None and paid.awaiting_reversal == ()
    refunded = await desk(h).refund("LP14", Secret(PIN), "goods returned")
    assert refunded.state is SaleState.REFUNDED
    assert [(t.amount, t.receipt) for t in refunded.awaiting_reversal] == [(300, receipt)]
    assert [(t.amount, t.reversed) for t in refunded.mpesa_tenders] == [(300, False)]
    [entry] = [d for name, d in await actions(h) if name == AuditAction.SALE_REFUNDED]
    assert (entry["cash_back"], entry["mpesa_kept"], entry["mpesa_to_reverse"]) == (
        200,
        300,
        [receipt],
    )
    # The reversal's result (code 0) marks the attempt REVERSED, as the statement service's
    # result handler does; the sale's record then says the M-Pesa part went back.
    async with h.store.write() as tx:
        await h.store.attempts.add_flags(
            tx, h.shop_id, int(view.attempt_id), AttemptFlag.REVERSED, Actor.SYSTEM
        )
    after = await desk(h).get("LP14")
    assert after is not None and after.awaiting_reversal == ()
    assert [(t.amount, t.reversed) for t in after.mpesa_tenders] == [(300, True)]


async def test_a_cash_sales_refund_has_nothing_awaiting_reversal(shop_till: TillHarness) -> None:
    h = shop_till
    await ManagerPin.of(h.store).set(Secret(PIN))
    await desk(h).take_cash("LP15", 500, 500)
    refunded = await desk(h).refund("LP15", Secret(PIN), "goods returned")
    assert (refunded.awaiting_reversal, refunded.mpesa_tenders) == ((), ())


async def test_refunding_a_part_paid_split_sale_resolves_it_naming_the_m_pesa_to_reverse(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    await ManagerPin.of(h.store).set(Secret(PIN))
    await desk(h).take_cash("LP16", 900, 200, part=200)
    view = await h.engine.start_payment("LP16", 300, unique_phone())
    await h.advance_sim(5)
    receipt = (await h.view(view.attempt_id)).receipt
    await desk(h).abandon("LP16")
    refunded = await desk(h).refund("LP16", Secret(PIN), "customer left")
    assert [(t.amount, t.receipt) for t in refunded.awaiting_reversal] == [(300, receipt)]
    problem = await part_paid_problem(h, "LP16")
    assert problem.resolution_note == (
        f"Cash refunded by the manager: customer left; M-Pesa {receipt} awaiting reversal"
    )
