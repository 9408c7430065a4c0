"""ESC/POS printing through python-escpos to real devices: a file, a FIFO whose reader goes
away mid-print (a printer unplugged), and a network printer on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from smartduka_tui.config import PrinterKind, PrinterSettings
from smartduka_tui.printing import (
    PrinterError,
    PrinterStatus,
    escpos_bytes,
    print_receipt,
    printer_status,
)
from smartduka_tui.receipts import ReceiptLine, Tender, TenderKind
from tests.receipts.conftest import PAID_SALE, expected
from tests.support.printer import PAPER_LOW, PAPER_OK, PAPER_OUT, LoopbackPrinter


def file_printer(path: Path) -> PrinterSettings:
    return PrinterSettings(kind=PrinterKind.FILE, path=path)


def test_the_bytes_are_the_stored_receipt() -> None:
    assert escpos_bytes(PAID_SALE) == expected("S1001.escpos")
    assert escpos_bytes(PAID_SALE.as_copy()) == expected("S1001-copy.escpos")


def test_a_file_printer_receives_exactly_the_stored_bytes(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    print_receipt(file_printer(device), PAID_SALE)
    assert device.read_bytes() == expected("S1001.escpos")


def test_a_printer_path_that_vanished_gives_a_clear_message_and_can_print_later(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    settings = file_printer(folder / "lp0")
    shutil.rmtree(folder)
    assert printer_status(settings) is PrinterStatus.OFFLINE
    with pytest.raises(PrinterError) as caught:
        print_receipt(settings, PAID_SALE)
    assert str(caught.value) == (
        f"printer {folder / 'lp0'} is not reachable (no such file or directory); nothing "
        "printed, print it again when the printer is back"
    )
    assert not folder.exists()
    # The printer comes back: the same receipt prints, whole.
    folder.mkdir()
    assert printer_status(settings) is PrinterStatus.READY
    print_receipt(settings, PAID_SALE)
    assert (folder / "lp0").read_bytes() == expected("S1001.escpos")


def test_a_printer_that_goes_away_mid_print_says_so(tmp_path: Path) -> None:
    """The device is a FIFO; its reader (the printer) takes the first bytes and is unplugged.
    The receipt is longer than the pipe's buffer, so the writer is still writing then."""
    long_sale = replace(
        PAID_SALE,
        lines=tuple(ReceiptLine(f"Item {n}", 1, 1) for n in range(4000)),
        tenders=(Tender(TenderKind.MPESA_STK, 4000, "SDK1A2B3C4"),),
    )
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def printer_then_unplugged() -> None:
        fd = os.open(fifo, os.O_RDONLY)
        got.append(os.read(fd, 4))
        os.close(fd)

    reader = threading.Thread(target=printer_then_unplugged)
    reader.start()
    try:
        with pytest.raises(PrinterError) as caught:
            print_receipt(file_printer(fifo), long_sale)
    finally:
        reader.join()
    assert str(caught.value) == (
        f"printer {fifo} stopped mid-print (broken pipe); the receipt is kept, print it again "
        "when the printer is back"
    )
    assert got and expected("S1001.escpos").startswith(got[0])
    # Nothing is lost: the same receipt prints whole once a printer is there.
    print_receipt(file_printer(tmp_path / "lp1"), long_sale)
    assert (tmp_path / "lp1").read_bytes() == escpos_bytes(long_sale)


def test_a_network_printer_on_loopback_receives_the_receipt() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = bytearray()

    def printer() -> None:
        connection, _ = server.accept()
        with connection:
            while chunk := connection.recv(4096):
                received.extend(chunk)

    thread = threading.Thread(target=printer)
    thread.start()
    try:
        print_receipt(
            PrinterSettings(kind=PrinterKind.NETWORK, host="127.0.0.1", port=port), PAID_SALE
        )
    finally:
        thread.join(timeout=10)
        server.close()
    assert bytes(received) == expected("S1001.escpos")


def test_a_network_printer_that_refuses_is_offline_with_a_clear_message() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    settings = PrinterSettings(kind=PrinterKind.NETWORK, host="127.0.0.1", port=port)
    assert printer_status(settings) is PrinterStatus.OFFLINE
    with pytest.raises(PrinterError, match=rf"^printer 127\.0\.0\.1:{port} is not reachable"):
        print_receipt(settings, PAID_SALE)


def test_no_printer_is_not_configured() -> None:
    settings = PrinterSettings()
    assert printer_status(settings) is PrinterStatus.NOT_CONFIGURED
    assert not PrinterStatus.NOT_CONFIGURED.can_print
    with pytest.raises(PrinterError, match="no receipt printer is set up"):
        print_receipt(settings, PAID_SALE)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "file"}, "printer.path is needed when printer.kind is file"),
        ({"kind": "network"}, "printer.host is needed when printer.kind is network"),
        ({"kind": "usb", "usb_vendor": 0x04B8}, "printer.usb_product is needed"),
        ({"kind": "serial"}, "Input should be 'none', 'file', 'network' or 'usb'"),
        ({"kind": "network", "host": "p", "port": 0}, "greater than or equal to 1"),
    ],
)
def test_a_printer_setting_missing_its_address_is_refused(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PrinterSettings.model_validate(fields)


@pytest.mark.parametrize(
    ("online", "paper", "status"),
    [
        (True, PAPER_OK, PrinterStatus.READY),
        (True, PAPER_LOW, PrinterStatus.PAPER_LOW),
        (True, PAPER_OUT, PrinterStatus.OUT_OF_PAPER),
        (False, PAPER_OK, PrinterStatus.OFFLINE),
    ],
)
def test_a_network_printer_says_how_it_is(online: bool, paper: int, status: PrinterStatus) -> None:
    with LoopbackPrinter() as printer:
        printer.online, printer.paper = online, paper
        settings = PrinterSettings(kind=PrinterKind.NETWORK, host="127.0.0.1", port=printer.port)
        assert printer_status(settings) is status
    assert printer.printed == b""  # asking prints nothing


def test_a_network_printer_that_never_answers_a_status_query_is_offline() -> None:
    with LoopbackPrinter() as printer:
        printer.answers = False
        settings = PrinterSettings(
            kind=PrinterKind.NETWORK, host="127.0.0.1", port=printer.port, timeout_s=0.2
        )
        assert printer_status(settings) is PrinterStatus.OFFLINE


def test_a_usb_printer_that_is_not_there_is_offline_with_a_clear_message() -> None:
    """No such printer on this machine's USB (or no libusb at all): both are named, not raised."""
    settings = PrinterSettings(kind=PrinterKind.USB, usb_vendor=0x04B8, usb_product=0x0E15)
    assert printer_status(settings) is PrinterStatus.OFFLINE
    with pytest.raises(PrinterError) as caught:
        print_receipt(settings, PAID_SALE)
    message = str(caught.value)
    assert message.startswith("USB printer 04b8:0e15 is not reachable (")
    assert message.endswith("); nothing printed, print it again when the printer is back")
    assert "\n" not in message
