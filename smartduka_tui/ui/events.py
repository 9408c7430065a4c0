"""The messages screens are told things by, each defined once (past tense, per STYLE).

The payment engine and the connection source call plain listeners; the app turns each call into
`PaymentChanged` or `ConnectionChanged` (listener -> post_message -> handler), so every state
change is handled on the app's message loop, in order, by the screen that cares. A screen's own
workers answer with `Refreshed`, `Refused` or `Answered` in the same way: the worker calls the
service, the handler changes the screen.
"""

from __future__ import annotations

from collections.abc import Callable
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


class PromptSent(Message, bubble=False):
    """The service stored an attempt and sent (or is sending) its prompt: a first prompt from
    the phone screen, or a retry from the failure screen."""

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view


class Refreshed(Message, bubble=False):
    """A screen's worker read a fresh view of its attempt from the service (check now, a
    periodic refresh, the result of a report)."""

    def __init__(self, view: PaymentView) -> None:
        super().__init__()
        self.view = view


class Refused(Message, bubble=False):
    """A screen's service call said no, or failed: `text` says so in plain words, and nothing
    was changed."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class Answered(Message, bubble=False):
    """A manager-service call made by a worker has finished; `apply` updates the screen (on the
    message loop, where screen state is owned)."""

    def __init__(self, apply: Callable[[], None]) -> None:
        super().__init__()
        self.apply = apply
