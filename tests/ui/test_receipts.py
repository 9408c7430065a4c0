"""Receipts at the counter: the real app paid on the real engine and simulator, printing to a
real file printer whose bytes are compared with the stored receipts in tests/data/receipts.

The receipt number is fixed the way the snapshot tests fix it (the test plays Safaricom with
the simulator's own callback), and the till's ManualClock starts at 09:00 UTC, so the receipt
is the same on every run.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.widgets import Static

from smartduka_tui.config import PrinterKind, PrinterSettings
from smartduka_tui.model import AttemptState
from smartduka_tui.printing import PrinterStatus
from smartduka_tui.receipts.desk import REPRINT_ACTION, ReceiptDesk
from smartduka_tui.ui.printer import STATUS_EVERY_S
from smartduka_tui.ui.screens.checkout import NOTHING_TO_REPRINT, CheckoutScreen
from smartduka_tui.ui.screens.receipt import ReceiptScreen
from smartduka_tui.ui.screens.sales import SalesScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.waiting import WaitingScreen
from smartduka_tui.ui.widgets.printer_status import PrinterStatusLabel
from tests.payments.harness import TillHarness
from tests.support.printer import PAPER_OK, PAPER_OUT, LoopbackPrinter
from tests.ui.conftest import SIZE, advance, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import put, script
from tests.ui.test_snapshots import deliver, to_phone

EXPECTED = Path(__file__).resolve().parent.parent / "data" / "receipts"
RECEIPT = "SDK4T9Q2XZ"
SALE = "0115001"  # a fresh store's first sale reference


def expected(name: str) -> bytes:
    return (EXPECTED / name).read_bytes()


def desk(harness: TillHarness, device: Path, *, auto_print: bool = True) -> ReceiptDesk:
    printer = PrinterSettings(kind=PrinterKind.FILE, path=device, auto_print=auto_print)
    return ReceiptDesk(harness.engine.store, harness.shop_id, harness.till_id, printer)


def text_of(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def printer_label(pilot: Any) -> str:
    return str(pilot.app.screen.query_one("#status-printer", PrinterStatusLabel).content)


def ready(pilot: Any) -> bool:
    """The till thinks the printer is ready, and the status bar says nothing about it."""
    return pilot.app.printer.status is PrinterStatus.READY and printer_label(pilot) == ""


async def reprints(harness: TillHarness) -> list[Mapping[str, Any]]:
    entries = await harness.engine.store.audit.search(
        harness.shop_id, include_system=True, action_prefix=REPRINT_ACTION
    )
    return [entry.detail for entry in entries]


async def paid_sale(pilot: Any, harness: TillHarness, phone: str) -> Any:
    """Checkout to the success screen: KES 250 from `phone`, paid with receipt RECEIPT."""
    await to_phone(pilot, "250")
    await put(pilot, "#phone", "0" + phone[3:])
    await pilot.press("enter")
    waiting: Any = await wait_for_screen(pilot, WaitingScreen)
    await wait_until(pilot, lambda: waiting.view.state is AttemptState.PENDING, "pending")
    await deliver(pilot, harness, RECEIPT)
    return await wait_for_screen(pilot, SuccessScreen)


async def printed(pilot: Any, screen: Any, selector: str, words: str) -> None:
    await wait_until(pilot, lambda: text_of(screen, selector).startswith(words), words)


async def test_a_paid_sale_prints_the_stored_receipt_and_p_prints_a_copy(
    quiet_till: TillHarness, tmp_path: Path
) -> None:
    phone = await script(quiet_till, "254712000701")
    device = tmp_path / "lp0"
    app = build_app(quiet_till, receipts=desk(quiet_till, device))
    async with app.run_test(size=SIZE) as pilot:
        success = await paid_sale(pilot, quiet_till, phone)
        await printed(pilot, success, "#printer-line", "Receipt printed.")
        assert device.read_bytes() == expected("0115001.escpos")
        assert ready(pilot)
        assert await reprints(quiet_till) == []
        # A second print from the success screen is a copy, and audited.
        await pilot.press("p")
        await printed(pilot, success, "#printer-line", "Copy printed (marked COPY).")
        assert device.read_bytes() == expected("0115001-copy.escpos")  # each print opens anew
        assert await reprints(quiet_till) == [
            {"sale_ref": SALE, "till_id": "till1", "via": "success"}
        ]
        # R shows the same receipt as text.
        await pilot.press("r")
        receipt_screen = await wait_for_screen(pilot, ReceiptScreen)
        await wait_until(pilot, lambda: text_of(receipt_screen, "#receipt-text") != "", "text")
        assert text_of(receipt_screen, "#receipt-text") + "\n" == expected("0115001.txt").decode()
        # Reopened from F2 the paid sale does not print by itself again; P prints a copy.
        await pilot.press("escape")
        await wait_for_screen(pilot, SuccessScreen)
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)
        device.unlink()
        await pilot.press("f2")
        sales: Any = await wait_for_screen(pilot, SalesScreen)
        await wait_until(pilot, lambda: len(sales.views) == 1, "the paid sale")
        await pilot.press("enter")
        again: Any = await wait_for_screen(pilot, SuccessScreen)
        assert again is not success
        assert text_of(again, "#printer-line") == "P prints the receipt, R shows it."
        assert not device.exists()
        await pilot.press("p")
        await printed(pilot, again, "#printer-line", "Copy printed (marked COPY).")
        assert device.read_bytes() == expected("0115001-copy.escpos")
        assert len(await reprints(quiet_till)) == 2


async def test_a_vanished_printer_says_so_loses_nothing_and_prints_when_back(
    quiet_till: TillHarness, tmp_path: Path
) -> None:
    phone = await script(quiet_till, "254712000702")
    folder = tmp_path / "usb"
    folder.mkdir()
    device = folder / "lp0"
    app = build_app(quiet_till, receipts=desk(quiet_till, device))
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: ready(pilot), "printer ready")
        shutil.rmtree(folder)  # unplugged after the till last saw it
        success = await paid_sale(pilot, quiet_till, phone)
        await printed(pilot, success, "#printer-line", "Receipt not printed")
        assert text_of(success, "#printer-line") == (
            f"Receipt not printed: printer {device} is not reachable (no such file or "
            "directory); nothing printed, print it again when the printer is back. P prints it "
            "again."
        )
        await wait_until(pilot, lambda: printer_label(pilot) == "✖ Printer OFFLINE", "offline")
        assert not folder.exists()
        # The sale itself is done and paid; the printer comes back and P prints the original.
        assert success.view.receipt == RECEIPT
        folder.mkdir()
        await pilot.press("p")
        await printed(pilot, success, "#printer-line", "Receipt printed.")
        assert device.read_bytes() == expected("0115001.escpos")
        assert await reprints(quiet_till) == []
        await wait_until(pilot, lambda: ready(pilot), "printer back")
        await pilot.press("enter")
        assert await wait_for_screen(pilot, CheckoutScreen) is checkout


async def test_a_stuck_printer_never_holds_up_the_next_sale(
    quiet_till: TillHarness, tmp_path: Path
) -> None:
    """The device is a FIFO nobody reads yet: opening it blocks, as a wedged printer does."""
    phone = await script(quiet_till, "254712000703")
    device = tmp_path / "lp0"
    os.mkfifo(device)
    app = build_app(quiet_till, receipts=desk(quiet_till, device))
    got = bytearray()
    try:
        async with app.run_test(size=SIZE) as pilot:
            success = await paid_sale(pilot, quiet_till, phone)
            assert text_of(success, "#printer-line") == "Printing the receipt…"
            await pilot.press("enter")
            checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: checkout.sale_ref not in ("", SALE), "the next sale")
            await put(pilot, "#total", "80")
            assert checkout.total_text == "80"
    finally:

        def printer_wakes() -> None:
            with open(device, "rb") as fifo:
                got.extend(fifo.read())

        reader = threading.Thread(target=printer_wakes)
        reader.start()
        reader.join(timeout=20)
    assert bytes(got) == expected("0115001.escpos")


async def test_reprint_last_receipt_from_the_checkout_is_a_copy_and_audited(
    quiet_till: TillHarness, tmp_path: Path
) -> None:
    phone = await script(quiet_till, "254712000704")
    device = tmp_path / "lp0"
    app = build_app(quiet_till, receipts=desk(quiet_till, device, auto_print=False))
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        # Nothing paid yet: nothing to reprint, nothing printed, nothing audited.
        await pilot.press("f8")
        await wait_until(pilot, lambda: checkout.notice_text == NOTHING_TO_REPRINT, "refusal")
        assert not device.exists()
        assert await reprints(quiet_till) == []
        success = await paid_sale(pilot, quiet_till, phone)
        assert text_of(success, "#printer-line") == "P prints the receipt, R shows it."
        assert not device.exists()
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("f8")
        screen = await wait_for_screen(pilot, ReceiptScreen)
        await printed(pilot, screen, "#receipt-status", "Copy printed (marked COPY).")
        assert text_of(screen, "#receipt-text") + "\n" == expected("0115001-copy.txt").decode()
        assert device.read_bytes() == expected("0115001-copy.escpos")
        assert await reprints(quiet_till) == [
            {"sale_ref": SALE, "till_id": "till1", "via": "checkout"}
        ]
        await pilot.press("escape")
        await wait_for_screen(pilot, CheckoutScreen)


async def test_without_a_printer_the_success_screen_says_so_and_prints_nothing(
    quiet_till: TillHarness, tmp_path: Path
) -> None:
    phone = await script(quiet_till, "254712000705")
    none = ReceiptDesk(
        quiet_till.engine.store, quiet_till.shop_id, quiet_till.till_id, PrinterSettings()
    )
    app = build_app(quiet_till, receipts=none)
    async with app.run_test(size=SIZE) as pilot:
        success = await paid_sale(pilot, quiet_till, phone)
        assert text_of(success, "#printer-line") == (
            "Receipt not printed: no receipt printer is set up (printer.kind in the settings). "
            "R shows it."
        )
        assert printer_label(pilot) == "○ No printer"
        assert app.printer is not None and app.printer.status is PrinterStatus.NOT_CONFIGURED
        await pilot.press("p")
        await pilot.pause()
        assert text_of(success, "#printer-line") == (
            "Receipt not printed: no receipt printer is set up (printer.kind in the settings)."
        )
        assert await reprints(quiet_till) == []


async def shot(pilot: Any, svg: SnapshotAssertion, name: str) -> None:
    """As the snapshot tests' `shot`, but the printer's status poll runs for the app's life too."""
    await pilot.pause()
    await wait_until(
        pilot,
        lambda: all(
            w.is_finished for w in pilot.app.workers if w.group not in ("clock", "printer-status")
        ),
        "the workers to finish",
    )
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    assert svg(name=name) == pilot.app.export_screenshot(simplify=True)


async def test_receipt_screens_at_80x24(
    quiet_till: TillHarness,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svg = snapshot.use_extension(SVGImageExtension)
    phone = await script(quiet_till, "254712000706")
    # A relative printer path, so the message on screen is the same on every run.
    monkeypatch.chdir(tmp_path)
    folder = Path("usb")
    device = folder / "lp0"
    app = build_app(quiet_till, receipts=desk(quiet_till, device))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: printer_label(pilot) == "✖ Printer OFFLINE", "offline")
        success = await paid_sale(pilot, quiet_till, phone)
        await printed(pilot, success, "#printer-line", "Receipt not printed")
        await shot(pilot, svg, "success_printer_offline")
        folder.mkdir()
        await pilot.press("p")
        await printed(pilot, success, "#printer-line", "Receipt printed.")
        await wait_until(pilot, lambda: ready(pilot), "printer back")
        await shot(pilot, svg, "success_printed")
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)
        await pilot.press("f8")
        screen = await wait_for_screen(pilot, ReceiptScreen)
        await printed(pilot, screen, "#receipt-status", "Copy printed (marked COPY).")
        await shot(pilot, svg, "receipt_reprinted_copy")


async def test_a_printer_out_of_paper_is_not_sent_the_receipt_until_paper_is_in(
    quiet_till: TillHarness,
) -> None:
    phone = await script(quiet_till, "254712000707")
    with LoopbackPrinter() as device:
        device.paper = PAPER_OUT
        settings = PrinterSettings(kind=PrinterKind.NETWORK, host="127.0.0.1", port=device.port)
        receipts = ReceiptDesk(
            quiet_till.engine.store, quiet_till.shop_id, quiet_till.till_id, settings
        )
        app = build_app(quiet_till, receipts=receipts)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: printer_label(pilot) == "✖ NO PAPER", "no paper")
            success = await paid_sale(pilot, quiet_till, phone)
            assert text_of(success, "#printer-line") == (
                "Receipt not printed: the printer is out of paper. R shows it."
            )
            await pilot.press("p")
            await pilot.pause()
            assert text_of(success, "#printer-line") == (
                "Receipt not printed: the printer is out of paper."
            )
            assert device.printed == b""
            # Paper in: the till sees it at its next look (30 s on its clock), and P prints.
            device.paper = PAPER_OK
            await advance(pilot, quiet_till, STATUS_EVERY_S)
            await wait_until(pilot, lambda: ready(pilot), "paper in")
            await pilot.press("p")
            await printed(pilot, success, "#printer-line", "Receipt printed.")
    assert bytes(device.printed) == expected("0115001.escpos")
