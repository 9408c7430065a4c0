"""The till's connection state as the app shows it: is Daraja reachable, is the relay reachable.

The app takes a `ConnectionSource` as a service. The relay client (the till side of the relay)
implements it from its feed and the results of real Daraja calls; `ConnectionBoard` is the plain
holder that anything else (the demo, a headless run without a relay, tests) can set. The app
subscribes once and turns each change into a message, so the banner appears as soon as the
source knows, well within two seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol


class Reachability(StrEnum):
    """What the till knows about one remote party."""

    UNKNOWN = "unknown"
    """Nothing tried yet: shown as neither good nor bad."""
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"
    NOT_ANSWERING = "not_answering"
    """Connected but silent (a hung process, not a dead one): treated as down, shown amber."""
    NOT_USED = "not_used"
    """This till does not use it (no relay configured): never shown as a problem."""


_DOWN = frozenset({Reachability.UNREACHABLE, Reachability.NOT_ANSWERING})


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One snapshot of both connections."""

    daraja: Reachability = Reachability.UNKNOWN
    relay: Reachability = Reachability.NOT_USED

    @property
    def daraja_down(self) -> bool:
        return self.daraja in _DOWN

    @property
    def relay_down(self) -> bool:
        return self.relay in _DOWN

    @property
    def offline(self) -> bool:
        return self.daraja_down or self.relay_down


ConnectionListener = Callable[[ConnectionState], None]


class ConnectionSource(Protocol):
    """Anything that knows the till's connection state and says when it changes."""

    def current(self) -> ConnectionState:
        """The state now."""
        ...

    def subscribe(self, listener: ConnectionListener) -> Callable[[], None]:
        """Call `listener` with each new state (quickly, never raising); returns unsubscribe."""
        ...


class ConnectionBoard:
    """A `ConnectionSource` whose state is set by whoever observes the connections."""

    def __init__(self, state: ConnectionState | None = None) -> None:
        self._state = state or ConnectionState()
        self._listeners: list[ConnectionListener] = []

    def current(self) -> ConnectionState:
        return self._state

    def subscribe(self, listener: ConnectionListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def set(
        self, *, daraja: Reachability | None = None, relay: Reachability | None = None
    ) -> ConnectionState:
        """Change one or both parts; listeners hear about it only if something changed."""
        new = replace(
            self._state,
            daraja=daraja if daraja is not None else self._state.daraja,
            relay=relay if relay is not None else self._state.relay,
        )
        if new != self._state:
            self._state = new
            for listener in list(self._listeners):
                listener(new)
        return new
