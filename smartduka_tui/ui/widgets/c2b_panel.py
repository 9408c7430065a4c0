"""The checkout's direct-payments panel: customers who paid the till from their phone.

Two lines at most, so the checkout still fits 80x24: the newest unattached payment (the one F6
would attach, marked when its amount and time fit the sale alone) and how many more wait. It
re-reads the store as soon as the desk says a payment arrived (the feed stored it), and on
every tick of the app's clock (the suggestion's time window moves on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import work
from textual.message import Message
from textual.widgets import Static

from smartduka_tui.mpesa.kenya_time import kenya_clock
from smartduka_tui.ui.format import shillings

if TYPE_CHECKING:
    # Loaded with the till, after the checkout's first paint (the panel is mounted then).
    from smartduka_tui.payments.c2b import C2BDesk, C2BRecord


def payment_line(record: C2BRecord) -> str:
    """Amount, Kenya time, the phone as M-Pesa masked it, first name and TransID."""
    name = record.first_name or "-"
    return (
        f"{shillings(record.amount)}  {kenya_clock(record.paid_at)}  {record.payer}  "
        f"{name[:10]}  {record.trans_id}"
    )


class C2BPanel(Static):
    DEFAULT_CSS = """
    C2BPanel {
        height: auto;
        max-height: 2;
        color: $foreground-muted;
    }
    C2BPanel.-match { color: $success; text-style: bold; }
    """

    class Reloaded(Message):
        """The panel read the store again (the suggestion may have changed)."""

    class Arrived(Message):
        """The desk says a direct payment was stored: read the store again."""

    def __init__(self, desk: C2BDesk) -> None:
        super().__init__("", id="c2b-panel")
        self.desk = desk
        self.waiting: list[C2BRecord] = []
        self.suggested: C2BRecord | None = None
        self.sale_amount: int | None = None
        self._arrival_posted = False
        self._unsubscribe: Callable[[], None] | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "now", self._clock_moved, init=False)
        self._unsubscribe = self.desk.on_arrival(self._arrived)
        self.reload()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _arrived(self) -> None:
        # Called by the feed, outside the message loop: post once per burst, never reload here.
        if not self._arrival_posted:
            self._arrival_posted = True
            self.post_message(self.Arrived())

    def on_c2bpanel_arrived(self, message: C2BPanel.Arrived) -> None:
        message.stop()
        self._arrival_posted = False
        self.reload()

    def _clock_moved(self, _now: object) -> None:
        self.reload()

    def for_sale(self, amount: int | None) -> None:
        """The sale's total changed: look again for the one payment that fits it."""
        if amount != self.sale_amount:
            self.sale_amount = amount
            self.reload()

    @work(group="c2b-panel", exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        waiting = await self.desk.unattached(limit=20)
        suggested = None
        if self.sale_amount is not None:
            suggested = await self.desk.suggest(self.sale_amount)
        self.waiting, self.suggested = waiting, suggested
        self._show()
        self.post_message(self.Reloaded())

    def _show(self) -> None:
        if not self.waiting:
            self.update("Direct M-Pesa payments: none waiting.")
            self.set_class(False, "-match")
            return
        first = self.suggested or self.waiting[0]
        lead = "F6 attaches" if self.suggested else "Paid directly"
        lines = [f"{lead}: {payment_line(first)}"]
        if len(self.waiting) > 1:
            lines.append(f"{len(self.waiting) - 1} more direct payment(s) waiting.")
        self.update("\n".join(lines))
        self.set_class(self.suggested is not None, "-match")
