"""The till's connection state: can it reach its relay, can it reach Daraja.

`ConnectionState` is what the app shows; it takes a `ConnectionSource` as a service and turns
each change into a message, so the banner appears as soon as the source knows.
`ConnectionBoard` is the plain holder that anything (the demo, a headless run without a relay,
tests) can set. `ConnectivityMonitor` is the board of a running till, set by what observes the
connections:

- the relay client, from its feed requests (relay reachable or not);
- `ObservedGateway`, from the results of the engine's real Daraja calls (a push answered,
  refused by Daraja, or not delivered);
- `DarajaProbe`, a light check when no real call said anything lately: a bare `HEAD /` to the
  Daraja host for a shop with its own credentials (any HTTP answer will do), or the relay
  broker's own view for a shop on the platform's paybill. Never an OAuth token minted to find
  out: tokens are rate-limited, a new one may revoke the old, and minting proves more than
  reachability needs.

A hung Daraja (its process stopped, not dead) still completes TCP handshakes from the kernel's
backlog, so a connect proves nothing: what counts is an answer. A real call or a probe with no
answer after `ANSWER_WITHIN_S` on the injected clock shows Daraja as not answering (amber) at
once, long before the HTTP client's own 20-second read timeout, and pushes are refused while it
is so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit

from smartduka_tui.background import BackgroundTask

if TYPE_CHECKING:
    # The cashier app imports this module before its first paint; the gateway (and through it
    # the Daraja client, httpx and pydantic) loads behind the painted checkout (issue #18).
    from smartduka_tui.clock import Clock
    from smartduka_tui.payments.gateway import (
        DarajaGateway,
        PushAccepted,
        PushOrder,
        QueryAnswer,
    )

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 8.0
"""The probe's own bound on real time; `ANSWER_WITHIN_S` on the clock shows the hang first."""
ANSWER_WITHIN_S = 5.0
"""Daraja answers a push, a query or a probe within a second or two; five seconds of silence
means it is hung, and the light turns amber (well inside the 10 s the counter may wait)."""

T = TypeVar("T")


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
            self._state, daraja=daraja or self._state.daraja, relay=relay or self._state.relay
        )
        if new != self._state:
            self._state = new
            for listener in list(self._listeners):
                listener(new)
        return new


class ConnectivityMonitor(ConnectionBoard):
    """A `ConnectionBoard` set by the relay client, real Daraja calls and the probe, whose
    listeners' failures are logged, never raised into the caller that saw the change."""

    def __init__(self, clock: Clock, *, relay_used: bool = True) -> None:
        relay = Reachability.UNKNOWN if relay_used else Reachability.NOT_USED
        super().__init__(ConnectionState(relay=relay))
        self._clock = clock
        self._daraja_seen_at: float | None = None

    def __repr__(self) -> str:
        state = self._state
        return f"ConnectivityMonitor(daraja={state.daraja.value}, relay={state.relay.value})"

    def subscribe(self, listener: ConnectionListener) -> Callable[[], None]:
        def guarded(state: ConnectionState) -> None:
            try:
                listener(state)
            except Exception:
                log.exception("a connection listener failed")

        return super().subscribe(guarded)

    def relay_reachable(self, reachable: bool) -> None:
        if self._state.relay is Reachability.NOT_USED:
            return
        self.set(relay=Reachability.REACHABLE if reachable else Reachability.UNREACHABLE)

    def daraja_reachable(self, reachable: bool) -> None:
        self._daraja_seen_at = self._clock.monotonic()
        self.set(daraja=Reachability.REACHABLE if reachable else Reachability.UNREACHABLE)

    def daraja_not_answering(self) -> None:
        self._daraja_seen_at = self._clock.monotonic()
        self.set(daraja=Reachability.NOT_ANSWERING)

    async def watch_daraja(self, call: Awaitable[T]) -> T:
        """Await a real call to Daraja; if it has not answered within `ANSWER_WITHIN_S` on the
        clock, show Daraja as not answering meanwhile (what the call ends with says the rest)."""
        return await self._watch(call, ANSWER_WITHIN_S, "Daraja", self.daraja_not_answering)

    async def watch_relay(self, call: Awaitable[T], wait_s: float = 0.0) -> T:
        """Await a request to the relay that may long-poll for `wait_s` (0: a quick one, such
        as the heartbeat beside a long-poll); silent `ANSWER_WITHIN_S` longer than that on the
        clock, the relay is shown as not answering."""
        return await self._watch(
            call, wait_s + ANSWER_WITHIN_S, "the relay", self.relay_not_answering
        )

    def relay_not_answering(self) -> None:
        if self._state.relay is not Reachability.NOT_USED:
            self.set(relay=Reachability.NOT_ANSWERING)

    async def _watch(
        self, call: Awaitable[T], within_s: float, who: str, silent: Callable[[], None]
    ) -> T:
        task = asyncio.ensure_future(call)
        alarm = asyncio.ensure_future(self._clock.sleep(within_s))
        try:
            await asyncio.wait({task, alarm}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                log.warning("%s has not answered in %.0f s", who, within_s)
                silent()
            return await task
        finally:
            alarm.cancel()
            task.cancel()

    def daraja_seen_within(self, seconds: float) -> bool:
        """True when a real call or a probe said something about Daraja this recently."""
        seen = self._daraja_seen_at
        return seen is not None and self._clock.monotonic() - seen < seconds


class ObservedGateway:
    """A `DarajaGateway` that reports what each real call showed about reaching Daraja.

    An answer from Daraja (accepted, or a refusal carrying its error code) means reachable; a
    push that could not be sent means unreachable; a call still unanswered after
    `ANSWER_WITHIN_S` means not answering. A push whose outcome is unknown, or a query with no
    answer, proves nothing more (a 5xx page, throttling and a timeout look the same from here),
    so the probe decides.
    """

    def __init__(self, inner: DarajaGateway, monitor: ConnectivityMonitor) -> None:
        self.inner = inner
        self._monitor = monitor

    def __repr__(self) -> str:
        return f"ObservedGateway({self.inner!r})"

    async def prepare(self) -> None:
        from smartduka_tui.payments.gateway import Unreachable

        try:
            await self._monitor.watch_daraja(self.inner.prepare())
        except Unreachable:
            self._monitor.daraja_reachable(False)
            raise
        self._monitor.daraja_reachable(True)

    async def push(self, order: PushOrder) -> PushAccepted:
        from smartduka_tui.payments.gateway import PushRejected

        try:
            accepted = await self._monitor.watch_daraja(self.inner.push(order))
        except PushRejected as rejected:
            self._monitor.daraja_reachable(rejected.code != "connection_failed")
            raise
        self._monitor.daraja_reachable(True)
        return accepted

    async def query(self, checkout_request_id: str) -> QueryAnswer:
        from smartduka_tui.payments.gateway import QueryKind

        answer = await self._monitor.watch_daraja(self.inner.query(checkout_request_id))
        if answer.kind is not QueryKind.NO_ANSWER:
            self._monitor.daraja_reachable(True)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def daraja_answers(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool | None:
    """Whether the URL's host answers a bare `HEAD /` (any status will do; no credentials are
    sent). False when no connection opens; None when one opens but nothing answers in time."""
    parts = urlsplit(base_url)
    host = parts.hostname
    if not host:
        return False
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls or None), timeout_s
        )
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout_s)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return True if status_line.startswith(b"HTTP/") else None


class DarajaProbe:
    """Checks Daraja every `every_s` (every `when_down_s` while it looks down), unless a real
    call has just said how it is. `check` returns True, False, or None for "cannot tell"; a
    check still unanswered after `ANSWER_WITHIN_S` shows Daraja as not answering."""

    def __init__(
        self,
        monitor: ConnectivityMonitor,
        clock: Clock,
        check: Callable[[], Awaitable[bool | None]],
        *,
        every_s: float = 30.0,
        when_down_s: float = 5.0,
    ) -> None:
        self._monitor = monitor
        self._clock = clock
        self._check = check
        self._every_s = every_s
        self._when_down_s = when_down_s
        self._loop = BackgroundTask(self._run, "smartduka-daraja-probe")

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def probe_once(self) -> bool | None:
        found = await self._monitor.watch_daraja(self._check())
        if found is not None:
            self._monitor.daraja_reachable(found)
        return found

    async def _run(self) -> None:
        while True:
            down = self._monitor.current().daraja is not Reachability.REACHABLE
            interval = self._when_down_s if down else self._every_s
            if not self._monitor.daraja_seen_within(interval):
                try:
                    await self.probe_once()
                except Exception:
                    log.exception("the Daraja probe failed; trying again later")
            await self._clock.sleep(interval)
