"""Prometheus metrics, one CollectorRegistry per app so in-process tests do not share counters.

Label values are only ever ids the registry knows (or the literal "unknown"): an attacker who
sends random shop ids must not be able to grow the label set.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from callback_relay.store import TillStats
from callback_relay.types import AppendOutcome, RefusalReason

UNKNOWN = "unknown"


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = Counter(
            "relay_callbacks",
            "Callbacks received, by outcome and shop.",
            ["outcome", "shop_id"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "relay_refusals",
            "Refused callbacks (security events), by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "relay_ack_latency_seconds",
            "From a callback's receipt to its acknowledgement by the till.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.inbox_depth = Gauge(
            "relay_inbox_depth",
            "Unacknowledged events (pending or dead-lettered), per till.",
            ["shop_id", "till_id"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "relay_dead_letters",
            "Dead-lettered events waiting for `smartduka-relay replay`, per till.",
            ["shop_id", "till_id"],
            registry=self.registry,
        )
        self.oldest_unacked = Gauge(
            "relay_oldest_unacked_age_seconds",
            "Age of the oldest unacknowledged event, per till.",
            ["shop_id", "till_id"],
            registry=self.registry,
        )
        self.feed_requests = Counter(
            "relay_feed_requests",
            "Feed requests, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.store_failures = Counter(
            "relay_store_failures",
            "Writes the store could not commit (answered 503).",
            registry=self.registry,
        )
        self._callback_children: dict[tuple[str, str], Any] = {}
        for reason in RefusalReason:
            self.refusals.labels(reason=reason.value)

    def callback(self, outcome: AppendOutcome | str, shop_id: str) -> None:
        # Cache the labelled child: `labels()` takes a lock and builds a key on every call.
        key = (str(outcome), shop_id)
        child = self._callback_children.get(key)
        if child is None:
            child = self._callback_children[key] = self.callbacks.labels(*key)
        child.inc()

    def refusal(self, reason: RefusalReason) -> None:
        self.refusals.labels(reason=reason.value).inc()

    def set_inbox(self, stats: tuple[TillStats, ...], now_ms: int) -> None:
        self.inbox_depth.clear()
        self.dead_letters.clear()
        self.oldest_unacked.clear()
        for row in stats:
            labels = {"shop_id": row.shop_id, "till_id": row.till_id}
            self.inbox_depth.labels(**labels).set(row.unacked)
            self.dead_letters.labels(**labels).set(row.dead)
            oldest = 0.0
            if row.oldest_received_at is not None:
                oldest = max(0.0, (now_ms - row.oldest_received_at) / 1000)
            self.oldest_unacked.labels(**labels).set(oldest)

    def render(self) -> bytes:
        return generate_latest(self.registry)
