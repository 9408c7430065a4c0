"""`smartduka receipt SALE` on a real data folder holding the manager tests' fixed story."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from smartduka_tui.store.lock import acquire_data_dir_lock
from tests.receipts.conftest import DIRECT_SALE, audit_actions, expected, story
from tests.support.cli import Runner

__all__ = ["story"]


def test_a_paid_sale_prints_the_stored_receipt(smartduka: Runner, story: Path) -> None:
    result = smartduka("receipt", "S1001")
    assert result.code == 0, result.err
    assert result.out == expected("S1001.txt").decode()


def test_a_sale_paid_directly_shows_its_transid_as_the_tender(
    smartduka: Runner, story: Path
) -> None:
    result = smartduka("receipt", DIRECT_SALE)
    assert result.code == 0, result.err
    assert result.out == expected("S2001-c2b.txt").decode()
    assert "  Receipt TKQ9ZZ1A2B" in result.out.splitlines()


def test_it_works_beside_the_running_app_and_writes_nothing(smartduka: Runner, story: Path) -> None:
    before = audit_actions(story)
    with acquire_data_dir_lock(story):  # the lock the running app holds
        result = smartduka("receipt", "S1001")
    assert result.code == 0, result.err
    assert result.out == expected("S1001.txt").decode()
    assert audit_actions(story) == before


@pytest.mark.parametrize(
    ("sale", "message"),
    [
        ("S9999", "there is no sale 'S9999' in shop 'duka1'"),
        ("   ", "give a sale number, e.g. S1001"),
        ("S1002", "sale 'S1002' is not paid (its last payment is failed), so it has no receipt"),
        ("S1003", "sale 'S1003' is not paid (its last payment is expired), so it has no receipt"),
    ],
)
def test_an_unknown_or_unpaid_sale_is_named_and_nothing_changes(
    smartduka: Runner, story: Path, sale: str, message: str
) -> None:
    before = audit_actions(story)
    result = smartduka("receipt", sale)
    assert (result.code, result.out) == (2, "")
    assert result.err == f"smartduka: error: {message}\n"
    assert audit_actions(story) == before


def test_an_unknown_shop_is_named(smartduka: Runner, story: Path) -> None:
    result = smartduka("receipt", "S1001", "--shop", "nope")
    assert result.code == 2
    assert result.err == "smartduka: error: there is no shop 'nope' on this till\n"


def test_print_sends_a_copy_to_the_file_printer_and_audits_it(
    smartduka: Runner, story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = tmp_path / "lp0"
    monkeypatch.setenv("SMARTDUKA_PRINTER__KIND", "file")
    monkeypatch.setenv("SMARTDUKA_PRINTER__PATH", str(device))
    before = audit_actions(story)
    result = smartduka("receipt", "S1001", "--print")
    assert result.code == 0, result.err
    assert device.read_bytes() == expected("S1001-copy.escpos")
    assert result.out.startswith(expected("S1001-copy.txt").decode())
    assert result.out.endswith("Printed a copy of sale S1001's receipt.\n")
    assert audit_actions(story) == [*before, "receipt.reprinted"]


def test_print_to_a_vanished_printer_says_so_and_audits_nothing(
    smartduka: Runner, story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    monkeypatch.setenv("SMARTDUKA_PRINTER__KIND", "file")
    monkeypatch.setenv("SMARTDUKA_PRINTER__PATH", str(folder / "lp0"))
    shutil.rmtree(folder)
    before = audit_actions(story)
    result = smartduka("receipt", "S1001", "--print")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"smartduka: error: printer {folder / 'lp0'} is not reachable (no such file or "
        "directory); nothing printed, print it again when the printer is back\n"
    )
    assert audit_actions(story) == before


def test_print_without_a_printer_says_how_to_set_one_up(smartduka: Runner, story: Path) -> None:
    result = smartduka("receipt", "S1001", "--print")
    assert result.code == 1
    assert result.err == (
        "smartduka: error: no receipt printer is set up (printer.kind in the settings)\n"
    )
