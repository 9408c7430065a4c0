"""`smartduka shift ...` on a real data folder, in this process (tests/receipts' runner).
Opening and closing are the manager's: the folders here have a manager PIN, given through
SMARTDUKA_MANAGER_PIN, unless a test says otherwise."""

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
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.store.secret import Secret
from tests.manager.conftest import FIXED_SECRETS, START, add_shop
from tests.receipts.conftest import data_dir, smartduka
from tests.shifts.conftest import SHOP, TILL, ring_up_day
from tests.support.cli import Runner

__all__ = ["data_dir", "smartduka"]

EXPECTED = Path(__file__).resolve().parent.parent / "data" / "shifts"
PIN = "4826"
PIN_ENV = "SMARTDUKA_MANAGER_PIN"


async def _seed(
    folder: Path, *, closed_day: bool, pin: bool = True, open_shift: bool = False
) -> None:
    folder.mkdir(parents=True)
    keyring = create_keyring(keyring_path(folder))
    clock = ManualClock(START)
    store = await Store.open(database_path(folder), clock=clock, keyring=keyring)
    try:
        await add_shop(store, FIXED_SECRETS)
        if pin:
            assert (await ManagerPin.of(store).set(Secret(PIN))).accepted
        if open_shift:
            await ShiftDesk(store, SHOP, TILL, PrinterSettings()).open(500, "Achieng")
        if closed_day:
            desk = ShiftDesk(store, SHOP, TILL, PrinterSettings())
            await desk.open(2000, "Wanjiru")
            await ring_up_day(store, clock)
            clock.advance(3600)
            await desk.close(2800, via="test")
    finally:
        await store.close()


@pytest.fixture
def folder(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A till's data folder with its shop and till, no shift yet; its manager PIN given."""
    asyncio.run(_seed(data_dir, closed_day=False))
    monkeypatch.setenv(PIN_ENV, PIN)
    return data_dir


@pytest.fixture
def closed_day(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A till's data folder with one closed shift: the day of tests/shifts/conftest.py."""
    asyncio.run(_seed(data_dir, closed_day=True))
    monkeypatch.setenv(PIN_ENV, PIN)
    return data_dir


def shifts(folder: Path) -> list[tuple[object, ...]]:
    return state(folder)[0]


def last_audit(folder: Path) -> tuple[str, str]:
    async def read() -> tuple[str, str]:
        store = await Store.open(database_path(folder))
        try:
            row = await store.db.fetchone(
                "SELECT action, detail FROM audit_log ORDER BY id DESC LIMIT 1"
            )
        finally:
            await store.close()
        assert row is not None
        return str(row[0]), str(row[1])

    return asyncio.run(read())


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


def test_opening_and_closing_refuse_without_a_manager_pin_and_change_nothing(
    smartduka: Runner, data_dir: Path
) -> None:
    asyncio.run(_seed(data_dir, closed_day=False, pin=False))
    before = state(data_dir)
    opened = smartduka("shift", "open", "--float", "2000")
    assert (opened.code, opened.out) == (3, "")
    assert opened.err == (
        "smartduka: error: opening a shift is for a manager: set a manager PIN first "
        "(`smartduka manager set-pin`). Nothing changed.\n"
    )
    assert state(data_dir) == before


def test_closing_without_a_manager_pin_writes_no_z_report(
    smartduka: Runner, data_dir: Path
) -> None:
    asyncio.run(_seed(data_dir, closed_day=False, pin=False, open_shift=True))
    before = state(data_dir)
    closed = smartduka("shift", "close", "--counted", "500")
    assert (closed.code, closed.out) == (3, "")
    assert closed.err == (
        "smartduka: error: closing a shift is for a manager: set a manager PIN first "
        "(`smartduka manager set-pin`). Nothing changed.\n"
    )
    assert state(data_dir) == before
    assert smartduka("shift", "x").code == 0, "the shift is still open"


def test_a_wrong_pin_opens_and_closes_nothing_and_the_z_numbers_stay_gapless(
    smartduka: Runner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_seed(data_dir, closed_day=False, open_shift=True))
    before = shifts(data_dir)
    monkeypatch.setenv(PIN_ENV, "0000")
    for args in (("close", "--counted", "500"), ("close", "--counted", "510")):
        result = smartduka("shift", *args)
        assert (result.code, result.out) == (1, "")
        assert result.err.startswith("smartduka: error: Wrong manager PIN: ")
        assert result.err.endswith(" left before it locks for 5 minutes. Nothing changed.\n")
        assert shifts(data_dir) == before
        action, detail = last_audit(data_dir)
        assert action == "manager.sign_in_failed" and "closing a shift on till till1" in detail
    # The right PIN, typed on standard input this time: the close is Z 1, not Z 3.
    monkeypatch.delenv(PIN_ENV)
    closed = smartduka("shift", "close", "--counted", "500", stdin=PIN + "\n")
    assert closed.code == 0, closed.err
    assert closed.out.endswith(
        "Shift closed: Z 1. Expected KES 500, counted KES 500: none, the drawer matches.\n"
    )
    after_close = shifts(data_dir)
    monkeypatch.setenv(PIN_ENV, "0000")
    refused = smartduka("shift", "open", "--float", "100")
    assert refused.code == 1 and "Wrong manager PIN" in refused.err
    assert refused.err.endswith(" Nothing changed.\n")
    assert shifts(data_dir) == after_close
    assert smartduka("shift", "x").code == 1, "no shift was opened"


def test_a_refusal_for_the_figure_or_the_shift_asks_for_no_pin(
    smartduka: Runner, data_dir: Path
) -> None:
    asyncio.run(_seed(data_dir, closed_day=False))
    before = state(data_dir)
    # No PIN in the environment and none on standard input: nothing asks for one.
    bad = smartduka("shift", "open", "--float", "abc")
    assert (bad.code, bad.err) == (
        2,
        "smartduka: error: the float must be a whole number of shillings, e.g. 2000 (got 'abc')\n",
    )
    none_open = smartduka("shift", "close", "--counted", "5")
    assert (none_open.code, none_open.err) == (
        1,
        "smartduka: error: till till1 has no open shift to close; open one first\n",
    )
    asked = smartduka("shift", "open", "--float", "100")
    assert (asked.code, asked.out) == (2, "")
    assert asked.err.startswith("smartduka: error: this needs the manager PIN")
    assert asked.err.endswith("Nothing changed.\n")
    assert state(data_dir) == before
