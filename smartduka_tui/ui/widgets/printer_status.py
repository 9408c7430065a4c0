"""The receipt printer's state in words: the status bar's label and the success screen's line."""

from __future__ import annotations

from textual.widgets import Label

from smartduka_tui.printing import PrinterStatus

_BAR: dict[PrinterStatus, tuple[str, str]] = {
    PrinterStatus.READY: ("", "-unused"),
    PrinterStatus.PAPER_LOW: ("◐ Paper LOW", "-silent"),
    PrinterStatus.OUT_OF_PAPER: ("✖ NO PAPER", "-down"),
    PrinterStatus.OFFLINE: ("✖ Printer OFFLINE", "-down"),
    PrinterStatus.NOT_CONFIGURED: ("○ No printer", "-unknown"),
}

_WHY_NOT: dict[PrinterStatus, str] = {
    PrinterStatus.OUT_OF_PAPER: "the printer is out of paper",
    PrinterStatus.NOT_CONFIGURED: "no receipt printer is set up (printer.kind in the settings)",
}


def why_not_printing(status: PrinterStatus) -> str | None:
    """Why a print is not even tried, or None. An offline printer is tried all the same (it may
    be back since it was last asked, and the attempt's error says exactly what is wrong); one
    out of paper would take the bytes and print nothing."""
    return _WHY_NOT.get(status)


class PrinterStatusLabel(Label):
    """`✖ Printer OFFLINE`, `✖ NO PAPER`, `○ No printer`...: styled like the connections beside
    it (the status bar's CSS classes). A ready printer says nothing: 80 columns have no room for
    good news beside the till, both connections and the awaiting count."""

    def show(self, status: PrinterStatus) -> None:
        text, css = _BAR[status]
        self.update(text)
        self.set_classes(css)
