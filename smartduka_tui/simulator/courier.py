"""Callback delivery: schedule each transaction's callback copies and POST them when due.

In real time a background runner delivers jobs as they fall due, concurrently, so one slow
receiver never holds up another shop's callbacks. When the clock is advanced, `catch_up`
delivers everything now due one at a time in due order, so callbacks due at different
simulator moments arrive in that order, and the caller sees them all delivered on return.
Every attempt is recorded; none is retried (Daraja does not retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import httpx

from smartduka_tui.simulator.records import LogFilter, SimClock, Transaction
from smartduka_tui.simulator.redact import redact_url
from smartduka_tui.simulator.schemas import CallbackDelivery, MerchantSettings
from smartduka_tui.simulator.wire import CallbackFacts, callback_json
from smartduka_tui.tls import client_verify


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    transaction: Transaction = field(compare=False)
    copy_number: int = field(compare=False)
    generation: int = field(compare=False)


class _Due(Protocol):
    """A scheduled job: ordered by when it falls due (then by a sequence number)."""

    due: float

    def __lt__(self, other: Any, /) -> bool: ...


_JobT = TypeVar("_JobT", bound=_Due)


class BackgroundSender(Generic[_JobT]):
    """What the simulator's two senders share (STK callbacks here, the statement APIs' async
    results in statement.py): a schedule of jobs on simulator time, a runner task started and
    stopped with the app that sends them as they fall due, `catch_up` for an advanced clock,
    the deliveries in flight, and one HTTP client that posts a JSON body and reports what
    became of it."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._jobs: list[_JobT] = []
        self._job_seq = itertools.count()
        self._wake = asyncio.Event()
        self._catching_up = False
        self.delivered = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._runner: asyncio.Task[None] | None = None

    async def _send(self, job: _JobT) -> None:
        raise NotImplementedError

    def _current(self, job: _JobT) -> bool:
        """Whether a job that fell due is still to be sent (not superseded or cancelled)."""
        return True

    def _schedule(self, job: _JobT) -> None:
        heapq.heappush(self._jobs, job)

    def wake(self) -> None:
        """Something that changes when jobs fall due (the clock, a setting) has changed."""
        self._wake.set()

    async def catch_up(self) -> int:
        """Deliver every job now due, one at a time in due order (after any in flight);
        returns how many deliveries were made meanwhile."""
        before = self.delivered
        self._catching_up = True
        try:
            while self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
            while (job := self._pop_due()) is not None:
                await self._send(job)
        finally:
            self._catching_up = False
            self._wake.set()
        return self.delivered - before

    def _pop_due(self) -> _JobT | None:
        now = self._clock.monotonic()
        while self._jobs and self._jobs[0].due <= now:
            job = heapq.heappop(self._jobs)
            if self._current(job):
                return job
        return None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._catching_up:
                while (job := self._pop_due()) is not None:
                    task = asyncio.create_task(self._send(job))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            waiters: list[Awaitable[object]] = [self._wake.wait()]
            if self._jobs and not self._catching_up:
                waiters.append(
                    self._clock.sleep(max(0.0, self._jobs[0].due - self._clock.monotonic()))
                )
            await first_done(*waiters)

    async def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def post_json(
        self, url: str, payload: str, wait_s: float
    ) -> tuple[int | None, str | None, str | None]:
        """POST `payload` to `url`: (status, error, the answer's first 1,000 characters)."""
        if self._http is None:
            # trust_env=False: deliveries go exactly where the URL says, never via a proxy.
            self._http = httpx.AsyncClient(
                trust_env=False, verify=client_verify(), follow_redirects=False
            )
        try:
            response = await self._http.post(
                url,
                content=payload.encode(),
                headers={"Content-Type": "application/json"},
                timeout=wait_s,
            )
        except httpx.TimeoutException:
            return None, f"no answer within {wait_s:g} s", None
        except httpx.ConnectError:
            return None, "could not connect", None
        except httpx.HTTPError as exc:
            return None, f"HTTP failure ({type(exc).__name__})", None
        return response.status_code, None, response.text[:1000]


async def first_done(*waits: Awaitable[Any]) -> None:
    """Wait until the first of `waits` ends, then cancel the others."""
    waiters = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class CallbackCourier(BackgroundSender[_Job]):
    """Owns the delivery schedule, the HTTP client that posts callbacks, and the delivery log."""

    def __init__(
        self,
        clock: SimClock,
        settings_for: Callable[[Transaction], MerchantSettings],
        log_limit: int,
    ) -> None:
        super().__init__(clock)
        self._settings_for = settings_for
        self._log: deque[CallbackDelivery] = deque(maxlen=log_limit)
        self._log_seq = itertools.count(1)

    def plan(self, transaction: Transaction, first_copy: int = 1) -> None:
        """(Re)schedule a transaction's callback copies from `first_copy` on; earlier plans
        for it are dropped. Copy 1 comes `late_callback_s` after resolution, the duplicates
        `duplicate_interval_s` apart."""
        scenario = transaction.scenario
        transaction.generation += 1
        transaction.callbacks_planned = 0 if scenario.drop_callback else 1 + scenario.duplicates
        start = transaction.resolve_at + scenario.late_callback_s
        for copy_number in range(first_copy, transaction.callbacks_planned + 1):
            due = start + (copy_number - 1) * scenario.duplicate_interval_s
            job = _Job(due, next(self._job_seq), transaction, copy_number, transaction.generation)
            self._schedule(job)
        self._wake.set()

    def _current(self, job: _Job) -> bool:
        return not job.transaction.cancelled and job.generation == job.transaction.generation

    async def _send(self, job: _Job) -> None:
        await self.deliver(job.transaction, job.copy_number)

    async def deliver(self, transaction: Transaction, copy_number: int) -> None:
        """POST one callback copy and record what came of it."""
        settings = self._settings_for(transaction)
        facts = CallbackFacts(
            merchant_request_id=transaction.merchant_request_id,
            checkout_request_id=transaction.checkout_request_id,
            result_code=transaction.result_code,
            result_desc=transaction.result_desc,
            amount=transaction.amount,
            receipt=transaction.receipt,
            transaction_date=transaction.resolved_wall(),
            phone=transaction.phone,
        )
        payload = callback_json(facts, settings.balance_item, settings.amount_style)
        attempted_at = self._clock.now()
        status, error, response_body = await self.post_json(
            transaction.callback_url, payload, settings.callback_timeout_s
        )
        transaction.callbacks_sent += 1
        self.delivered += 1
        self._log.append(
            CallbackDelivery(
                seq=next(self._log_seq),
                checkout_request_id=transaction.checkout_request_id,
                phone=transaction.phone,
                shortcode=transaction.merchant.shortcode,
                url=redact_url(transaction.callback_url),
                copy_number=copy_number,
                result_code=transaction.result_code,
                payload=payload,
                attempted_at=attempted_at,
                status=status,
                error=error,
                response_body=response_body,
            )
        )

    def deliveries(self, wanted: LogFilter) -> list[CallbackDelivery]:
        """Recorded deliveries, oldest first, as `wanted` says."""
        return wanted.select(self._log)
