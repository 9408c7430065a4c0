"""Prometheus metrics, one CollectorRegistry per app so in-process tests do not share counters.

Labels are outcomes and reasons only, never shop or till ids: thousands of shops would make
thousands of series, and ids in a scrape tell a reader who the customers are. Per-shop figures
come from `smartduka-relay stats`, which asks the store.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from callback_relay.store import TillStats
from callback_relay.types import AppendOutcome, RefusalReason


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = Counter(
            "relay_callbacks",
            "Callbacks received, by outcome.",
            ["outcome"],
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
            "Unacknowledged events (pending or dead-lettered), all tills.",
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "relay_dead_letters",
            "Dead-lettered events waiting for `smartduka-relay replay`, all tills.",
            registry=self.registry,
        )
        self.oldest_unacked = Gauge(
            "relay_oldest_unacked_age_seconds",
            "Age of the oldest unacknowledged event of any till.",
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
        self._callback_children: dict[str, Any] = {}
        for reason in RefusalReason:
            self.refusals.labels(reason=reason.value)

    def callback(self, outcome: AppendOutcome | str) -> None:
        # Cache the labelled child: `labels()` takes a lock and builds a key on every call.
        key = str(outcome)
        child = self._callback_children.get(key)
        if child is None:
            child = self._callback_children[key] = self.callbacks.labels(key)
        child.inc()

    def store_failed(self) -> None:
        """A callback, result or confirmation the store could not commit (answered 503)."""
        self.store_failures.inc()
        self.callback("store_failed")

    def refusal(self, reason: RefusalReason) -> None:
        self.refusals.labels(reason=reason.value).inc()

    def set_inbox(self, stats: tuple[TillStats, ...], now_ms: int) -> None:
        self.inbox_depth.set(sum(row.unacked for row in stats))
        self.dead_letters.set(sum(row.dead for row in stats))
        oldest = min(
            (row.oldest_received_at for row in stats if row.oldest_received_at is not None),
            default=None,
        )
        self.oldest_unacked.set(0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000))

    def render(self) -> bytes:
        return generate_latest(self.registry)
