"""Suspicious patterns for the manager: repeated failures for a phone or a shop within a
window, and signed callbacks that match no attempt (money may have moved).

Each finding is a problem record (with its audit entry) on the manager's list. Duplicate
payments are recorded by the engine in the transaction that flags them. Thresholds come from
`settings.monitor`; windows are per till and read the injectable clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.model import AttemptState, ProblemKind
from smartduka_tui.mpesa.models import StkCallback
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.store.records import Attempt, AttemptFilter
from smartduka_tui.store.store import Store


class Monitor:
    def __init__(
        self, store: Store, settings: Settings, clock: Clock, shop_id: str, till_id: str
    ) -> None:
        self.store = store
        self.settings = settings.monitor
        self.clock = clock
        self.shop_id = shop_id
        self.till_id = till_id

    async def _failures(self, phone: str | None, limit: int) -> int:
        since = self.clock.now() - timedelta(seconds=self.settings.window_s)
        page = await self.store.attempts.history(
            self.shop_id,
            AttemptFilter(
                since=since,
                states=frozenset({AttemptState.FAILED}),
                phone=phone,
                till_id=self.till_id,
                include_resolved=True,
            ),
            limit=limit,
        )
        return len(page.items)

    async def after_failure(self, attempt: Attempt) -> None:
        """Count this failure against the phone's and the shop's windows; a count that reaches
        its threshold is reported once (the next report needs the count to reach it again)."""
        per_phone = self.settings.failures_per_phone
        if await self._failures(attempt.phone, per_phone + 1) == per_phone:
            await self._report(
                "failures_for_phone",
                {
                    "phone": mask_phone(attempt.phone),
                    "failures": per_phone,
                    "window_s": self.settings.window_s,
                    "last_attempt_id": attempt.id,
                },
            )
        per_shop = self.settings.failures_per_shop
        if await self._failures(None, per_shop + 1) == per_shop:
            await self._report(
                "failures_for_shop",
                {
                    "failures": per_shop,
                    "window_s": self.settings.window_s,
                    "last_attempt_id": attempt.id,
                },
            )

    async def unmatched_callback(self, attempt_ref: str, callback: StkCallback) -> None:
        """A signed callback for this till that names no attempt of it: money may have moved."""
        async with self.store.write() as tx:
            await self.store.problems.record(
                tx,
                self.shop_id,
                ProblemKind.UNMATCHED_CALLBACK,
                {
                    "attempt_ref": attempt_ref,
                    "checkout_request_id": callback.checkout_request_id,
                    "result_code": callback.code_key,
                    "amount": None if callback.amount is None else str(callback.amount),
                    "receipt": callback.receipt,
                },
                till_id=self.till_id,
            )

    async def _report(self, pattern: str, detail: dict[str, Any]) -> None:
        async with self.store.write() as tx:
            await self.store.problems.record(
                tx,
                self.shop_id,
                ProblemKind.SUSPICIOUS_PATTERN,
                {"pattern": pattern, **detail},
                till_id=self.till_id,
            )
