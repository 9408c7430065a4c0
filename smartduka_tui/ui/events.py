"""Messages the app posts to its screens when something outside the UI changed.

The payment engine and the connection source call plain listeners; the app turns each call into
one of these messages (listener -> post_message -> handler), so every state change is handled on
the app's message loop, in order, by the screen that cares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from smartduka_tui.connectivity import ConnectionState

if TYPE_CHECKING:
    from smartduka_tui.payments.api import PaymentView

# Neither bubbles: the app forwards copies to its screens, and a copy bubbling back up to the
# app would be forwarded again, for ever. (Textual sets `bubble` from the class keyword.)


class PaymentChanged(Message, bubble=False):
    """The engine reported a new view of an attempt (a callback, a query, expiry...)."""

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view


class ConnectionChanged(Message, bubble=False):
    """Daraja or the relay became reachable or unreachable."""

    def __init__(self, state: ConnectionState, previous: ConnectionState) -> None:
        super().__init__()
        self.state = state
        self.previous = previous
