"""The sale's Dynamic QR for the customer to scan, drawn in half blocks (fits 80x24).

The payment arrives as a direct (C2B) payment: the checkout's panel shows it and F6 attaches
it, as for a customer who typed the till number. Esc goes back to the checkout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from smartduka_tui.ui.format import shillings

if TYPE_CHECKING:
    from smartduka_tui.payments.c2b import SaleQr


class QrScreen(ModalScreen[None]):
    CSS_PATH = "qr.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "dismiss", "Back to the sale", id="qr.close"),
    ]

    def __init__(self, qr: SaleQr) -> None:
        super().__init__()
        self.qr = qr

    def compose(self) -> ComposeResult:
        with Vertical(id="qr-body"):
            with Center():
                yield Static("\n".join(self.qr.lines), id="qr-code")
            yield Static(
                f"Scan to pay {shillings(self.qr.amount)} for sale {self.qr.sale_ref}. "
                "Esc: back; the payment shows on the checkout (F6 attaches it).",
                id="qr-caption",
            )
