"""What an adversarial review found: each test here failed on the relay before its fix."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import stat
from typing import Any

import pytest

from tests.relay.conftest import Harness, attempt_path


async def test_refused_signed_bodies_are_kept_as_hash_and_size_only(harness: Harness) -> None:
    shop = await harness.shop()
    hostile = b'{"Body": "<script>' + b"A" * 5000 + b'"}'
    response = await harness.post(attempt_path(shop), hostile)
    assert response.status_code == 400
    (event,) = (await harness.feed(shop)).json()["events"]
    assert event["kind"] == "security"
    assert event["body"] == ""
    assert event["body_sha256"] == hashlib.sha256(hostile).hexdigest()
    assert event["security"]["size"] == len(hostile)
    assert await harness.count("SELECT MAX(LENGTH(body)) FROM events") == 0


async def test_security_events_per_till_are_capped(make_harness: Any) -> None:
    async with make_harness(max_security_events_per_till=3) as h:
        shop = await h.shop()
        sibling = await h.till(shop.shop_id)
        for n in range(6):
            response = await h.post(attempt_path(shop), b"{not json %d" % n)
            assert response.status_code == 400
        assert await h.count("SELECT COUNT(*) FROM events WHERE till_id = ?", shop.till_id) == 3
        capped = h.relay.metrics.registry.get_sample_value(
            "relay_callbacks_total", {"outcome": "security_capped"}
        )
        assert capped == 3
        # Real callbacks are never capped, and the sibling till has its own allowance.
        assert (await h.post(attempt_path(shop))).status_code == 200
        assert (await h.post(attempt_path(sibling), b"{bad")).status_code == 400
        assert await h.count("SELECT COUNT(*) FROM events") == 5
        # Acknowledging frees room again.
        first = (await h.feed(shop, limit=1)).json()["events"][0]
        assert (await h.ack(shop, first["id"])).status_code == 200
        assert (await h.post(attempt_path(shop), b"{bad again")).status_code == 400
        assert await h.count("SELECT COUNT(*) FROM events WHERE kind = 'security'") == 5


async def test_retention_expires_unacked_security_events_and_revoked_tills(
    make_harness: Any,
) -> None:
    async with make_harness(retention_days=7, prune_interval_s=3600) as h:
        shop = await h.shop()
        gone = await h.till(shop.shop_id)
        assert (await h.post(attempt_path(shop), b"{bad")).status_code == 400
        assert (await h.post(attempt_path(shop))).status_code == 200
        assert (await h.post(attempt_path(gone))).status_code == 200
        await h.registry.revoke_till(gone.till_id)
        assert await h.count("SELECT COUNT(*) FROM events") == 3
        h.clock.advance(7 * 86400 + 3600)
        for _ in range(200):
            if await h.count("SELECT COUNT(*) FROM events") == 1:
                break
            await asyncio.sleep(0.01)
        # Left: the live till's unacknowledged callback, which it may still need.
        assert await h.count("SELECT COUNT(*) FROM events") == 1
        assert (
            await h.count(
                "SELECT COUNT(*) FROM events WHERE kind = 'callback' AND till_id = ?", shop.till_id
            )
            == 1
        )


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_healthz_reports_a_store_that_reads_but_cannot_write(make_harness: Any) -> None:
    async with make_harness(busy_timeout_ms=50) as h:
        assert (await h.client().get("/healthz")).status_code == 200
        blocker = sqlite3.connect(h.relay.settings.db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            response = await h.client().get("/healthz")
            assert response.status_code == 503
            assert response.json() == {"status": "store unavailable"}
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (await h.client().get("/healthz")).status_code == 200


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_relay_database_and_wal_files_are_owner_only(make_harness: Any) -> None:
    async with make_harness() as h:
        shop = await h.shop()
        assert (await h.post(attempt_path(shop))).status_code == 200
        db = h.relay.settings.db
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


async def test_intake_quotas_per_till_and_per_source_count_only_signed_callbacks(
    make_harness: Any,
) -> None:
    async with make_harness(
        intake_till_rate_per_s=1, intake_till_burst=3, intake_source_rate_per_s=1,
        intake_source_burst=5,
    ) as h:  # fmt: skip
        shop = await h.shop()
        sibling = await h.till(shop.shop_id)
        # Unsigned requests are refused before any quota, so they cannot spend one.
        forged = attempt_path(shop)[:-4] + "AAAA"
        for _ in range(10):
            assert (await h.post(forged)).status_code == 404
        for _ in range(3):
            assert (await h.post(attempt_path(shop))).status_code == 200
        over = await h.post(attempt_path(shop))
        assert over.status_code == 429
        assert over.json() == {"error": "too many callbacks"}
        assert over.headers["retry-after"] == "1"
        assert await h.count("SELECT COUNT(*) FROM events") == 3
        # The sibling till has its own allowance, until the source's runs out.
        assert (await h.post(attempt_path(sibling))).status_code == 200
        assert (await h.post(attempt_path(sibling))).status_code == 200
        assert (await h.post(attempt_path(sibling))).status_code == 429
        assert await h.count("SELECT COUNT(*) FROM events") == 5
        h.clock.advance(1)
        assert (await h.post(attempt_path(sibling))).status_code == 200
        metric = h.relay.metrics.registry.get_sample_value(
            "relay_callbacks_total", {"outcome": "rate_limited"}
        )
        assert metric == 2
