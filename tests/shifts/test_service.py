"""The shift desk on a real store: open, X, close, the Z report kept as it was, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import PrinterSettings
from smartduka_tui.model import AuditAction
from smartduka_tui.payments.shifts import ShiftDesk, ShiftInputError, ShiftRefused
from smartduka_tui.receipts.shift_report import difference_words, render_text
from smartduka_tui.store import Store
from tests.shifts.conftest import SHOP, TILL, ring_up_day


@pytest.fixture
def desk(store: Store) -> ShiftDesk:
    return ShiftDesk(store, SHOP, TILL, PrinterSettings())


async def snapshot(store: Store) -> tuple[list[tuple[object, ...]], int]:
    rows = await store.db.fetchall("SELECT * FROM shifts ORDER BY id")
    audit = await store.db.fetchone("SELECT count(*) FROM audit_log")
    assert audit is not None
    return [tuple(r) for r in rows], int(audit[0])


async def test_a_day_from_open_to_close(desk: ShiftDesk, store: Store, clock: ManualClock) -> None:
    shift = await desk.open("2,000", "  Wanjiru  ")
    assert shift.opening_float == 2000 and shift.cashier == "Wanjiru"
    await ring_up_day(store, clock)
    x = await desk.x_report(via="test")
    assert x.expected_cash == 2850 and x.counted_cash is None
    assert [(t.kind.value, t.count, t.amount) for t in x.by_tender] == [
        ("CASH", 3, 850),
        ("MPESA_STK", 1, 600),
        ("MPESA_C2B", 1, 150),
    ]
    assert [(s.sale_ref, s.state.value) for s in x.left_out] == [("S4", "REFUNDED")]
    assert x.statement.only_statement[0].receipt == "XYZ0000009"
    assert x.statement.other_tills == 1 and not x.statement.only_till
    clock.advance(3600)
    closed = await desk.close("2800", via="test")
    assert closed.shift.z_number == 1 and closed.shift.expected_cash == 2850
    report = closed.report
    assert report.z_number == 1 and report.difference == -50
    assert report.difference == -50
    assert difference_words(report.difference) == "KES 50 short"
    assert report.statement.stale
    assert "Statement not pulled since 09:09" in render_text(report)
    assert await desk.current() is None
    assert await desk.z_report(1) == report
    actions = [e.action for e in await store.audit.search(SHOP, include_system=True, limit=500)]
    assert actions.count(AuditAction.SHIFT_X_VIEWED) == 1
    assert actions.count(AuditAction.SHIFT_CLOSED) == 1


async def test_the_z_report_stays_as_it_was_at_close(
    desk: ShiftDesk, store: Store, clock: ManualClock
) -> None:
    """A sale refunded after the close does not rewrite the closed day."""
    await desk.open(2000, "Wanjiru")
    await ring_up_day(store, clock)
    closed = await desk.close(2850, via="test")
    from smartduka_tui.model import Actor, SaleState

    async with store.write() as tx:
        await store.sales.move(
            tx, SHOP, "S1", {SaleState.PAID}, SaleState.REFUNDED, actor=Actor.MANAGER
        )
    assert await desk.z_report(1) == closed.report
    assert closed.report.difference == 0
    assert closed.report.difference == 0
    assert difference_words(closed.report.difference) == "none, the drawer matches"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "give the float in whole shillings, e.g. 2000"),
        ("lots", "the float must be a whole number of shillings, e.g. 2000 (got 'lots')"),
        ("-500", "the float cannot be negative (got -500)"),
        ("2000.50", "the float is in whole shillings, without cents (got 2000.50)"),
        ("2000.00", "the float is in whole shillings, without cents (got 2000.00)"),
        ("1e3", "the float must be a whole number of shillings, e.g. 2000 (got '1e3')"),
        ("2,00", "the float must be a whole number of shillings, e.g. 2000 (got '2,00')"),
        ("5000000", "the float can be at most KES 1,000,000 (got KES 5,000,000)"),
    ],
)
async def test_a_bad_float_is_refused_and_opens_nothing(
    desk: ShiftDesk, store: Store, typed: str, message: str
) -> None:
    before = await snapshot(store)
    with pytest.raises(ShiftInputError) as caught:
        await desk.open(typed, "Wanjiru")
    assert caught.value.message == message
    assert await snapshot(store) == before


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("abc", "the counted cash must be a whole number of shillings, e.g. 2000 (got 'abc')"),
        ("-1", "the counted cash cannot be negative (got -1)"),
        ("2850.5", "the counted cash is in whole shillings, without cents (got 2850.5)"),
    ],
)
async def test_a_bad_counted_figure_is_refused_and_the_shift_stays_open(
    desk: ShiftDesk, store: Store, typed: str, message: str
) -> None:
    await desk.open(2000, "Wanjiru")
    before = await snapshot(store)
    with pytest.raises(ShiftInputError) as caught:
        await desk.close(typed, via="test")
    assert caught.value.message == message
    assert await snapshot(store) == before
    assert await desk.current() is not None


async def test_a_second_shift_is_refused(desk: ShiftDesk, store: Store) -> None:
    await desk.open(2000, "Wanjiru")
    before = await snapshot(store)
    with pytest.raises(ShiftRefused) as caught:
        await desk.open(1000, "Otieno")
    assert caught.value.message == (
        "till till1 already has an open shift (opened by Wanjiru); close it before opening another"
    )
    assert await snapshot(store) == before


async def test_x_and_close_without_an_open_shift_are_refused(desk: ShiftDesk, store: Store) -> None:
    before = await snapshot(store)
    with pytest.raises(ShiftRefused) as caught_x:
        await desk.x_report(via="test")
    assert caught_x.value.message == "till till1 has no open shift; open one first"
    with pytest.raises(ShiftRefused) as caught_close:
        await desk.close(100, via="test")
    assert caught_close.value.message == "till till1 has no open shift to close; open one first"
    assert await snapshot(store) == before


async def test_closing_again_after_a_close_is_refused(desk: ShiftDesk, store: Store) -> None:
    await desk.open(2000, "Wanjiru")
    await desk.close(2000, via="test")
    before = await snapshot(store)
    with pytest.raises(ShiftRefused):
        await desk.close(2000, via="test")
    assert await snapshot(store) == before


async def test_export_refuses_to_overwrite_a_file(
    desk: ShiftDesk, store: Store, tmp_path: Path
) -> None:
    await desk.open(2000, "Wanjiru")
    report = (await desk.close(2000, via="test")).report
    target = tmp_path / "z1.csv"
    target.write_text("keep me\n")
    before = await snapshot(store)
    with pytest.raises(ShiftInputError) as caught:
        await desk.export_csv(report, target, via="test")
    assert caught.value.message == (
        f"{target} already exists; choose another file name (nothing was written)"
    )
    assert target.read_text() == "keep me\n"
    assert await snapshot(store) == before
    fresh = await desk.export_csv(report, tmp_path / "z1-new.csv", via="test")
    assert fresh.read_text().startswith("section,item,count,amount_kes,note\n")


async def test_unknown_z_is_refused(desk: ShiftDesk) -> None:
    with pytest.raises(ShiftRefused, match="till till1 has no Z 4"):
        await desk.z_report(4)


async def test_the_audit_log_says_what_each_shift_entry_did(
    desk: ShiftDesk, store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    from smartduka_tui.manager.audit import audit_line

    await desk.open("2,000", "Wanjiru")
    await ring_up_day(store, clock)
    await desk.x_report(via="cli")
    clock.advance(3600)
    closed = await desk.close("2800", via="cli")
    await desk.export_csv(closed.report, tmp_path / "z1.csv", via="cli")
    entries = await store.audit.search(SHOP, include_system=True, limit=500)
    words = [audit_line(e).text for e in reversed(entries) if e.action.startswith("shift.")]
    assert words == [
        "Shift opened on till till1 by Wanjiru with a float of KES 2,000",
        "X report of the open shift on till till1 viewed (cli): KES 2,850 expected in the drawer",
        "Shift closed on till till1: Z 1, counted KES 2,800 against KES 2,850 expected, "
        "KES 50 short",
        "Z report 1 on till till1 exported to z1.csv (cli)",
    ]
    # The words are made when the log is read: the stored entries keep their old details.
    opened = next(e for e in entries if e.action == AuditAction.SHIFT_OPENED)
    assert dict(opened.detail) == {
        "shift": closed.shift.id,
        "till_id": "till1",
        "cashier": "Wanjiru",
        "float": 2000,
    }


@pytest.mark.parametrize(
    ("difference", "words"),
    [(0, "the drawer matched"), (10, "KES 10 over"), (-5, "KES 5 short")],
)
def test_a_closed_shift_says_over_short_or_matched(difference: int, words: str) -> None:
    from datetime import UTC, datetime

    from smartduka_tui.manager.words import describe_entry
    from smartduka_tui.model import Actor
    from smartduka_tui.store.records import AuditEntry

    entry = AuditEntry(
        id=1,
        at=datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
        actor=Actor.MANAGER,
        action=AuditAction.SHIFT_CLOSED,
        shop_id=SHOP,
        attempt_id=None,
        detail={
            "shift": 3,
            "till_id": "till2",
            "z_number": 7,
            "counted_cash": 1000 + difference,
            "expected_cash": 1000,
            "difference": difference,
        },
        prev_hash="",
        hash="",
    )
    assert describe_entry(entry) == (
        f"Shift closed on till till2: Z 7, counted KES {1000 + difference:,} against "
        f"KES 1,000 expected, {words}"
    )
