"""What the cashier app is given: the payment service, the clock, the connection source, and who
this till is. `make_app(settings, services)` takes one `AppServices`; the console script, the
demo and every test build it the same way, so the app never reaches for anything global.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from smartduka_tui.connectivity import ConnectionBoard, ConnectionSource

if TYPE_CHECKING:
    from smartduka_tui.clock import Clock
    from smartduka_tui.manager import ManagerService
    from smartduka_tui.payments.api import PaymentService
    from smartduka_tui.payments.c2b import C2BDesk
    from smartduka_tui.payments.statement import ReceiptChecks
    from smartduka_tui.receipts.desk import ReceiptDesk


@dataclass(frozen=True, slots=True)
class TillIdentity:
    """Shown in the status bar. Ids, never secrets."""

    shop_id: str
    till_id: str
    shop_name: str | None = None
    account_prefix: str = ""
    """The shop's AccountReference prefix: the checkout judges the sale reference's length
    against what it leaves of M-Pesa's 12 characters as the cashier types."""

    @property
    def shop_label(self) -> str:
        return self.shop_name or self.shop_id


@dataclass(frozen=True, slots=True)
class HelpSection:
    """An extra block for the F1 help: a title and (key, meaning) rows.

    The demo adds the simulator's magic phone numbers here; manager tools may add their own.
    """

    title: str
    rows: tuple[tuple[str, str], ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class UiOptions:
    """Presentation switches. Tests and the screenshot script turn blinking off so that every
    frame of a given state is the same."""

    cursor_blink: bool = True
    tick_s: float = 1.0
    """How often (by the injectable clock) countdowns redraw."""


@dataclass(slots=True)
class AppServices:
    """Everything the app talks to."""

    payments: PaymentService
    clock: Clock
    identity: TillIdentity
    connection: ConnectionSource = field(default_factory=ConnectionBoard)
    help_sections: tuple[HelpSection, ...] = ()
    log_path: Path | None = None
    """Where unexpected errors are written; named in the plain message the cashier sees."""
    manager_tools: Callable[[], ManagerService] | None = None
    """Builds the manager tools behind the PIN (`ManagerService.for_engine(engine)`), the first
    time a manager screen needs them: their modules stay unloaded until then, and the app
    starts faster. Without it the manager screens are not offered."""
    receipt_checks: ReceiptChecks | None = None
    """Receipt codes the customer shows, checked with M-Pesa (F5 on the checkout and failure
    screens); without it those keys are not offered."""
    c2b: C2BDesk | None = None
    """Direct payments (C2B) for the checkout's panel; None without a relay to claim them at."""
    receipts: ReceiptDesk | None = None
    """Receipts and the printer; None leaves them out (no print keys, no printer status)."""
    _manager: ManagerService | None = field(default=None, init=False, repr=False)

    @property
    def has_manager(self) -> bool:
        return self.manager_tools is not None

    @property
    def manager(self) -> ManagerService | None:
        """The manager tools, built on first use (None without `manager_tools`)."""
        if self._manager is None and self.manager_tools is not None:
            self._manager = self.manager_tools()
        return self._manager
