"""The Shifts manager screen through the real app (Pilot) on a real till database: open with a
float, the X report, close with the cash counted, each refused in words where it makes no
sense; and one SVG snapshot per state at 80x24."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.widgets import DataTable, Input, Static

from smartduka_tui.payments.shifts import ShiftDesk
from smartduka_tui.printing import text_escpos_bytes
from smartduka_tui.receipts.shift_report import render_text
from smartduka_tui.ui.manager.shifts import CloseShiftScreen, OpenShiftScreen, ShiftsScreen
from smartduka_tui.ui.screens.manager_menu import ManagerMenuScreen
from tests.manager.conftest import (
    PIN,
    SIZE,
    Seeded,
    build_app,
    make_settings,
    seeded,
    seeded_till,
    settle,
)
from tests.shifts.conftest import SHOP, TILL, ring_up_day
from tests.ui.conftest import wait_until

__all__ = ["seeded"]

SHIFTS_ROW = 5
"""The Shifts line of the manager menu (after the five screens before it)."""


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def shot(pilot: Any, svg: SnapshotAssertion, name: str) -> None:
    await settle(pilot)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    assert svg(name=name) == pilot.app.export_screenshot(simplify=True)


async def open_shifts(pilot: Any) -> ShiftsScreen:
    await settle(pilot)
    await pilot.press("f9")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ManagerMenuScreen)
    await pilot.press(*["down"] * SHIFTS_ROW, "enter")
    await settle(pilot)
    await pilot.press(*PIN, "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ShiftsScreen)
    return screen


async def type_into(pilot: Any, selector: str, text: str) -> None:
    field = pilot.app.screen.query_one(selector, Input)
    field.value = text
    await pilot.pause()
    field.focus()
    await pilot.press("enter")
    await settle(pilot)


async def shift_rows(seeded: Seeded) -> list[tuple[object, ...]]:
    rows = await seeded.store.db.fetchall("SELECT * FROM shifts ORDER BY id")
    return [tuple(r) for r in rows]


async def test_a_shift_from_open_to_close(seeded: Seeded, svg: SnapshotAssertion) -> None:
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_shifts(pilot)
        assert screen.status_text.startswith("No open shift. O opens one")
        await shot(pilot, svg, "shifts_none_open")

        await pilot.press("o")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, OpenShiftScreen)
        await type_into(pilot, "#float", "2000.50")
        assert dialog.error_text == (
            "The float is in whole shillings, without cents (got 2000.50). Nothing was changed."
        )
        assert await shift_rows(seeded) == []
        await shot(pilot, svg, "shifts_open_refused")
        await type_into(pilot, "#float", "2,000")
        assert app.screen is screen
        assert screen.status_text.startswith("Shift open since 09:")
        assert "float KES 2,000" in screen.status_text
        assert screen.notice_text == "Shift opened for Cashier with a float of KES 2,000."

        await ring_up_day(seeded.store, seeded.clock, seeded.service.session.touch)
        await pilot.press("x")
        await settle(pilot)
        assert app.screen is screen, app.screen_stack
        assert "X REPORT (mid-shift)" in screen.report_text
        assert "Expected in the drawer           KES 2,850" in screen.report_text
        await shot(pilot, svg, "shifts_x_report")

        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, CloseShiftScreen)
        await shot(pilot, svg, "shifts_close_dialog")
        await type_into(pilot, "#counted", "2800")
        assert app.screen is screen
        assert screen.notice_text == (
            "Shift closed: Z 1. Expected KES 2,850, counted KES 2,800: KES 50 short. No "
            "receipt printer is set up (printer.kind in the settings): P prints it once one is."
        )
        assert "Z REPORT (shift closed)  Z 1" in screen.report_text
        assert screen.status_text.startswith("No open shift.")
        table = screen.query_one("#shifts-list", DataTable)
        assert table.row_count == 1
        assert [str(c) for c in table.get_row_at(0)] == ["1", "15 Jan 09:26", "-50"]
        await shot(pilot, svg, "shifts_closed_z_report")
        # Enter on a listed Z shows its report as it was at close.
        screen.query_one("#shifts-report", Static).update("")
        table.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "Z REPORT (shift closed)  Z 1" in screen.report_text
    rows = await shift_rows(seeded)
    assert len(rows) == 1 and rows[0][-2] == 1  # z_number


async def test_actions_that_make_no_sense_are_refused_in_words(seeded: Seeded) -> None:
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_shifts(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert screen.notice_text == "Till till1 has no open shift; open one first."
        await pilot.press("c")
        await settle(pilot)
        assert screen.notice_text == "Till till1 has no open shift to close; open one first."
        assert isinstance(app.screen, ShiftsScreen)
        assert await shift_rows(seeded) == []

        await pilot.press("o")
        await settle(pilot)
        await type_into(pilot, "#float", "500")
        before = await shift_rows(seeded)
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, ShiftsScreen)
        assert screen.notice_text == (
            "Till till1 already has an open shift (opened by Cashier); close it before "
            "opening another."
        )
        assert await shift_rows(seeded) == before

        await pilot.press("c")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, CloseShiftScreen)
        for typed, message in (
            (
                "lots",
                "The counted cash must be a whole number of shillings, e.g. 2000 (got 'lots')",
            ),
            ("-20", "The counted cash cannot be negative (got -20)"),
        ):
            await type_into(pilot, "#counted", typed)
            assert dialog.error_text == f"{message}. Nothing was changed."
            assert await shift_rows(seeded) == before
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen and screen.status_text.startswith("Shift open since")


async def test_the_z_report_prints_after_the_close_and_a_missing_printer_keeps_the_close(
    tmp_path: Path,
) -> None:
    (tmp_path / "usb").mkdir()
    device = tmp_path / "usb" / "lp0"
    settings = make_settings(tmp_path / "till", printer={"kind": "file", "path": str(device)})
    async with seeded_till(tmp_path, settings=settings) as till:
        desk = ShiftDesk(till.store, SHOP, TILL, settings.printer)
        await desk.open(2000, "Wanjiru")
        app = build_app(till)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_shifts(pilot)
            await pilot.press("c")
            await settle(pilot)
            await type_into(pilot, "#counted", "2000")
            await wait_until(pilot, lambda: "printed" in screen.notice_text, "the print")
            assert screen.notice_text == (
                "Shift closed: Z 1. Expected KES 2,000, counted KES 2,000: none, the drawer "
                "matches. Z report printed."
            )
            report = await desk.z_report(1)
            assert device.read_bytes() == text_escpos_bytes(render_text(report))

            # The printer is unplugged (its device is gone): the next close still lands.
            device.unlink()
            (tmp_path / "usb").rmdir()
            await desk.open(500, "Otieno")
            await pilot.press("c")
            await settle(pilot)
            await type_into(pilot, "#counted", "450")
            await wait_until(pilot, lambda: "Not printed" in screen.notice_text, "the failure")
            assert screen.notice_text == (
                "Shift closed: Z 2. Expected KES 500, counted KES 450: KES 50 short. Not "
                f"printed: printer {device} is not reachable (no such file or directory); "
                "nothing printed, print it again when the printer is back. P prints it again."
            )
            assert await desk.current() is None
            assert (await desk.z_report(2)).counted_cash == 450
