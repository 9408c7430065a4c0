"""The sales tables: a sale, its lines and tenders, its moves, and the day's figures by kind."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import Actor, AuditAction, ProblemKind, SaleState, TenderKind
from smartduka_tui.store import NewTender, SaleLine, SaleStateError, Store
from smartduka_tui.store.db import Database
from smartduka_tui.store.errors import InputError
from tests.store.helpers import make_shop, new_attempt


async def _actions(store: Store, shop_id: str) -> list[str]:
    entries = await store.audit.search(shop_id, include_system=True, limit=100)
    return [entry.action for entry in reversed(entries) if entry.action.startswith("sale.")]


async def test_a_split_sale_is_kept_with_its_lines_tenders_and_audit(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    attempt_row = new_attempt(clock, shop_id, till_id, amount=300, sale_ref="S1")
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, attempt_row)
        lines = [SaleLine("Sugar 1kg", 2, 200), SaleLine("Bread", 1, 100)]
        await store.sales.open(tx, shop_id, till_id, "S1", 500, lines)
        await store.sales.add_tender(
            tx, shop_id, "S1", till_id, NewTender(TenderKind.CASH, 200, cash_given=1000)
        )
    clock.advance(30)
    async with store.write() as tx:
        await store.sales.add_tender(
            tx,
            shop_id,
            "S1",
            till_id,
            NewTender(TenderKind.MPESA_STK, 300, attempt_id=attempt.id),
        )
        await store.sales.fill_receipt(tx, shop_id, attempt.id, "SDK0000001")
        await store.sales.move(
            tx, shop_id, "S1", {SaleState.OPEN}, SaleState.PAID, actor=Actor.CASHIER
        )
    sale = await store.sales.get(shop_id, "S1")
    assert sale is not None
    assert (sale.total, sale.state, sale.paid, sale.owed, sale.cash, sale.mpesa) == (
        500,
        SaleState.PAID,
        500,
        0,
        200,
        300,
    )
    assert sale.lines == tuple(lines)
    cash, mpesa = sale.tenders
    assert (cash.cash_given, cash.change_given) == (1000, 800)
    assert (mpesa.receipt_number, mpesa.attempt_id) == ("SDK0000001", attempt.id)
    assert sale.closed_at == clock.now()
    assert await _actions(store, shop_id) == [
        AuditAction.SALE_OPENED,
        AuditAction.SALE_TENDER_ADDED,
        AuditAction.SALE_TENDER_ADDED,
        AuditAction.SALE_PAID,
    ]
    assert await store.sales.by_attempt(shop_id, attempt.id) == mpesa


async def test_what_the_rows_cannot_hold_is_refused_and_nothing_changes(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        await store.sales.open(tx, shop_id, till_id, "S2", 500, [])
    bad = [
        NewTender(TenderKind.CASH, 0, cash_given=0),
        NewTender(TenderKind.CASH, 300, cash_given=200),
        NewTender(TenderKind.CASH, 300),
        NewTender(TenderKind.MPESA_STK, 300),
    ]
    for tender in bad:
        with pytest.raises(InputError):
            async with store.write() as tx:
                await store.sales.add_tender(tx, shop_id, "S2", till_id, tender)
    with pytest.raises(SaleStateError, match="exists already"):
        async with store.write() as tx:
            await store.sales.open(tx, shop_id, till_id, "S2", 100, [])
    with pytest.raises(InputError, match="lines' sum"):
        async with store.write() as tx:
            await store.sales.open(tx, shop_id, till_id, "S3", 100, [SaleLine("Tea", 1, 90)])
    sale = await store.sales.get(shop_id, "S2")
    assert sale is not None
    assert (sale.total, sale.tenders, sale.state) == (500, (), SaleState.OPEN)
    assert await store.sales.get(shop_id, "S3") is None
    assert await _actions(store, shop_id) == [AuditAction.SALE_OPENED]


async def test_moves_are_compare_and_set(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        await store.sales.open(tx, shop_id, till_id, "S4", 100, [])
        await store.sales.add_tender(
            tx, shop_id, "S4", till_id, NewTender(TenderKind.CASH, 100, cash_given=100)
        )
        await store.sales.move(
            tx, shop_id, "S4", {SaleState.OPEN}, SaleState.PAID, actor=Actor.CASHIER
        )
    async with store.write() as tx:
        voided = await store.sales.move(
            tx, shop_id, "S4", {SaleState.PAID}, SaleState.VOIDED, actor=Actor.MANAGER, note="wrong"
        )
    assert (voided.state, voided.note) == (SaleState.VOIDED, "wrong")
    with pytest.raises(SaleStateError, match="voided already"):
        async with store.write() as tx:
            await store.sales.move(
                tx, shop_id, "S4", {SaleState.PAID}, SaleState.VOIDED, actor=Actor.MANAGER
            )
    with pytest.raises(SaleStateError, match="voided"):
        async with store.write() as tx:
            await store.sales.add_tender(
                tx, shop_id, "S4", till_id, NewTender(TenderKind.CASH, 1, cash_given=1)
            )


async def test_tender_totals_leave_out_voided_and_refunded_sales(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    start = clock.now()
    for ref, cash, state in (
        ("S5", 100, SaleState.PAID),
        ("S6", 250, SaleState.VOIDED),
        ("S7", 40, SaleState.REFUNDED),
        ("S8", 60, SaleState.ABANDONED),
    ):
        async with store.write() as tx:
            await store.sales.open(tx, shop_id, till_id, ref, cash + 10, [])
            await store.sales.add_tender(
                tx, shop_id, ref, till_id, NewTender(TenderKind.CASH, cash, cash_given=cash)
            )
            await store.sales.move(tx, shop_id, ref, {SaleState.OPEN}, state, actor=Actor.SYSTEM)
        clock.advance(1)
    totals = await store.sales.tender_totals(shop_id, start, clock.now())
    assert totals == {TenderKind.CASH: 160, TenderKind.MPESA_STK: 0, TenderKind.MPESA_C2B: 0}
    later = await store.sales.tender_totals(shop_id, start + timedelta(seconds=1), clock.now())
    assert later[TenderKind.CASH] == 60
    mine = await store.sales.for_till(shop_id, till_id, states={SaleState.ABANDONED})
    assert [sale.sale_ref for sale in mine] == ["S8"]


async def test_version_12_keeps_problems_and_findings_and_takes_the_new_kind(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v11.db"
    old = await Database.open(path, upgrade_to=11)
    async with old.write() as tx:
        await tx.execute(
            "INSERT INTO shops VALUES ('kept', 'Kept', 'platform', NULL, NULL, 'KP', 1,"
            " 'pending', NULL, 1, 1)"
        )
        await tx.execute(
            "INSERT INTO problems VALUES (7, 'kept', 't1', 'suspicious_pattern', '{}', 5,"
            " NULL, NULL)"
        )
        await tx.execute("INSERT INTO pull_findings VALUES ('kept', 'money:R1', 7)")
    await old.close()
    upgraded = await Database.open(path)
    try:
        row = await upgraded.fetchone("SELECT kind FROM problems WHERE id = 7")
        assert row is not None and row["kind"] == "suspicious_pattern"
        finding = await upgraded.fetchone("SELECT problem_id FROM pull_findings")
        assert finding is not None and finding["problem_id"] == 7
        async with upgraded.write() as tx:
            await tx.execute(
                "INSERT INTO problems (shop_id, kind, detail, created_at) VALUES (?, ?, '{}', 9)",
                ("kept", ProblemKind.ABANDONED_SALE.value),
            )
        # The finding still points at a problem that must exist.
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            async with upgraded.write() as tx:
                await tx.execute("INSERT INTO pull_findings VALUES ('kept', 'money:R2', 99)")
    finally:
        await upgraded.close()
