"""The reconciler: settles attempts whose callback is late or lost, and expires the rest.

A pass queries every PENDING attempt older than `reconcile_min_age_s`, every PENDING attempt
whose prompt countdown has just ended (once: the cashier's screen says "checking" then), and
every attempt (live, or FAILED/EXPIRED in the last day) whose callback awaits its confirming
query; the start-up pass queries every live attempt, whatever its age. At most
`reconcile_concurrency` queries are in flight and `queries_per_second` per shortcode. Attempts
past `attempt_expiry_s` get one last query, then EXPIRED if that settles nothing. Passes run at
start-up, every `reconcile_interval_s` (or sooner, when a countdown ends or an attempt is due
to expire), after the relay reconnects and when a cashier stops waiting. All timing reads the
engine's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from smartduka_tui.background import BackgroundTask, woken
from smartduka_tui.limits import Spacing
from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import ReconcileReport
from smartduka_tui.payments.machine import Cause, Evidence
from smartduka_tui.payments.pull import PullSchedule, scheduled_pull
from smartduka_tui.store.records import Attempt

if TYPE_CHECKING:
    from smartduka_tui.payments.service import PaymentEngine
    from smartduka_tui.payments.shop_receipts import ShopReceipts

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, engine: PaymentEngine, receipts: ShopReceipts | None = None) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.clock = engine.clock
        self._wake = asyncio.Event()
        self._loop = BackgroundTask(self._run, "smartduka-reconciler")
        self._semaphore = asyncio.Semaphore(self.settings.limits.reconcile_concurrency)
        # One engine serves one shop, so one shortcode: its queries share this pace.
        self.query_pace = Spacing(self.clock, self.settings.limits.queries_per_second)
        # Attempts already asked about when their countdown ended (the start-up pass asks
        # about every live attempt, so a restart forgetting this set asks no one twice).
        self._countdown_asked: set[int] = set()
        self._countdown = timedelta(seconds=self.settings.timings.prompt_countdown_s)
        # Pull Transactions on its own schedule, so a long pull never holds up a pass; it asks
        # the shop's receipt index the composition root gave the engine's start (or none).
        self.pull_schedule: PullSchedule | None = scheduled_pull(engine, receipts)

    # ------------------------------------------------------------------ background loop

    def start(self) -> None:
        self._loop.start()
        if self.pull_schedule is not None:
            self.pull_schedule.start()

    async def stop(self) -> None:
        if self.pull_schedule is not None:
            await self.pull_schedule.stop()
        await self._loop.stop()

    def wake(self) -> None:
        """Run a pass soon (relay reconnected, a cashier stopped waiting)."""
        self._wake.set()

    async def _run(self) -> None:
        startup = True
        while True:
            try:
                await self.run_pass(startup=startup)
                startup = False
            except Exception:
                log.exception("reconciler pass failed; trying again next interval")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        wait = float(self.settings.timings.reconcile_interval_s)
        live = await self.engine.live_attempts()
        now = self.clock.now()
        for attempt in live:
            # At least a second, so an attempt that cannot be expired yet never spins the loop.
            wait = min(wait, max(1.0, (attempt.expires_at - now).total_seconds()))
            countdown_end = self._countdown_end(attempt)
            if countdown_end is not None:
                wait = min(wait, max(0.0, (countdown_end - now).total_seconds()))
        self._wake.clear()
        await woken(self._wake, self.clock, wait)

    # ------------------------------------------------------------------ one pass

    def _countdown_end(self, attempt: Attempt) -> datetime | None:
        """When `attempt`'s countdown ends, if it still needs its countdown-end query."""
        if (
            attempt.state is not AttemptState.PENDING
            or attempt.push_sent_at is None
            or attempt.checkout_request_id is None
            or attempt.id in self._countdown_asked
        ):
            return None
        return attempt.push_sent_at + self._countdown

    async def run_pass(self, *, startup: bool = False) -> ReconcileReport:
        """One pass; `startup` asks about every live attempt with a CheckoutRequestID."""
        now = self.clock.now()
        live = await self.engine.live_attempts()
        self._countdown_asked &= {attempt.id for attempt in live}
        min_age = timedelta(seconds=self.settings.timings.reconcile_min_age_s)
        expiring: list[Attempt] = []
        to_query: list[Attempt] = []
        for attempt in live:
            if attempt.state is AttemptState.CREATED:
                continue  # its push is in flight; start-up recovery handles crashed ones
            if attempt.expires_at <= now:
                expiring.append(attempt)
            elif attempt.checkout_request_id is not None:
                countdown_end = self._countdown_end(attempt)
                if (
                    startup
                    or attempt.state is AttemptState.UNKNOWN
                    or (attempt.push_sent_at or now) <= now - min_age
                    or attempt.confirming is not None
                    or (countdown_end is not None and countdown_end <= now)
                ):
                    self._countdown_asked.add(attempt.id)
                    to_query.append(attempt)
        to_query.extend(await self.engine.ended_but_confirming())
        results = await asyncio.gather(
            *(self._query(a) for a in to_query), *(self._expire(a) for a in expiring)
        )
        ends = Counter(end for _, end in results)
        report = ReconcileReport(
            examined=len(live),
            queried=sum(queried for queried, _ in results),
            settled=ends[_End.SETTLED],
            expired=ends[_End.EXPIRED],
            still_pending=ends[_End.OPEN],
            errors=ends[_End.ERROR],
        )
        if to_query or expiring:
            log.info("reconciler pass: %s", report)
        return report

    async def _query(self, attempt: Attempt) -> tuple[bool, _End]:
        """Ask about one attempt; (whether a query went out, how the attempt ended)."""
        async with self._semaphore:
            await self.query_pace.acquire()
            try:
                verdict = await self.engine.query_and_apply(attempt, asked_by=Cause.QUERY)
            except Exception:
                log.exception("query of attempt %s failed", attempt.id)
                return True, _End.ERROR
        if verdict is None:
            return False, _End.OPEN
        return True, _End.OPEN if verdict.attempt.is_live else _End.SETTLED

    async def _expire(self, attempt: Attempt) -> tuple[bool, _End]:
        """One last query; if it settles nothing, EXPIRED."""
        queried = attempt.checkout_request_id is not None
        if queried:
            async with self._semaphore:
                await self.query_pace.acquire()
                try:
                    verdict = await self.engine.query_and_apply(attempt, asked_by=Cause.EXPIRY)
                except Exception:
                    log.exception("last query of attempt %s failed", attempt.id)
                    verdict = None
            if verdict is not None and not verdict.attempt.is_live:
                return queried, _End.SETTLED
        async with self.engine.lock_for(attempt.attempt_ref):
            current = await self.engine.store.attempts.get(attempt.shop_id, attempt.id)
            if current is None or not current.is_live:
                return queried, _End.SETTLED
            verdict = await self.engine.apply_evidence(
                current, Evidence.EXPIRY, Cause.EXPIRY, detail={"last_query": queried}
            )
        return queried, _End.EXPIRED if verdict.attempt.state is AttemptState.EXPIRED else _End.OPEN


class _End(Enum):
    """How one attempt left a pass."""

    SETTLED = "settled"
    EXPIRED = "expired"
    OPEN = "open"
    ERROR = "error"
