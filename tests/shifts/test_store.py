"""The shifts table on a real SQLite file: one open shift per till (the database refuses a
second), gapless Z numbers per till (also from two connections racing), closed shifts frozen."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.store import Keyring, Store
from smartduka_tui.store.shifts import (
    Shift,
    ShiftAlreadyClosedError,
    ShiftAlreadyOpenError,
    ShiftConflictError,
)
from tests.shifts.conftest import SHOP, TILL


async def open_shift(store: Store, till: str = TILL, float_amount: int = 2000) -> Shift:
    async with store.write() as tx:
        return await store.shifts.open(
            tx,
            shop_id=SHOP,
            till_id=till,
            cashier="Wanjiru",
            opening_float=float_amount,
            actor=Actor.MANAGER,
        )


async def close_shift(store: Store, shift: Shift, counted: int = 2000) -> Shift:
    async with store.write() as tx:
        return await store.shifts.close(
            tx,
            shift,
            counted_cash=counted,
            expected_cash=2000,
            z_report=lambda z, at: f'{{"z": {z}}}',
            actor=Actor.MANAGER,
        )


async def shift_rows(store: Store) -> list[tuple[object, ...]]:
    rows = await store.db.fetchall("SELECT * FROM shifts ORDER BY id")
    return [tuple(row) for row in rows]


async def audit_count(store: Store) -> int:
    row = await store.db.fetchone("SELECT count(*) FROM audit_log")
    assert row is not None
    return int(row[0])


async def test_open_then_close_gives_z_1_with_audit_entries(store: Store) -> None:
    shift = await open_shift(store)
    assert shift.is_open and shift.opening_float == 2000 and shift.z_number is None
    assert await store.shifts.current(SHOP, TILL) == shift
    closed = await close_shift(store, shift, counted=1950)
    assert closed.z_number == 1 and closed.counted_cash == 1950 and not closed.is_open
    assert await store.shifts.current(SHOP, TILL) is None
    assert await store.shifts.by_z(SHOP, TILL, 1) == closed
    actions = [e.action for e in await store.audit.search(SHOP, include_system=True)]
    assert AuditAction.SHIFT_OPENED in actions and AuditAction.SHIFT_CLOSED in actions


async def test_a_second_open_shift_on_a_till_is_refused_and_changes_nothing(store: Store) -> None:
    await open_shift(store)
    before, audited = await shift_rows(store), await audit_count(store)
    with pytest.raises(ShiftAlreadyOpenError) as caught:
        await open_shift(store, float_amount=500)
    assert str(caught.value) == (
        "till till1 already has an open shift (opened by Wanjiru); close it before opening another"
    )
    assert await shift_rows(store) == before
    assert await audit_count(store) == audited
    # Another till of the shop has its own shift.
    assert (await open_shift(store, till="till2")).till_id == "till2"


async def test_the_database_itself_refuses_a_second_open_shift(store: Store) -> None:
    """The partial unique index, not only the repository's check: a raw insert fails."""
    await open_shift(store)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        async with store.write() as tx:
            await tx.execute(
                "INSERT INTO shifts (shop_id, till_id, cashier, opened_at, float)"
                " VALUES (?, ?, 'Other', 0, 0)",
                (SHOP, TILL),
            )
    assert len(await shift_rows(store)) == 1


async def test_closing_a_closed_shift_is_refused_and_changes_nothing(store: Store) -> None:
    shift = await open_shift(store)
    await close_shift(store, shift)
    before, audited = await shift_rows(store), await audit_count(store)
    with pytest.raises(ShiftAlreadyClosedError) as caught:
        await close_shift(store, shift, counted=10)
    assert str(caught.value) == "this shift is already closed (Z 1); a closed shift never changes"
    assert await shift_rows(store) == before
    assert await audit_count(store) == audited


async def test_a_closed_shift_can_be_neither_edited_nor_deleted(store: Store) -> None:
    shift = await close_shift(store, await open_shift(store))
    for sql in (
        "UPDATE shifts SET z_number = 7",
        "UPDATE shifts SET counted_cash = 1",
        "DELETE FROM shifts",
    ):
        with pytest.raises(sqlite3.IntegrityError, match=r"a (closed )?shift"):
            async with store.write() as tx:
                await tx.execute(sql)
    assert await store.shifts.by_z(SHOP, TILL, 1) == shift


async def test_money_columns_refuse_floats_and_negatives(store: Store) -> None:
    for value in (-1, 10.5):
        with pytest.raises(sqlite3.IntegrityError):
            async with store.write() as tx:
                await tx.execute(
                    "INSERT INTO shifts (shop_id, till_id, cashier, opened_at, float)"
                    " VALUES (?, ?, 'X', 0, ?)",
                    (SHOP, TILL, value),
                )
    assert await shift_rows(store) == []


async def test_many_closes_number_each_till_1_to_n_without_gaps(
    store: Store, clock: ManualClock
) -> None:
    for n in range(25):
        for till in (TILL, "till2"):
            if till == "till2" and n % 2:
                continue
            await close_shift(store, await open_shift(store, till=till))
        clock.advance(60)
    rows = await store.db.fetchall(
        "SELECT till_id, z_number FROM shifts ORDER BY till_id, z_number"
    )
    numbers: dict[str, list[int]] = {}
    for row in rows:
        numbers.setdefault(row["till_id"], []).append(row["z_number"])
    assert numbers == {TILL: list(range(1, 26)), "till2": list(range(1, 14))}


async def test_two_connections_racing_to_open_and_close_leave_no_gap(
    tmp_path: Path, store: Store, clock: ManualClock, keyring: Keyring
) -> None:
    """Two stores (two writers on one file, each with its own SQLite connection) open and
    close the same till's shifts as fast as they can. Each refusal is one of the shift
    conflicts; every close that landed has its own number, and the numbers are 1..n."""
    other = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)

    async def worker(mine: Store) -> int:
        closed = 0
        for _ in range(30):
            with contextlib.suppress(ShiftAlreadyOpenError):
                await open_shift(mine)
            current = await mine.shifts.current(SHOP, TILL)
            if current is None:
                continue
            try:
                await close_shift(mine, current)
                closed += 1
            except ShiftConflictError:
                pass
        return closed

    try:
        closes = await asyncio.gather(worker(store), worker(other))
    finally:
        await other.close()
    rows = await store.db.fetchall(
        "SELECT z_number FROM shifts WHERE till_id = ? AND z_number IS NOT NULL ORDER BY z_number",
        (TILL,),
    )
    total = sum(closes)
    assert total >= 30
    assert [row["z_number"] for row in rows] == list(range(1, total + 1))
    entries = await store.audit.search(SHOP, include_system=True, limit=1000)
    assert sum(1 for e in entries if e.action == AuditAction.SHIFT_CLOSED) == total
