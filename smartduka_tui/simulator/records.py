"""The simulator's state: its clock, consumer apps, shortcodes, tokens and transactions.

A transaction's state is derived from simulator time (pending until `resolve_at`), so advancing
the clock settles prompts without any job. Secrets are kept out of every repr.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from smartduka_tui.clock import Clock
from smartduka_tui.simulator.schemas import (
    CallbackDelivery,
    PhoneScenario,
    RequestLogEntry,
    ShortcodeKind,
    TransactionState,
)


class SimClock:
    """Simulator time: a base clock plus an offset that only grows (`advance`)."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return self._base.monotonic() + self._offset

    async def sleep(self, seconds: float) -> None:
        """Sleep on the base clock; an `advance` meanwhile is noticed by whoever waits on it."""
        await self._base.sleep(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._offset += seconds


@dataclass(eq=False)
class App:
    """A consumer app: its credentials, token settings and live tokens."""

    app_id: str
    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    overrides: dict[str, Any] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set, repr=False)


@dataclass(eq=False)
class Merchant:
    """A registered shortcode (paybill, or a till's store number)."""

    shortcode: str
    kind: ShortcodeKind
    till_numbers: tuple[str, ...]
    app: App
    shared: bool
    passkey: str = field(repr=False)
    overrides: dict[str, Any] = field(default_factory=dict)
    spike_window: deque[float] = field(default_factory=deque, repr=False)
    quota_window: deque[float] = field(default_factory=deque, repr=False)


@dataclass(eq=False)
class Token:
    app: App
    expires_at: float


@dataclass(eq=False)
class Transaction:
    """One accepted push: what it asked for, how and when it ends, and what was sent about it."""

    checkout_request_id: str
    merchant_request_id: str
    merchant: Merchant
    phone: str
    party_a: str
    party_b: str
    amount: int
    account_reference: str
    transaction_type: str
    callback_url: str = field(repr=False)
    pushed_at: float
    pushed_wall: datetime
    resolve_at: float
    result_code: int | str
    result_desc: str
    receipt: str
    scenario: PhoneScenario
    query_anomalies_left: int | None
    callbacks_planned: int = 0
    callbacks_sent: int = 0
    queries: int = 0
    generation: int = 0
    cancelled: bool = False  # its shortcode was reset: never pending again, no callbacks

    def pending(self, now: float) -> bool:
        return not self.cancelled and now < self.resolve_at

    def resolved_wall(self) -> datetime:
        return self.pushed_wall + timedelta(seconds=self.resolve_at - self.pushed_at)

    def state(self, now: float) -> TransactionState:
        return TransactionState.PENDING if self.pending(now) else TransactionState.RESOLVED


# The simulator's two logs: requests received, callbacks sent.
_L = TypeVar("_L", RequestLogEntry, CallbackDelivery)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What a listing of requests, callbacks or transactions asks for: every filter given must
    match (None: any); the logs also start after `since` (a seq) and stop at `limit`."""

    phone: str | None = None
    shortcode: str | None = None
    checkout_request_id: str | None = None
    since: int = 0
    limit: int = 1000

    def admits(self, phone: str | None, shortcode: str | None, checkout: str | None) -> bool:
        return all(
            wanted is None or value == wanted
            for value, wanted in (
                (phone, self.phone),
                (shortcode, self.shortcode),
                (checkout, self.checkout_request_id),
            )
        )

    def select(self, log: Iterable[_L]) -> list[_L]:
        """The first `limit` entries after `since`, oldest first, that match."""
        chosen = (
            entry
            for entry in log
            if entry.seq > self.since
            and self.admits(entry.phone, entry.shortcode, entry.checkout_request_id)
        )
        return list(itertools.islice(chosen, self.limit))
