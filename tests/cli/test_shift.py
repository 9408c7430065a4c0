"""`smartduka shift ...` on a real data folder, in this process (tests/receipts' runner)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import PrinterSettings
from smartduka_tui.payments.shifts import ShiftDesk
from smartduka_tui.store import Store, create_keyring, database_path, keyring_path
from smartduka_tui.store.lock import acquire_data_dir_lock
from tests.manager.conftest import FIXED_SECRETS, START, add_shop
from tests.receipts.conftest import data_dir, smartduka
from tests.shifts.conftest import SHOP, TILL, ring_up_day
from tests.support.cli import Runner

__all__ = ["data_dir", "smartduka"]

EXPECTED = Path(__file__).resolve().parent.parent / "data" / "shifts"


async def _seed(folder: Path, *, closed_day: bool) -> None:
    folder.mkdir(parents=True)
    keyring = create_keyring(keyring_path(folder))
    clock = ManualClock(START)
    store = await Store.open(database_path(folder), clock=clock, keyring=keyring)
    try:
        await add_shop(store, FIXED_SECRETS)
        if closed_day:
            desk = ShiftDesk(store, SHOP, TILL, PrinterSettings())
            await desk.open(2000, "Wanjiru")
            await ring_up_day(store, clock)
            clock.advance(3600)
            await desk.close(2800, via="test")
    finally:
        await store.close()


@pytest.fixture
def folder(data_dir: Path) -> Path:
    """A till's data folder with its shop and till, no shift yet."""
    asyncio.run(_seed(data_dir, closed_day=False))
    return data_dir


@pytest.fixture
def closed_day(data_dir: Path) -> Path:
    """A till's data folder with one closed shift: the day of tests/shifts/conftest.py."""
    asyncio.run(_seed(data_dir, closed_day=True))
    return data_dir


def state(folder: Path) -> tuple[list[tuple[object, ...]], int]:
    async def read() -> tuple[list[tuple[object, ...]], int]:
        store = await Store.open(database_path(folder))
        try:
            rows = await store.db.fetchall("SELECT * FROM shifts ORDER BY id")
            audit = await store.db.fetchone("SELECT count(*) FROM audit_log")
        finally:
            await store.close()
        assert audit is not None
        return [tuple(r) for r in rows], int(audit[0])

    return asyncio.run(read())


def test_open_x_close_list_beside_the_running_app(smartduka: Runner, folder: Path) -> None:
    with acquire_data_dir_lock(folder):  # the lock the running app holds
        opened = smartduka("shift", "open", "--float", "2,000", "--cashier", "Wanjiru")
        assert opened.code == 0, opened.err
        assert opened.out == ("Shift opened on till till1 for Wanjiru with a float of KES 2,000.\n")
        x = smartduka("shift", "x")
        assert x.code == 0, x.err
        assert (
            "X REPORT (mid-shift)" in x.out
            and "Expected in the drawer           KES 2,000" in x.out
        )
        closed = smartduka("shift", "close", "--counted", "2010")
    assert closed.code == 0, closed.err
    assert closed.out.endswith(
        "Shift closed: Z 1. Expected KES 2,000, counted KES 2,010: KES 10 over.\n"
    )
    listed = smartduka("shift", "list", "--json")
    rows = json.loads(listed.out)
    assert [(r["z_number"], r["float"], r["expected_cash"], r["counted_cash"]) for r in rows] == [
        (1, 2000, 2000, 2010)
    ]
    assert rows[0]["difference"] == 10


def test_show_and_export_give_the_stored_z_report(
    smartduka: Runner, closed_day: Path, tmp_path: Path
) -> None:
    shown = smartduka("shift", "show", "1")
    assert shown.code == 0, shown.err
    assert shown.out == (EXPECTED / "Z1.txt").read_text()
    as_json = json.loads(smartduka("shift", "show", "Z1", "--json").out)
    assert as_json["z_number"] == 1 and as_json["difference"] == -50
    assert as_json["statement"]["only_statement"] == [["XYZ0000009", 500]]
    target = tmp_path / "z1.csv"
    exported = smartduka("shift", "export", "1", "--csv", str(target))
    assert exported.code == 0, exported.err
    assert target.read_text() == (EXPECTED / "Z1.csv").read_text()


def test_export_refuses_to_overwrite_and_changes_nothing(
    smartduka: Runner, closed_day: Path, tmp_path: Path
) -> None:
    target = tmp_path / "z1.csv"
    target.write_text("yesterday's\n")
    before = state(closed_day)
    result = smartduka("shift", "export", "1", "--csv", str(target))
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        f"smartduka: error: {target} already exists; choose another file name "
        "(nothing was written)\n"
    )
    assert target.read_text() == "yesterday's\n"
    assert state(closed_day) == before


@pytest.mark.parametrize(
    ("figure", "message"),
    [
        ("abc", "the float must be a whole number of shillings, e.g. 2000 (got 'abc')"),
        ("-500", "the float cannot be negative (got -500)"),
        ("1500.50", "the float is in whole shillings, without cents (got 1500.50)"),
    ],
)
def test_a_bad_float_is_refused_and_opens_nothing(
    smartduka: Runner, folder: Path, figure: str, message: str
) -> None:
    before = state(folder)
    result = smartduka("shift", "open", "--float", figure)
    assert (result.code, result.out) == (2, "")
    assert result.err == f"smartduka: error: {message}\n"
    assert state(folder) == before


@pytest.mark.parametrize(
    ("figure", "message"),
    [
        ("lots", "the counted cash must be a whole number of shillings, e.g. 2000 (got 'lots')"),
        ("-1", "the counted cash cannot be negative (got -1)"),
        ("99.99", "the counted cash is in whole shillings, without cents (got 99.99)"),
    ],
)
def test_a_bad_counted_figure_is_refused_and_the_shift_stays_open(
    smartduka: Runner, folder: Path, figure: str, message: str
) -> None:
    assert smartduka("shift", "open", "--float", "100").code == 0
    before = state(folder)
    result = smartduka("shift", "close", "--counted", figure)
    assert (result.code, result.out) == (2, "")
    assert result.err == f"smartduka: error: {message}\n"
    assert state(folder) == before


def test_refusals_name_the_reason_and_change_nothing(smartduka: Runner, folder: Path) -> None:
    before = state(folder)
    x = smartduka("shift", "x")
    assert (x.code, x.err) == (
        1,
        "smartduka: error: till till1 has no open shift; open one first\n",
    )
    close = smartduka("shift", "close", "--counted", "5")
    assert close.code == 1
    assert close.err == (
        "smartduka: error: till till1 has no open shift to close; open one first\n"
    )
    show = smartduka("shift", "show", "3")
    assert (show.code, show.err) == (1, "smartduka: error: till till1 has no Z 3\n")
    bad_z = smartduka("shift", "show", "zero")
    assert (bad_z.code, bad_z.err) == (
        2,
        "smartduka: error: a Z number is a whole number from 1 (got 'zero')\n",
    )
    assert state(folder) == before
    assert smartduka("shift", "open", "--float", "100").code == 0
    opened = state(folder)
    again = smartduka("shift", "open", "--float", "200")
    assert again.code == 1
    assert again.err == (
        "smartduka: error: till till1 already has an open shift (opened by Cashier); close it "
        "before opening another\n"
    )
    assert state(folder) == opened


def test_close_with_no_printer_still_closes_and_warns(smartduka: Runner, folder: Path) -> None:
    assert smartduka("shift", "open", "--float", "100").code == 0
    result = smartduka("shift", "close", "--counted", "100", "--print")
    assert result.code == 0
    assert "Shift closed: Z 1." in result.out
    assert result.err == (
        "smartduka: warning: the shift is closed, but its Z report did not print: no receipt "
        "printer is set up (printer.kind in the settings); the Z report is kept: print it once "
        "one is set up (`smartduka shift show 1 --print`)\n"
    )
    assert smartduka("shift", "x").code == 1
