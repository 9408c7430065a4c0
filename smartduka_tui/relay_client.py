"""The till side of the relay: its event feed applied to the payment engine, and the link state.

`RelayClient` long-polls this till's feed (`GET /v1/events?wait=S`, till key from the vault)
and handles the events in order:

- a callback goes to the payment service's `apply_callback`, and is acknowledged only AFTER
  it is applied: delivery is at least once, the effect exactly once (`apply_callback` is
  idempotent, so a re-delivery changes nothing);
- a callback the engine still cannot apply after `apply_tries` tries (its attempt's row will
  not write, the event is unreadable...) is kept as a problem for the manager
  (`unapplied_event`) and acknowledged, so it never holds up the events behind it;
- a security event (a correctly signed callback the relay refused, e.g. from a source address
  not on its allowlist) becomes a problem for the manager (`suspicious_pattern`).

Failed requests are retried with exponential backoff and jitter on the injectable clock. The
relay's reachability goes to a `ConnectivityMonitor`; when the relay comes back after being
unreachable, the engine is told (`on_reconnected`), so the reconciler asks M-Pesa about what
may have been missed.

`smartduka_tui.till.open_till` starts the client, the receipt publisher and the Daraja probe
beside a running engine (`TillLink`); `wait_for_outcome` is how `smartduka pay` waits: on the
callback while the relay is reachable, by STK query when it is not (or the callback is late).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Final

import httpx
from pydantic import ValidationError

from smartduka_tui.background import BackgroundTask, woken
from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.connectivity import (
    ConnectivityMonitor,
    DarajaProbe,
    Reachability,
    daraja_answers,
)
from smartduka_tui.model import AttemptState, ProblemKind
from smartduka_tui.mpesa.feed_event import FeedEvent
from smartduka_tui.mpesa.http_pool import RELAY_LIMITS, send_idempotent
from smartduka_tui.mpesa.statement import StatementParseError
from smartduka_tui.payments import c2b
from smartduka_tui.payments.api import (
    AttemptId,
    CallbackEvent,
    CallbackOutcome,
    PaymentService,
    PaymentView,
)
from smartduka_tui.payments.broker_gateway import BrokerGateway
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.payments.shop_receipts import (
    ReceiptHolder,
    ShopReceipts,
    ShopReceiptsUnavailable,
)
from smartduka_tui.payments.statement import ResultEvent
from smartduka_tui.store.records import ChainCheckpoint, TillCredentials
from smartduka_tui.store.store import Store
from smartduka_tui.tls import client_verify

log = logging.getLogger(__name__)

FEED_PATH: Final = "/v1/events"
CHECKPOINT_PATH: Final = "/v1/audit/checkpoint"
# The pattern of the manager problem recorded when the relay's checkpoint disagrees.
CHAIN_PROBLEM: Final = "audit_chain_checkpoint"
# Problems the client records carry this key, so a re-delivered event is not recorded twice.
EVENT_KEY: Final = "relay_event_id"
_RECENT_PROBLEMS: Final = 200
_REASON_MAX: Final = 300
HEARTBEAT_S: Final = 4.0
"""While a long-poll is open the relay says nothing until it ends, so a relay that hangs
meanwhile would go unseen for the whole wait. Every `HEARTBEAT_S` on the clock a bare `HEAD /`
goes out beside it; one silent for `ANSWER_WITHIN_S` turns the light amber, at most 9 s after
the hang (within the 10 s the Daraja light keeps)."""


class EventOutcome(StrEnum):
    """What the client did with one feed event."""

    APPLIED = "applied"
    """The engine applied it (whatever `apply_callback` decided); acknowledged."""
    PROBLEM = "problem"
    """Could not be applied: kept as a problem for the manager; acknowledged."""
    SECURITY = "security"
    """A refusal at the relay, kept as a problem for the manager; acknowledged."""
    RESULT = "result"
    """A Transaction Status or Reversal result, landed on its request; acknowledged."""
    NOT_ACKED = "not_acked"
    """Neither applied nor recorded (the store failed too): left for re-delivery."""


@dataclass(frozen=True, slots=True)
class HandledEvent:
    """Told to `on_event` listeners after each event (tests and the benchmark use it)."""

    event: FeedEvent
    outcome: EventOutcome
    callback_outcome: CallbackOutcome | None = None


class RelayUnavailable(Exception):
    """A feed request failed; `retry_after` is the relay's own wait (429), if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Unreadable(ValueError):
    """An event the till cannot turn into a callback for the engine."""


ResultSink = Callable[[ResultEvent], Awaitable[bool]]
"""Takes an initiator API result from the feed; True once it is applied (then acknowledged)."""


class RelayClient:
    """Consumes one till's relay feed into its payment service. `start()`, later `close()`."""

    def __init__(
        self,
        service: PaymentService,
        store: Store,
        till: TillCredentials,
        relay_url: str,
        clock: Clock,
        *,
        monitor: ConnectivityMonitor | None = None,
        poll_wait_s: float = 25.0,
        apply_tries: int = 3,
        retry_delay_s: float = 0.2,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout_s: float = 5.0,
        results: ResultSink | None = None,
        listeners: Sequence[Callable[[HandledEvent], None]] = (),
    ) -> None:
        if apply_tries < 1 or poll_wait_s < 0 or backoff_base_s <= 0:
            raise ValueError("apply_tries must be at least 1; waits and backoff positive")
        self.service = service
        self.store = store
        self.shop_id = till.shop_id
        self.till_id = till.till_id
        self.monitor = monitor or ConnectivityMonitor(clock)
        self.poll_wait_s = poll_wait_s
        self.apply_tries = apply_tries
        self.retry_delay_s = retry_delay_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._key = till.till_key
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=poll_wait_s + 15.0, write=10.0, pool=connect_timeout_s
        )
        self._http = _relay_http(
            relay_url,
            timeout,
            transport,
            headers={"Accept": "application/json"},
            limits=RELAY_LIMITS,
        )
        self._listeners: list[Callable[[HandledEvent], None]] = list(listeners)
        self._loop = BackgroundTask(self._run, "smartduka-relay-client")
        self._stopping = False
        self._handling = False
        self._acks: set[asyncio.Task[None]] = set()
        self.failures = 0
        # The last chain head the relay took (or holds); None until the first checkpoint.
        self.checkpointed: ChainCheckpoint | None = None
        self._checkpoints_supported = True
        # Where initiator API results go (payments.statement.StatementService.accept_result);
        # without one they are left for re-delivery.
        self.results = results

    def __repr__(self) -> str:
        return (
            f"RelayClient(shop={self.shop_id!r}, till={self.till_id!r}, "
            f"relay={str(self._http.base_url)!r})"
        )

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Run the feed loop in the background until `close()`."""
        if not self._loop.running:
            self._stopping = False
            self._loop.start()

    async def close(self) -> None:
        """Stop: a long-poll or a backoff in progress is dropped (nothing was applied from
        it); an event being applied is finished and acknowledged first."""
        self._stopping = True
        await self._loop.stop(cancel=not self._handling)
        await self._http.aclose()

    def on_event(self, listener: Callable[[HandledEvent], None]) -> Callable[[], None]:
        """Call `listener` after each event is handled; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def relay_state(self) -> Reachability:
        return self.monitor.current().relay

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while not self._stopping:
            # A long-poll answers only when it ends: (re)connect with a quick read, so the
            # relay is known to be back at once, then wait for events.
            connected = self.relay_state is Reachability.REACHABLE
            try:
                await self.poll_once(self.poll_wait_s if connected else 0.0)
            except RelayUnavailable as error:
                self.failures += 1
                self._went_down(str(error))
                await self._clock.sleep(self.backoff(self.failures, error.retry_after))
            except Exception:
                # A bug must not end the feed for good: log it, back off, try again.
                self.failures += 1
                log.exception("relay feed loop failed")
                await self._clock.sleep(self.backoff(self.failures))

    def backoff(self, failures: int, at_least: float | None = None) -> float:
        """Exponential backoff with "equal jitter": between half and all of the capped step."""
        step = min(self.backoff_max_s, self.backoff_base_s * (2.0 ** max(0, failures - 1)))
        delay = step / 2 + self._rng.uniform(0, step / 2)
        return max(delay, at_least or 0.0)

    def _went_down(self, reason: str) -> None:
        if self.relay_state is not Reachability.UNREACHABLE:
            log.warning("relay unreachable: %s", reason)
        self.monitor.relay_reachable(False)

    async def _came_up(self) -> None:
        was_down = self.monitor.current().relay_down
        self.failures = 0
        self.monitor.relay_reachable(True)
        if was_down:
            log.info("relay reachable again; asking the reconciler to check open payments")
            try:
                await self.service.on_reconnected()
            except Exception:
                log.exception("the reconnect pass could not be started")

    async def poll_once(self, wait: float = 0.0) -> int:
        """One feed request (waiting up to `wait` s for events) and its events handled in
        order; returns how many. Raises RelayUnavailable when the feed cannot be read."""
        events = await self._fetch(wait)
        await self._came_up()
        self._handling = True
        try:
            for event in events:
                if self._stopping:
                    break
                await self._handle(event)
        finally:
            try:
                await self._settle_acks()
            finally:
                self._handling = False
        if events:
            await self.post_checkpoint()
        return len(events)

    # ------------------------------------------------------------------ audit checkpoints

    async def post_checkpoint(self) -> ChainCheckpoint | None:
        """Send the audit chain's head to the relay (after each acknowledged batch), so a log
        later cut short or rewritten on this till shows against it. Returns what the relay
        holds; never raises: a failed checkpoint is retried after the next batch, and a relay
        that disagrees (it holds a later or a different head) becomes a manager problem."""
        if not self._checkpoints_supported:
            return None
        try:
            head = await self.store.audit.head()
        except Exception:
            log.exception("the audit chain's head could not be read for the relay")
            return None
        if head is None or self.checkpointed == head:
            return self.checkpointed
        try:
            response = await self._http.post(
                CHECKPOINT_PATH, json={"seq": head.seq, "head": head.head}, headers=self._auth()
            )
        except httpx.TransportError as error:
            log.warning("audit checkpoint not sent (%s); next batch", type(error).__name__)
            return None
        if response.status_code == 200:
            self.checkpointed = head
            return head
        if response.status_code == 404:
            # A relay without checkpoints (older version): the feed works all the same.
            log.warning("the relay keeps no audit checkpoints; the chain is checked locally only")
            self._checkpoints_supported = False
            return None
        if response.status_code == 409:
            await self._chain_disagrees(head, _json_or_empty(response))
            return None
        log.warning("audit checkpoint answered HTTP %d; next batch", response.status_code)
        return None

    async def _chain_disagrees(self, head: ChainCheckpoint, answer: dict[str, Any]) -> None:
        error = str(answer.get("error", "conflict"))
        stored_seq = answer.get("stored_seq")
        if error == "checkpoint_behind" and isinstance(stored_seq, int):
            why = (
                f"the relay holds a checkpoint of audit entry {stored_seq}, but this till's log "
                f"ends at entry {head.seq}: entries were removed (or an old backup restored)"
            )
            about = stored_seq
        else:
            why = (
                f"the relay holds another head for audit entry {head.seq}: this till's log was "
                "rewritten"
            )
            about = head.seq
        log.error("audit checkpoint refused: %s", why)
        # One problem per relay checkpoint the log disagrees with, however often it is posted.
        detail = {"pattern": CHAIN_PROBLEM, "reason": why, "checkpoint_seq": about, "relay": error}
        try:
            await self._record_once(
                ProblemKind.SUSPICIOUS_PATTERN, detail, ("pattern", "checkpoint_seq", "relay")
            )
        except Exception:
            log.exception("the audit checkpoint problem could not be recorded")

    async def fetch_checkpoint(self) -> ChainCheckpoint | None:
        """The chain head the relay holds for this till (None if it holds none yet).
        ConnectionError when it cannot be read, saying why (for "verify chain")."""
        try:
            response = await self._http.get(CHECKPOINT_PATH, headers=self._auth())
        except httpx.TransportError as error:
            raise ConnectionError(
                f"the relay could not be reached ({type(error).__name__})"
            ) from None
        answer = _json_or_empty(response)
        if response.status_code == 404 and answer.get("error") == "no_checkpoint":
            return None
        if response.status_code != 200:
            raise ConnectionError(f"the relay answered HTTP {response.status_code}")
        try:
            checkpoint = ChainCheckpoint(int(answer["seq"]), str(answer["head"]))
        except (KeyError, TypeError, ValueError):
            checkpoint = None
        if checkpoint is None or checkpoint.seq < 1 or len(checkpoint.head) != 64:
            raise ConnectionError("the relay's checkpoint is not the documented JSON")
        return checkpoint

    async def _settle_acks(self) -> None:
        """Wait for the batch's acknowledgements; RelayUnavailable if one could not be sent
        (its event comes back after the relay's visibility timeout, and changes nothing)."""
        tasks, self._acks = self._acks, set()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def drain(self) -> int:
        """Read and handle everything waiting now (no long-poll); returns how many."""
        total = 0
        while (count := await self.poll_once(0.0)) > 0:
            total += count
        return total

    async def _fetch(self, wait: float) -> list[FeedEvent | tuple[int, str]]:
        heartbeat = asyncio.create_task(self._heartbeat()) if wait > 0 else None
        try:
            # Sent again on a closed pooled connection: a read claims, but an event claimed
            # and never delivered only comes back after the visibility timeout.
            response = await self.monitor.watch_relay(
                send_idempotent(
                    lambda extensions: self._http.get(
                        FEED_PATH,
                        params={"wait": f"{wait:g}"},
                        headers=self._auth(),
                        extensions=extensions,
                    ),
                    "relay feed",
                ),
                wait,
            )
        except httpx.TransportError as error:
            raise RelayUnavailable(f"feed request failed ({type(error).__name__})") from None
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        if response.status_code == 429:
            raise RelayUnavailable("feed rate limit", _retry_after(response))
        if response.status_code == 401:
            log.error("the relay refused this till's key: enrol the till again")
            raise RelayUnavailable("the relay refused this till's key", self.backoff_max_s)
        if response.status_code != 200:
            raise RelayUnavailable(f"feed answered HTTP {response.status_code}")
        items = _json_or_empty(response).get("events")
        if not isinstance(items, list):
            raise RelayUnavailable("the feed's answer is not the documented JSON")
        return [_read_event(item) for item in items]

    async def _heartbeat(self) -> None:
        """Beside a long-poll: ask the relay for any answer every `HEARTBEAT_S` (a 404 for
        `HEAD /` will do: no key, no store work); the monitor shows one silent for
        `ANSWER_WITHIN_S` as not answering. A refused one says nothing here: the long-poll
        fails on its own and says so."""
        while True:
            await self._clock.sleep(HEARTBEAT_S)
            with contextlib.suppress(httpx.HTTPError):
                await self.monitor.watch_relay(self._http.head("/"))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.reveal()}"}

    # ------------------------------------------------------------------ one event

    async def _handle(self, item: FeedEvent | tuple[int, str]) -> EventOutcome:
        """Apply (or record) one event, then send its acknowledgement. The acknowledgement
        goes out while the next event is applied (a round trip to the relay's disk need not
        hold up the queue); `poll_once` waits for all of a batch's before it reads again."""
        if isinstance(item, tuple):
            event_id, reason = item
            recorded = await self._problem(
                ProblemKind.UNAPPLIED_EVENT,
                event_id,
                {"reason": reason, "tries": 0},
            )
            return await self._finish(event_id, None, recorded, EventOutcome.PROBLEM)
        event = item
        if event.kind == "security":
            recorded = await self._problem(
                ProblemKind.SUSPICIOUS_PATTERN,
                event.id,
                {
                    "pattern": "callback_refused_at_relay",
                    "reason": event.security.reason if event.security else "unknown",
                    "source": event.security.source if event.security else None,
                    "attempt_ref": event.attempt_ref,
                    "received_at": event.received_at.isoformat(),
                },
            )
            return await self._finish(event.id, event, recorded, EventOutcome.SECURITY)
        if event.kind == "c2b":
            return await self._take_c2b(event)
        if event.kind in ("result", "queue_timeout"):
            return await self._finish(
                event.id, event, await self._land_result(event), EventOutcome.RESULT
            )
        callback_outcome, failure = await self._apply(event)
        if failure is None:
            return await self._finish(event.id, event, True, EventOutcome.APPLIED, callback_outcome)
        recorded = await self._problem(
            ProblemKind.UNAPPLIED_EVENT,
            event.id,
            {
                "reason": failure[:_REASON_MAX],
                "attempt_ref": event.attempt_ref,
                "received_at": event.received_at.isoformat(),
                "tries": self.apply_tries,
            },
        )
        return await self._finish(event.id, event, recorded, EventOutcome.PROBLEM)

    async def _apply(self, event: FeedEvent) -> tuple[CallbackOutcome | None, str | None]:
        """(the engine's outcome, None), or (None, why it could not be applied)."""
        try:
            callback = self._callback_event(event)
        except _Unreadable as error:
            return None, str(error)
        failure = ""
        for attempt in range(1, self.apply_tries + 1):
            try:
                return (await self.service.apply_callback(callback)).outcome, None
            except Exception as error:
                failure = f"{type(error).__name__}: {error}"
                log.warning(
                    "relay event %d could not be applied (try %d of %d): %s",
                    event.id,
                    attempt,
                    self.apply_tries,
                    type(error).__name__,
                )
                if attempt < self.apply_tries:
                    await self._clock.sleep(self.retry_delay_s * attempt)
        return None, failure

    async def _land_result(self, event: FeedEvent) -> bool:
        """Hand a result to its sink; False (not acknowledged) when it could not be landed."""
        body = event.body.encode("utf-8")
        if self.results is None or hashlib.sha256(body).hexdigest() != event.body_sha256:
            return False
        try:
            return await self.results(
                ResultEvent(
                    shop_id=event.shop_id,
                    till_id=event.till_id,
                    request_ref=event.attempt_ref,
                    timed_out=event.kind == "queue_timeout",
                    body=body,
                )
            )
        except Exception:
            log.exception("relay event %d: the result could not be landed", event.id)
            return False

    def _callback_event(self, event: FeedEvent) -> CallbackEvent:
        body = event.body.encode("utf-8")
        if hashlib.sha256(body).hexdigest() != event.body_sha256:
            raise _Unreadable("the event's body does not match its SHA-256")
        return CallbackEvent(
            attempt_ref=event.attempt_ref,
            shop_id=event.shop_id,
            till_id=event.till_id,
            body=body,
            received_at=event.received_at,
            event_id=str(event.id),
        )

    async def _take_c2b(self, event: FeedEvent) -> EventOutcome:
        """A direct payment: kept for the checkout; one the till cannot read, or a second
        body for a receipt already kept, goes to the manager instead."""
        reason: str | None = None
        try:
            record, new = await c2b.receive(self.store, self.shop_id, event.body.encode("utf-8"))
        except StatementParseError as error:
            reason = f"C2B confirmation not readable: {error}"
        except Exception as error:
            log.warning("relay event %d: C2B payment not kept (%s)", event.id, type(error).__name__)
            return await self._finish(event.id, event, False, EventOutcome.NOT_ACKED)
        else:
            if new or record.body_sha256 == event.body_sha256:
                return await self._finish(event.id, event, True, EventOutcome.APPLIED)
            reason = f"a different confirmation body for C2B receipt {record.trans_id}"
        recorded = await self._problem(
            ProblemKind.UNAPPLIED_EVENT,
            event.id,
            {"reason": reason, "attempt_ref": event.attempt_ref, "tries": 1},
        )
        return await self._finish(event.id, event, recorded, EventOutcome.PROBLEM)

    async def _problem(self, kind: ProblemKind, event_id: int, detail: dict[str, Any]) -> bool:
        """Record a problem for the manager, once per relay event. False if the store failed."""
        try:
            if not await self._record_once(kind, {EVENT_KEY: event_id, **detail}, (EVENT_KEY,)):
                return True
        except Exception:
            log.exception("relay event %d: the problem could not be recorded", event_id)
            return False
        log.warning("relay event %d kept as a problem for the manager (%s)", event_id, kind.value)
        return True

    async def _record_once(
        self, kind: ProblemKind, detail: dict[str, Any], same: Sequence[str]
    ) -> bool:
        """Record a problem of `kind` unless a recent one (resolved too) has the same values
        for the keys `same` of `detail`; True if recorded. The store's errors propagate."""
        recent = await self.store.problems.list(
            self.shop_id, include_resolved=True, limit=_RECENT_PROBLEMS
        )
        if any(p.kind is kind and all(p.detail.get(k) == detail[k] for k in same) for p in recent):
            return False
        async with self.store.write() as tx:
            await self.store.problems.record(tx, self.shop_id, kind, detail, till_id=self.till_id)
        return True

    async def _finish(
        self,
        event_id: int,
        event: FeedEvent | None,
        done: bool,
        outcome: EventOutcome,
        callback_outcome: CallbackOutcome | None = None,
    ) -> EventOutcome:
        if not done:
            outcome = EventOutcome.NOT_ACKED
        else:
            self._acks.add(asyncio.create_task(self._ack(event_id)))
        if event is not None:
            handled = HandledEvent(event, outcome, callback_outcome)
            for listener in list(self._listeners):
                try:
                    listener(handled)
                except Exception:
                    log.exception("a relay event listener failed")
        return outcome

    async def _ack(self, event_id: int) -> None:
        try:
            # Acknowledging twice is harmless (the relay answers `already`).
            response = await send_idempotent(
                lambda extensions: self._http.post(
                    f"{FEED_PATH}/{event_id}/ack", headers=self._auth(), extensions=extensions
                ),
                "acknowledgement",
            )
        except httpx.TransportError as error:
            raise RelayUnavailable(f"acknowledgement failed ({type(error).__name__})") from None
        if response.status_code == 404:
            log.warning("relay event %d: the relay no longer knows it (not acknowledged)", event_id)
        elif response.status_code == 429:
            raise RelayUnavailable("acknowledgement rate limit", _retry_after(response))
        elif response.status_code != 200:
            raise RelayUnavailable(f"acknowledgement answered HTTP {response.status_code}")


def _relay_http(
    relay_url: str,
    timeout: httpx.Timeout | float,
    transport: httpx.AsyncBaseTransport | None,
    **options: Any,
) -> httpx.AsyncClient:
    """A client of the relay: ambient proxy variables ignored (they must not redirect a till's
    traffic), the CAs `tls.client_verify` names, and no redirects followed."""
    return httpx.AsyncClient(
        base_url=relay_url.rstrip("/"),
        timeout=timeout,
        transport=transport,
        trust_env=False,
        verify=client_verify(),
        follow_redirects=False,
        **options,
    )


async def _signed_post(
    http: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    till_key: str,
    unavailable: Callable[[str], Exception],
) -> httpx.Response:
    """POST `body` signed with the till's key; `unavailable(why)` when the relay is unreachable."""
    try:
        return await http.post(path, json=body, headers={"Authorization": f"Bearer {till_key}"})
    except httpx.TransportError as error:
        raise unavailable(f"the relay is unreachable ({type(error).__name__})") from None


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _read_event(item: object) -> FeedEvent | tuple[int, str]:
    """The event, or (its id, why it is unreadable) when it has an id but not our shape."""
    try:
        return FeedEvent.model_validate(item)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        event_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(event_id, int) and not isinstance(event_id, bool) and event_id >= 0:
            return event_id, f"unreadable feed event: {where}: {first['msg']}"
        raise RelayUnavailable(f"the feed sent an event without an id ({where})") from None


def c2b_claimer(
    relay_url: str, till_key: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> c2b.Claim:
    """Ask the relay to attach a C2B payment to a sale (`POST /v1/c2b/{TransID}/claim`)."""

    async def claim(trans_id: str, sale_ref: str) -> c2b.ClaimAnswer:
        async with _relay_http(relay_url, 10.0, transport) as http:
            path, sale = f"/v1/c2b/{trans_id}/claim", {"sale_ref": sale_ref}
            response = await _signed_post(http, path, sale, till_key, c2b.ClaimUnavailable)
        body = _json_or_empty(response)
        if response.status_code in (200, 409):
            try:
                return c2b.ClaimAnswer(
                    granted=response.status_code == 200,
                    sale_ref=str(body["sale_ref"]),
                    till_id=str(body["till_id"]),
                    message=str(body.get("error", "")),
                )
            except KeyError:
                pass
        message = str(body.get("error") or f"HTTP {response.status_code}")
        raise c2b.ClaimUnavailable(f"the relay did not grant it: {message}")

    return claim


# ---------------------------------------------------------------------- the shop's receipts

RECEIPTS_PATH: Final = "/v1/receipts"
RECEIPTS_KNOWN_PATH: Final = "/v1/receipts/known"
RECEIPTS_RELEASE_PATH: Final = "/v1/receipts/release"
# The relay takes at most 500 receipts a request (callback_relay/receipts.py).
RECEIPTS_BATCH: Final = 500
# Receipts the publisher keeps for the next try while the relay is down; past this the next
# pull's catch-up publishes the rest.
PUBLISH_BACKLOG: Final = 5_000


class RelayShopReceipts:
    """The relay's per-shop receipt index (`payments.shop_receipts.ShopReceipts`), signed with
    this till's key. Lists longer than one request takes go in batches of `RECEIPTS_BATCH`;
    the first batch that fails ends the call with ShopReceiptsUnavailable."""

    def __init__(
        self,
        relay_url: str,
        till_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._url = relay_url.rstrip("/")
        self._key = till_key
        self._http = partial(_relay_http, self._url, timeout_s, transport)
        # Releases the relay could not be told yet (receipt -> sale_ref), oldest first: each
        # call tries them again before its own request, as the publisher keeps its receipts.
        self._unreleased: dict[str, str] = {}
        # One release pass at a time, and none while a registration takes a receipt back.
        self._releasing = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RelayShopReceipts(relay={self._url!r})"

    @property
    def unreleased(self) -> dict[str, str]:
        """The releases kept for a later call (receipt -> sale_ref)."""
        return dict(self._unreleased)

    async def register(self, held: Sequence[tuple[str, str]]) -> list[ReceiptHolder]:
        async with self._releasing:
            # A sale that holds a receipt again must not lose it to its own older release.
            for receipt, sale_ref in held:
                if self._unreleased.get(receipt) == sale_ref:
                    del self._unreleased[receipt]
            await self._release_kept()
        items = [{"receipt": receipt, "sale_ref": sale_ref} for receipt, sale_ref in held]
        conflicts: list[ReceiptHolder] = []
        for answer in await self._batches(RECEIPTS_PATH, items):
            conflicts.extend(_holders(answer.get("conflicts")))
        return conflicts

    async def release(self, receipt: str, sale_ref: str) -> bool:
        async with self._releasing:
            self._unreleased.pop(receipt, None)
            self._unreleased[receipt] = sale_ref
            while len(self._unreleased) > PUBLISH_BACKLOG:
                del self._unreleased[next(iter(self._unreleased))]
            await self._release_kept()
        return receipt not in self._unreleased

    async def _release_kept(self) -> None:
        """Tell the relay each kept release, oldest first, until one cannot be told (the rest
        wait for the next call). Answers 404 and 409 say this till's sale holds nothing to give
        back (already released, or never granted): done too. Held with `_releasing`."""
        if not self._unreleased:
            return
        async with self._http() as http:
            for receipt, sale_ref in list(self._unreleased.items()):
                release = {"receipt": receipt, "sale_ref": sale_ref}
                try:
                    response = await _signed_post(
                        http, RECEIPTS_RELEASE_PATH, release, self._key, ShopReceiptsUnavailable
                    )
                except ShopReceiptsUnavailable as error:
                    log.info("%d receipt releases kept for later: %s", len(self._unreleased), error)
                    return
                if response.status_code not in (200, 404, 409):
                    log.info(
                        "%d receipt releases kept for later: the relay answered HTTP %d",
                        len(self._unreleased),
                        response.status_code,
                    )
                    return
                if response.status_code == 409:
                    log.info(
                        "receipt %s was not held by sale %s: nothing to release", receipt, sale_ref
                    )
                del self._unreleased[receipt]

    async def known(self, receipts: Sequence[str]) -> dict[str, ReceiptHolder]:
        async with self._releasing:
            await self._release_kept()
        found: dict[str, ReceiptHolder] = {}
        for answer in await self._batches(RECEIPTS_KNOWN_PATH, list(dict.fromkeys(receipts))):
            found.update((h.receipt, h) for h in _holders(answer.get("held")))
        return found

    async def _batches(self, path: str, items: Sequence[object]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        if not items:
            return answers
        async with self._http() as http:
            for start in range(0, len(items), RECEIPTS_BATCH):
                batch = {"receipts": list(items[start : start + RECEIPTS_BATCH])}
                response = await _signed_post(http, path, batch, self._key, ShopReceiptsUnavailable)
                body = _json_or_empty(response)
                if response.status_code != 200:
                    message = str(body.get("error") or f"HTTP {response.status_code}")
                    raise ShopReceiptsUnavailable(f"the relay did not answer: {message}")
                answers.append(body)
        return answers


def _holders(items: object) -> list[ReceiptHolder]:
    """The holders in a relay answer; ShopReceiptsUnavailable when it is not that shape."""
    if not isinstance(items, list):
        raise ShopReceiptsUnavailable("the relay's answer names no holders")
    try:
        return [
            ReceiptHolder(str(i["receipt"]), str(i["till_id"]), str(i["sale_ref"])) for i in items
        ]
    except (KeyError, TypeError):
        raise ShopReceiptsUnavailable("the relay's answer is not a list of holders") from None


class ReceiptPublisher:
    """Tells the shop's receipt index about each receipt this till's sales come to hold, as
    soon as the engine reports it (callback, query, receipt code, statement, manager), so the
    other tills' pulls do not call it money without a sale.

    Best effort and never in a payment's way: the engine's listener only notes the receipt;
    a background task sends what is noted; a relay that is down loses nothing that matters,
    because every pull first publishes the receipts of its window again."""

    def __init__(self, engine: PaymentEngine, receipts: ShopReceipts) -> None:
        self.receipts = receipts
        self._waiting: dict[str, str] = {}
        self._sent: set[str] = set()
        self._wake = asyncio.Event()
        self._loop = BackgroundTask(self._run, "smartduka-receipt-publisher")
        self._unsubscribe = engine.add_listener(self._noticed)
        self.published = 0

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        self._unsubscribe()
        await self._loop.stop(cancel=True)

    def _noticed(self, view: PaymentView) -> None:
        if view.state is AttemptState.COMPLETED and view.receipt and view.receipt not in self._sent:
            self._waiting[view.receipt] = view.sale_ref
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send what is noted. What the relay could not take is kept for the next receipt's
        try (up to `PUBLISH_BACKLOG`); the next pull sends it too."""
        batch, self._waiting = self._waiting, {}
        if not batch:
            return
        try:
            conflicts = await self.receipts.register(list(batch.items()))
        except Exception as error:
            if not isinstance(error, ShopReceiptsUnavailable):
                log.exception("receipts not published")
            log.info("%d receipts not published yet (%s)", len(batch), error)
            kept = {**batch, **self._waiting}
            self._waiting = dict(list(kept.items())[-PUBLISH_BACKLOG:])
            return
        self._sent.update(batch)
        self.published += len(batch) - len(conflicts)
        for holder in conflicts:
            log.warning(
                "receipt %s is held by %s in this shop, not by sale %s here",
                holder.receipt,
                holder.words(),
                batch.get(holder.receipt),
            )


# ---------------------------------------------------------------------- the till's link


@dataclass(slots=True)
class TillLink:
    """What a running till keeps open beside its engine: the connection state the app shows,
    the relay client (None when no relay is configured) and the Daraja probe."""

    connection: ConnectivityMonitor
    relay: RelayClient | None
    probe: DarajaProbe | None
    # Publishes this till's receipts to the shop's index (None without a relay).
    receipts: ReceiptPublisher | None = None


def daraja_check(gateway: object, settings: Settings) -> Callable[[], Awaitable[bool | None]]:
    """What the Daraja probe asks: the broker's view for a platform shop (which reaches M-Pesa
    only through the relay), else whether Daraja's host answers at all."""
    if isinstance(gateway, BrokerGateway):

        async def through_broker() -> bool | None:
            # Without the relay, a platform shop cannot reach M-Pesa at all.
            state = await gateway.daraja_status()
            return state == "reachable" if state in (None, "reachable", "unreachable") else None

        return through_broker

    return partial(daraja_answers, settings.daraja_base_url)


async def wait_for_outcome(
    engine: PaymentEngine,
    attempt_id: AttemptId,
    timeout_s: float,
    link: TillLink | None = None,
) -> PaymentView:
    """Wait until the attempt is final or `timeout_s` has passed.

    While the relay is reachable the callback is awaited (no query) for up to the reconciler's
    `reconcile_min_age_s` after the push; after that, or while the relay is unreachable, M-Pesa
    is asked every `ui_refresh_s`. A success awaiting its confirming query is queried at once.
    Past its expiry the attempt gets its last query and expires.
    """
    clock = engine.clock
    timings = engine.settings.timings
    deadline = clock.monotonic() + timeout_s
    changed = asyncio.Event()

    def on_change(view: PaymentView) -> None:
        if view.attempt_id == attempt_id:
            changed.set()

    unsubscribe = engine.add_listener(on_change)
    unwatch = link.connection.subscribe(lambda _: changed.set()) if link else (lambda: None)
    try:
        while True:
            changed.clear()
            view = await engine.get(attempt_id)
            remaining = deadline - clock.monotonic()
            if not view.is_live or remaining <= 0:
                return view
            if view.expires_at <= clock.now():
                await engine.reconcile_once()
                continue
            relay_up = (
                link is not None
                and link.relay is not None
                and link.relay.relay_state is Reachability.REACHABLE
            )
            sent_at = view.push_sent_at or view.created_at
            quiet_until = sent_at + timedelta(seconds=timings.reconcile_min_age_s)
            if relay_up and not view.confirming and clock.now() < quiet_until:
                window = min(remaining, (quiet_until - clock.now()).total_seconds())
                await woken(changed, clock, window)
                continue
            # UNKNOWN without a CheckoutRequestID: nothing to ask M-Pesa about, only a callback.
            unaskable = view.checkout_request_id is None and view.state is not AttemptState.CREATED
            if unaskable and not relay_up:
                return view
            woke = await woken(changed, clock, min(remaining, float(timings.ui_refresh_s)))
            if not woke and not unaskable:
                await engine.check_now(attempt_id)
    finally:
        unsubscribe()
        unwatch()
