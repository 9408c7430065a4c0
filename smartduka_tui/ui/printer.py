"""The app's side of the receipt printer: its status for every screen, and print jobs.

Both run as workers that await the receipt desk, which does the device I/O on a thread: a slow,
stuck or vanished printer never holds up the sale. The screen that asked for a print is told
the outcome through its callback; every screen's status bar follows the printer's status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smartduka_tui.printing import PrinterError, PrinterStatus
from smartduka_tui.receipts import Receipt, ReceiptError

if TYPE_CHECKING:
    from smartduka_tui.receipts.desk import ReceiptDesk
    from smartduka_tui.ui.app import SmartDukaApp

STATUS_EVERY_S = 30.0
"""How often (by the till's clock) the printer is asked how it is between prints."""


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    """What became of one print: the receipt printed, or why not (it can be printed again)."""

    sale_ref: str
    copy: bool
    printed: Receipt | None
    error: str | None = None


class PrinterWatch:
    def __init__(self, app: SmartDukaApp, desk: ReceiptDesk) -> None:
        self._app = app
        self.desk = desk
        self.status = PrinterStatus.NOT_CONFIGURED if not desk.configured else PrinterStatus.READY
        """The last known status (a configured printer counts as ready until asked)."""
        self.printed: set[str] = set()
        """Sales whose receipt printed since the app started: another print is a COPY."""
        self.offered: set[str] = set()
        """Sales the success screen has already printed by itself (or tried to): reopening
        one from F2 does not print it again."""

    def start(self) -> None:
        if self.desk.configured:
            self._app.run_worker(
                self._poll(), group="printer-status", exclusive=True, exit_on_error=False
            )

    async def _poll(self) -> None:
        clock = self._app.services.clock
        while True:
            await self.refresh()
            await clock.sleep(STATUS_EVERY_S)

    async def refresh(self) -> None:
        try:
            status = await self._app.call_service(self.desk.status())
        except Exception as error:  # a status query must never stop the till
            self._app.report_unexpected(error, "asking the printer how it is")
            return
        self._show(status)

    def print(
        self, sale_ref: str, *, copy: bool, via: str, done: Callable[[PrintOutcome], None]
    ) -> None:
        """Print the sale's receipt on a worker; `done` hears how it went."""
        self._app.run_worker(
            self._print(sale_ref, copy, via, done), group="print", exit_on_error=False
        )

    async def _print(
        self, sale_ref: str, copy: bool, via: str, done: Callable[[PrintOutcome], None]
    ) -> None:
        try:
            printed = await self._app.call_service(self.desk.print(sale_ref, copy=copy, via=via))
        except (PrinterError, ReceiptError) as error:
            done(PrintOutcome(sale_ref, copy, None, str(error)))
            await self.refresh()
            return
        except Exception as error:
            self._app.report_unexpected(error, "printing the receipt")
            done(PrintOutcome(sale_ref, copy, None, "the receipt did not print"))
            return
        self.printed.add(sale_ref)
        done(PrintOutcome(sale_ref, copy, printed))
        if not self.status.can_print:
            await self.refresh()

    def _show(self, status: PrinterStatus) -> None:
        if status == self.status:
            return
        self.status = status
        self._app.show_printer(status)
