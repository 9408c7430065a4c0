"""The messages screens are told things by, each defined once (past tense, per STYLE).

The payment engine and the connection source call plain listeners; the app turns each call into
`PaymentChanged` or `ConnectionChanged` (listener -> post_message -> handler), so every state
change is handled on the app's message loop, in order, by the screen that cares. A screen's
service calls (`ServiceCalls.call_service`) answer with `ServiceAnswered` or `ServiceRefused` in
the same way: the worker calls the service, the handler changes the screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from textual.message import Message

from smartduka_tui.connectivity import ConnectionState

if TYPE_CHECKING:
    from smartduka_tui.payments.api import PaymentView

T = TypeVar("T")

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


class ServiceAnswered(Message, Generic[T], bubble=False):
    """A screen's service call `name` (its `ticket`-th) returned `result`."""

    def __init__(self, name: str, ticket: int, result: T) -> None:
        super().__init__()
        self.name = name
        self.ticket = ticket
        self.result = result


class ServiceRefused(Message, bubble=False):
    """A screen's service call `name` (its `ticket`-th) said no with `error`, one of the
    refusals it expects, or failed unexpectedly (`error` None: already reported in plain words).
    Either way nothing was changed."""

    def __init__(self, name: str, ticket: int, error: Exception | None) -> None:
        super().__init__()
        self.name = name
        self.ticket = ticket
        self.error = error
