"""Receipts on an ESC/POS printer (python-escpos): a file, network or USB printer.

Printing blocks on the device, so callers run `print_receipt` off the UI thread
(`asyncio.to_thread`). The receipt is data (smartduka_tui.receipts), rebuilt from the
store on demand, so a printer that fails mid-print loses nothing: the message says so and the
receipt can be printed again. No Textual here: the app shows what these functions return.
"""

from __future__ import annotations

import contextlib
import socket
from enum import StrEnum
from typing import Any

from smartduka_tui.config import PrinterKind, PrinterSettings
from smartduka_tui.receipts import RECEIPT_COLUMNS, Receipt, render_text


class PrinterStatus(StrEnum):
    """What the cashier is told about the printer."""

    NOT_CONFIGURED = "not configured"
    READY = "ready"
    OFFLINE = "offline"
    PAPER_LOW = "paper low"
    OUT_OF_PAPER = "out of paper"

    @property
    def can_print(self) -> bool:
        return self in (PrinterStatus.READY, PrinterStatus.PAPER_LOW)


class PrinterError(Exception):
    """The receipt did not print; the message says why and that it can be printed again."""


# python-escpos's paper_status(): 2 plenty, 1 near the end, 0 none.
_PAPER = {2: PrinterStatus.READY, 1: PrinterStatus.PAPER_LOW, 0: PrinterStatus.OUT_OF_PAPER}


def draw_text(printer: Any, text: str) -> None:
    """Send ready-made lines (a receipt's rendering, a shift report) to any python-escpos
    printer, then a cut."""
    printer.set(align="left", normal_textsize=True)
    printer.text(text)
    printer.cut()


def text_escpos_bytes(text: str) -> bytes:
    """The exact bytes a printer receives for `text` (made on python-escpos's Dummy)."""
    from escpos.printer import Dummy

    dummy = Dummy()
    draw_text(dummy, text)
    output: bytes = dummy.output
    return output


def escpos_bytes(receipt: Receipt, columns: int = RECEIPT_COLUMNS) -> bytes:
    """The exact bytes a printer receives for `receipt`."""
    return text_escpos_bytes(render_text(receipt, columns))


def _device(settings: PrinterSettings) -> Any:
    """The configured printer, not yet opened."""
    from escpos import printer

    if settings.kind is PrinterKind.FILE:
        return printer.File(devfile=str(settings.path))
    if settings.kind is PrinterKind.NETWORK:
        network = _closing_network_class()
        return network(host=settings.host, port=settings.port, timeout=settings.timeout_s)
    return printer.Usb(
        idVendor=settings.usb_vendor,
        idProduct=settings.usb_product,
        timeout=int(settings.timeout_s * 1000),
    )


def _closing_network_class() -> Any:
    from escpos.printer import Network

    class ClosingNetwork(Network):  # type: ignore[misc]
        """python-escpos's network printer, but a refused connection closes its socket
        (the library's own open leaves it for the garbage collector)."""

        def open(self, raise_not_found: bool = True) -> None:
            from escpos.exceptions import DeviceNotFoundError

            try:
                self.device = socket.create_connection((self.host, self.port), self.timeout)
            except OSError as error:
                raise DeviceNotFoundError(f"Could not open socket for {self.host}") from error

    return ClosingNetwork


def _device_errors() -> tuple[type[BaseException], ...]:
    """What a printer that is gone, unplugged or unusable raises: python-escpos's errors, the
    system's, and pyusb's (no such device, no libusb on the machine)."""
    from escpos.exceptions import Error as EscposError
    from usb.core import NoBackendError, USBError

    return (EscposError, OSError, USBError, NoBackendError)


def _where(settings: PrinterSettings) -> str:
    if settings.kind is PrinterKind.FILE:
        return f"printer {settings.path}"
    if settings.kind is PrinterKind.NETWORK:
        return f"printer {settings.host}:{settings.port}"
    return f"USB printer {settings.usb_vendor:04x}:{settings.usb_product:04x}"


def printer_status(settings: PrinterSettings) -> PrinterStatus:
    """Ask the printer how it is. A file printer cannot answer: it is ready when its path
    can be opened for writing. Blocks up to the printer's timeout (call it off the UI thread)."""
    if settings.kind is PrinterKind.NONE:
        return PrinterStatus.NOT_CONFIGURED
    if settings.kind is PrinterKind.FILE:
        path = settings.path
        if path is None or not path.parent.is_dir() or (path.exists() and path.is_dir()):
            return PrinterStatus.OFFLINE
        return PrinterStatus.READY
    errors = _device_errors()
    device = _device(settings)
    try:
        device.open()
        if not device.is_online():
            return PrinterStatus.OFFLINE
        return _PAPER.get(device.paper_status(), PrinterStatus.OFFLINE)
    except errors:
        return PrinterStatus.OFFLINE
    finally:
        with contextlib.suppress(*errors):
            device.close()


def print_receipt(settings: PrinterSettings, receipt: Receipt) -> None:
    """Print `receipt` on the configured printer; PrinterError if it cannot or stops midway."""
    print_text(settings, render_text(receipt), "receipt")


def print_text(settings: PrinterSettings, text: str, what: str) -> None:
    """Print ready-made lines (`what` names them in the messages: "Z report"); PrinterError
    if the printer cannot take them or stops midway."""
    if settings.kind is PrinterKind.NONE:
        raise PrinterError("no receipt printer is set up (printer.kind in the settings)")
    errors = _device_errors()
    device = _device(settings)
    where = _where(settings)
    try:
        device.open()
    except errors as error:
        raise PrinterError(
            f"{where} is not reachable ({_reason(error)}); nothing printed, print it again "
            "when the printer is back"
        ) from None
    try:
        draw_text(device, text)
    except errors as error:
        raise PrinterError(
            f"{where} stopped mid-print ({_reason(error)}); the {what} is kept, print it "
            "again when the printer is back"
        ) from None
    finally:
        with contextlib.suppress(*errors):
            device.close()


def _reason(error: BaseException) -> str:
    """One line naming what went wrong: the system's reason where there is one (the library
    wraps it in a multi-line message naming the path again)."""
    from usb.core import NoBackendError

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, NoBackendError):
            return "no USB library on this machine: install libusb-1.0"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    first = str(error).strip().splitlines()
    return first[0].rstrip(":") if first else type(error).__name__
