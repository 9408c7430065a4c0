"""A banner under the status bar while Daraja or the relay is unreachable, saying which and what
that means for the cashier."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

from smartduka_tui.connectivity import ConnectionState, Reachability

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp

DARAJA_DOWN = (
    "M-Pesa (Daraja) is unreachable: new M-Pesa payments are paused. "
    "Payments already sent may still complete; they are checked when M-Pesa is back."
)
DARAJA_NOT_ANSWERING = (
    "M-Pesa (Daraja) is not answering: new M-Pesa payments are paused. "
    "Payments already sent are checked when it answers again."
)
# No promise that payments complete: the customer may still decline, and without callbacks
# each outcome waits for the till to ask M-Pesa.
RELAY_DOWN = (
    "The callback relay is unreachable: outcomes are found by asking M-Pesa directly "
    "instead, so confirmations come more slowly."
)
RELAY_NOT_ANSWERING = (
    "The callback relay is not answering: outcomes are found by asking M-Pesa directly "
    "instead, so confirmations come more slowly."
)


def banner_text(state: ConnectionState) -> str:
    """What the banner says for `state` (empty when everything is reachable)."""
    parts = []
    if state.daraja is Reachability.NOT_ANSWERING:
        parts.append(DARAJA_NOT_ANSWERING)
    elif state.daraja_down:
        parts.append(DARAJA_DOWN)
    if state.relay is Reachability.NOT_ANSWERING:
        parts.append(RELAY_NOT_ANSWERING)
    elif state.relay_down:
        parts.append(RELAY_DOWN)
    return "\n".join(parts)


class OfflineBanner(Static):
    """Told of each change by the app (see StatusBar for why it does not watch)."""

    DEFAULT_CSS = """
    OfflineBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error-muted;
        color: $text;
        text-style: bold;
    }
    OfflineBanner.-offline { display: block; }
    """

    def on_mount(self) -> None:
        self.show(cast("SmartDukaApp", self.app).connection)

    def show(self, state: ConnectionState) -> None:
        text = banner_text(state)
        self.update(text)
        self.set_class(bool(text), "-offline")
