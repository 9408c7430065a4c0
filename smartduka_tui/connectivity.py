"""The till's connection state: can it reach its relay, can it reach Daraja.

`ConnectivityMonitor` is the `ConnectionSource` the cashier app shows (`smartduka_tui.ui.
connection`): a current value and listeners told of each change. Who feeds it:

- the relay client, from its feed requests (relay reachable or not);
- `ObservedGateway`, from the results of the engine's real Daraja calls (a push answered,
  refused by Daraja, or not delivered);
- `DarajaProbe`, a light check when no real call said anything lately: a TCP connect to the
  Daraja host for a shop with its own credentials, or the relay broker's own view for a shop on
  the platform's paybill. Never an OAuth token minted to find out: tokens are rate-limited, a
  new one may revoke the old, and minting proves more than reachability needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from smartduka_tui.clock import Clock
from smartduka_tui.payments.gateway import (
    DarajaGateway,
    NotReady,
    PushAccepted,
    PushOrder,
    PushRejected,
    QueryAnswer,
    QueryKind,
    Unreachable,
)
from smartduka_tui.ui.connection import (
    ConnectionBoard,
    ConnectionListener,
    ConnectionState,
    Reachability,
)

log = logging.getLogger(__name__)

TCP_PROBE_TIMEOUT_S = 3.0


class ConnectivityMonitor:
    """A `ConnectionSource` fed by the relay client, real Daraja calls and the probe."""

    def __init__(self, clock: Clock, *, relay_used: bool = True) -> None:
        self._clock = clock
        self._board = ConnectionBoard(
            ConnectionState(
                daraja=Reachability.UNKNOWN,
                relay=Reachability.UNKNOWN if relay_used else Reachability.NOT_USED,
            )
        )
        self._daraja_seen_at: float | None = None

    def __repr__(self) -> str:
        state = self._board.current()
        return f"ConnectivityMonitor(daraja={state.daraja.value}, relay={state.relay.value})"

    def current(self) -> ConnectionState:
        return self._board.current()

    def subscribe(self, listener: ConnectionListener) -> Callable[[], None]:
        def guarded(state: ConnectionState) -> None:
            try:
                listener(state)
            except Exception:
                log.exception("a connection listener failed")

        return self._board.subscribe(guarded)

    def relay_reachable(self, reachable: bool) -> None:
        if self._board.current().relay is Reachability.NOT_USED:
            return
        self._board.set(relay=Reachability.REACHABLE if reachable else Reachability.UNREACHABLE)

    def daraja_reachable(self, reachable: bool) -> None:
        self._daraja_seen_at = self._clock.monotonic()
        self._board.set(daraja=Reachability.REACHABLE if reachable else Reachability.UNREACHABLE)

    def daraja_seen_within(self, seconds: float) -> bool:
        """True when a real call or a probe said something about Daraja this recently."""
        seen = self._daraja_seen_at
        return seen is not None and self._clock.monotonic() - seen < seconds


class ObservedGateway:
    """A `DarajaGateway` that reports what each real call showed about reaching Daraja.

    An answer from Daraja (accepted, or a refusal carrying its error code) means reachable; a
    push that could not be sent means unreachable. A push whose outcome is unknown, or a query
    with no answer, proves nothing either way (a 5xx page, throttling and a timeout look the
    same from here), so the probe decides.
    """

    def __init__(self, inner: DarajaGateway, monitor: ConnectivityMonitor) -> None:
        self.inner = inner
        self._monitor = monitor

    def __repr__(self) -> str:
        return f"ObservedGateway({self.inner!r})"

    async def prepare(self) -> None:
        try:
            await self.inner.prepare()
        except Unreachable:
            self._monitor.daraja_reachable(False)
            raise
        except NotReady:
            raise
        self._monitor.daraja_reachable(True)

    async def push(self, order: PushOrder) -> PushAccepted:
        try:
            accepted = await self.inner.push(order)
        except PushRejected as rejected:
            self._monitor.daraja_reachable(rejected.code != "connection_failed")
            raise
        self._monitor.daraja_reachable(True)
        return accepted

    async def query(self, checkout_request_id: str) -> QueryAnswer:
        answer = await self.inner.query(checkout_request_id)
        if answer.kind is not QueryKind.NO_ANSWER:
            self._monitor.daraja_reachable(True)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def tcp_reachable(base_url: str, timeout_s: float = TCP_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host and port opens (no request is sent)."""
    parts = urlsplit(base_url)
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class DarajaProbe:
    """Checks Daraja every `every_s` (every `when_down_s` while it looks down), unless a real
    call has just said how it is. `check` returns True, False, or None for "cannot tell"."""

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
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="smartduka-daraja-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def probe_once(self) -> bool | None:
        found = await self._check()
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
