"""Shift reports on the receipt printer through python-escpos: a file printer's bytes against
the stored copy, no printer at all, and a printer unplugged mid-print (a FIFO whose reader goes
away): the close lands either way and the message says to print it again."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import PrinterKind, PrinterSettings
from smartduka_tui.model import AuditAction
from smartduka_tui.payments.shifts import ShiftDesk, ShiftPrintError
from smartduka_tui.printing import text_escpos_bytes
from smartduka_tui.receipts.shift_report import render_csv, render_text
from smartduka_tui.store import Store
from smartduka_tui.store.pull import PulledRow
from tests.shifts.conftest import SHOP, SHORTCODE, TILL, ring_up_day

EXPECTED = Path(__file__).resolve().parent.parent / "data" / "shifts"


def file_printer(path: Path) -> PrinterSettings:
    return PrinterSettings(kind=PrinterKind.FILE, path=path)


async def printed_actions(store: Store) -> int:
    entries = await store.audit.search(SHOP, include_system=True, limit=1000)
    return sum(1 for e in entries if e.action == AuditAction.SHIFT_REPORT_PRINTED)


async def test_the_z_report_prints_exactly_the_stored_bytes(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    device = tmp_path / "lp0"
    desk = ShiftDesk(store, SHOP, TILL, file_printer(device))
    await desk.open(2000, "Wanjiru")
    await ring_up_day(store, clock)
    clock.advance(3600)
    closed = await desk.close("2800", via="test", print_report=True)
    assert closed.printed and closed.print_error is None
    assert render_text(closed.report) == (EXPECTED / "Z1.txt").read_text()
    assert render_csv(closed.report) == (EXPECTED / "Z1.csv").read_text()
    assert device.read_bytes() == (EXPECTED / "Z1.escpos").read_bytes()
    assert all(len(line) <= 42 for line in render_text(closed.report).splitlines())
    assert await printed_actions(store) == 1


async def test_without_a_printer_the_close_lands_and_says_so(store: Store) -> None:
    desk = ShiftDesk(store, SHOP, TILL, PrinterSettings())
    await desk.open(2000, "Wanjiru")
    closed = await desk.close(2000, via="test", print_report=True)
    assert closed.shift.z_number == 1 and not closed.printed
    assert closed.print_error == (
        "no receipt printer is set up (printer.kind in the settings); the Z report is kept: "
        "print it once one is set up"
    )
    assert await desk.current() is None
    assert await printed_actions(store) == 0


async def test_a_printer_unplugged_mid_print_keeps_the_close_and_prints_again_later(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    """The report is longer than the pipe's buffer (4,000 statement receipts this till does
    not know), so the printer is still being written to when its reader goes away."""
    desk_fifo = tmp_path / "lp0"
    os.mkfifo(desk_fifo)
    desk = ShiftDesk(store, SHOP, TILL, file_printer(desk_fifo))
    await desk.open(2000, "Wanjiru")
    clock.advance(60)
    rows = [
        PulledRow(f"UNK{n:07d}", SHORTCODE, 10, clock.now(), "2547****000", "", "Pay Bill")
        for n in range(4000)
    ]
    async with store.write() as tx:
        await store.pull.add(tx, SHOP, SHORTCODE, rows)
    clock.advance(60)
    got: list[bytes] = []

    def printer_then_unplugged() -> None:
        fd = os.open(desk_fifo, os.O_RDONLY)
        got.append(os.read(fd, 4))
        os.close(fd)

    reader = threading.Thread(target=printer_then_unplugged)
    reader.start()
    try:
        closed = await desk.close(2000, via="test", print_report=True)
    finally:
        reader.join()
    assert closed.shift.z_number == 1 and not closed.printed
    assert closed.print_error == (
        f"printer {desk_fifo} stopped mid-print (broken pipe); the Z report is kept, print it "
        "again when the printer is back"
    )
    assert await desk.current() is None
    assert await printed_actions(store) == 0
    assert len(closed.report.statement.only_statement) == 4000
    # The printer is back (another device): the same report prints whole.
    again = ShiftDesk(store, SHOP, TILL, file_printer(tmp_path / "lp1"))
    report = await again.z_report(1)
    await again.print_report(report, via="test")
    assert (tmp_path / "lp1").read_bytes() == text_escpos_bytes(render_text(report))
    assert await printed_actions(store) == 1


async def test_a_printer_path_that_is_gone_gives_a_clear_message(
    store: Store, tmp_path: Path
) -> None:
    desk = ShiftDesk(store, SHOP, TILL, file_printer(tmp_path / "gone" / "lp0"))
    await desk.open(2000, "Wanjiru")
    report = await desk.x_report(via="test")
    with pytest.raises(ShiftPrintError) as caught:
        await desk.print_report(report, via="test")
    assert caught.value.message == (
        f"printer {tmp_path / 'gone' / 'lp0'} is not reachable (no such file or directory); "
        "nothing printed, print it again when the printer is back"
    )
    assert await printed_actions(store) == 0
    assert timedelta(0) <= report.until - report.opened_at
