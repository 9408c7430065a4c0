"""The till feed in-process: auth, isolation, long-poll, visibility, dead-letter, limits."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from callback_relay.registry import now_ms
from tests.relay.conftest import Harness, attempt_path, bearer


async def start_poll(h: Harness, enrolment: Any, wait: float) -> asyncio.Task[Any]:
    """Start a long-poll and return once it is parked on the clock (background loops sleep too,
    so wait for one more sleeper than before)."""
    before = h.clock.sleepers
    poll = asyncio.create_task(h.feed(enrolment, wait=wait))
    while h.clock.sleepers <= before:
        assert not poll.done(), poll.result().text
        await asyncio.sleep(0.001)
    return poll


async def test_wrong_missing_malformed_and_revoked_keys_get_401(harness: Harness) -> None:
    shop = await harness.shop()
    assert (await harness.post(attempt_path(shop))).status_code == 200
    forged = shop.till_key[:-4] + ("AAAA" if not shop.till_key.endswith("AAAA") else "BBBB")
    client = harness.client("10.9.8.7")
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {shop.till_key}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Bearer tnotatill0000.xyz"},
    ):
        response = await client.get("/v1/events", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert shop.till_key not in response.text
    await harness.registry.revoke_till(shop.till_id)
    assert (await harness.feed(shop)).status_code == 401
    assert (await harness.ack(shop, 1)).status_code == 401
    # Nothing was handed out or acknowledged by any of these.
    assert await harness.count("SELECT COUNT(*) FROM events WHERE delivery_count = 0") == 1


async def test_twenty_shops_never_see_each_others_events(harness: Harness) -> None:
    rng = random.Random(20)
    tills = []
    for n in range(20):
        first = await harness.shop(f"Shop {n}")
        tills.append(first)
        for _ in range(rng.randint(1, 3)):
            tills.append(await harness.till(first.shop_id))
    sent: dict[str, set[str]] = {t.till_id: set() for t in tills}
    for _ in range(150):
        till = rng.choice(tills)
        path = attempt_path(till)
        assert (await harness.post(path)).status_code == 200
        sent[till.till_id].add(path.split("/")[5])
    order = tills * 2
    rng.shuffle(order)
    for till in order:
        events = (await harness.feed(till)).json()["events"]
        for event in events:
            assert (event["shop_id"], event["till_id"]) == (till.shop_id, till.till_id)
            assert event["attempt_ref"] in sent[till.till_id]
            # Another till of any shop cannot acknowledge it.
            stranger = rng.choice([t for t in tills if t.till_id != till.till_id])
            assert (await harness.ack(stranger, event["id"])).status_code == 404
            assert (await harness.ack(till, event["id"])).status_code == 200
    for till in tills:
        assert await harness.drain(till) == []
    assert await harness.count("SELECT COUNT(*) FROM events WHERE state != 'acked'") == 0


async def test_long_poll_wakes_when_a_callback_commits(harness: Harness) -> None:
    shop = await harness.shop()
    poll = asyncio.create_task(harness.feed(shop, wait=30))
    while harness.relay.hub.waiting(shop.till_id) == 0:
        await asyncio.sleep(0.001)
    assert not poll.done()
    assert (await harness.post(attempt_path(shop))).status_code == 200
    response = await asyncio.wait_for(poll, timeout=10)
    assert len(response.json()["events"]) == 1


async def test_idle_long_poll_returns_an_empty_heartbeat_after_wait(harness: Harness) -> None:
    shop = await harness.shop()
    other = await harness.shop("Other")
    poll = await start_poll(harness, shop, 25)
    # A callback for another till does not wake this one.
    assert (await harness.post(attempt_path(other))).status_code == 200
    await asyncio.sleep(0.01)
    assert not poll.done()
    harness.clock.advance(25)
    response = await asyncio.wait_for(poll, timeout=10)
    assert response.json() == {"events": []}


async def test_wait_is_capped_and_bad_parameters_get_400(make_harness: Any) -> None:
    async with make_harness(feed_max_wait_s=5) as h:
        shop = await h.shop()
        poll = await start_poll(h, shop, 3600)
        h.clock.advance(5)
        assert (await asyncio.wait_for(poll, timeout=10)).json() == {"events": []}
        for params in (
            {"wait": "soon"},
            {"wait": "-1"},
            {"wait": "nan"},
            {"limit": "0"},
            {"till": "tsomeoneelse2"},
        ):
            response = await h.client().get("/v1/events", params=params, headers=bearer(shop))
            assert response.status_code == 400, params
            assert "bad query parameter" in response.json()["error"]


async def test_unacknowledged_events_return_then_dead_letter_then_replay(
    make_harness: Any,
) -> None:
    async with make_harness(visibility_timeout_s=30, max_deliveries=3) as h:
        shop = await h.shop()
        assert (await h.post(attempt_path(shop))).status_code == 200
        counts = []
        for _ in range(3):
            events = (await h.feed(shop)).json()["events"]
            counts.append(events[0]["delivery_count"])
            # Invisible until the timeout passes.
            assert (await h.feed(shop)).json()["events"] == []
            h.clock.advance(30)
        assert counts == [1, 2, 3]
        assert (await h.feed(shop)).json()["events"] == []
        assert await h.count("SELECT COUNT(*) FROM events WHERE state = 'dead'") == 1
        replayed = await h.relay.store.replay_dead(shop.till_id, now_ms(h.clock))
        assert replayed == 1
        events = (await h.feed(shop)).json()["events"]
        assert (events[0]["delivery_count"], events[0]["flags"]) == (1, ["replayed"])
        assert (await h.ack(shop, events[0]["id"])).json()["acked"] is True


async def test_replay_flags_an_event_once_and_keeps_its_other_flags(make_harness: Any) -> None:
    async with make_harness(visibility_timeout_s=30, max_deliveries=1) as h:
        shop = await h.shop()
        path = attempt_path(shop)
        assert (await h.post(path)).status_code == 200
        assert (await h.post(path)).status_code == 200  # another body for the same attempt
        for _ in range(2):
            assert len((await h.feed(shop)).json()["events"]) == 2
            h.clock.advance(30)
            # Dead-lettered now (by this sweep, or by the relay's own if it ran first).
            await h.relay.store.sweep(now_ms(h.clock), 1)
            assert await h.relay.store.replay_dead(shop.till_id, now_ms(h.clock)) == 2
        flags = [e["flags"] for e in (await h.feed(shop)).json()["events"]]
        assert flags == [["replayed"], ["conflicting_body", "replayed"]]


async def test_long_poll_picks_up_an_event_whose_visibility_expires(make_harness: Any) -> None:
    async with make_harness(visibility_timeout_s=10) as h:
        shop = await h.shop()
        assert (await h.post(attempt_path(shop))).status_code == 200
        first = (await h.feed(shop)).json()["events"]
        poll = await start_poll(h, shop, 25)
        h.clock.advance(10)
        again = (await asyncio.wait_for(poll, timeout=10)).json()["events"]
        assert [e["id"] for e in again] == [first[0]["id"]]
        assert again[0]["delivery_count"] == 2


async def test_sweep_dead_letters_without_polling(make_harness: Any) -> None:
    async with make_harness(visibility_timeout_s=5, max_deliveries=1, sweep_interval_s=60) as h:
        shop = await h.shop()
        assert (await h.post(attempt_path(shop))).status_code == 200
        assert len((await h.feed(shop)).json()["events"]) == 1
        h.clock.advance(60)
        for _ in range(100):
            if await h.count("SELECT COUNT(*) FROM events WHERE state = 'dead'"):
                break
            await asyncio.sleep(0.01)
        assert await h.count("SELECT COUNT(*) FROM events WHERE state = 'dead'") == 1


async def test_ack_is_idempotent_and_unknown_ids_get_404(harness: Harness) -> None:
    shop = await harness.shop()
    assert (await harness.post(attempt_path(shop))).status_code == 200
    event = (await harness.feed(shop)).json()["events"][0]
    harness.clock.advance(2.5)
    first = (await harness.ack(shop, event["id"])).json()
    second = (await harness.ack(shop, event["id"])).json()
    assert (first["already"], second["already"]) == (False, True)
    for bad in ("999999", "abc", "-1", "1" * 40, "\uff11"):
        assert (await harness.ack(shop, bad)).status_code == 404  # type: ignore[arg-type]
    registry = harness.relay.metrics.registry
    assert registry.get_sample_value("relay_ack_latency_seconds_count") == 1
    assert registry.get_sample_value("relay_ack_latency_seconds_sum") == 2.5


async def test_rate_limit_answers_429_with_retry_after(make_harness: Any) -> None:
    async with make_harness(feed_rate_per_s=0.5, feed_rate_burst=3) as h:
        shop = await h.shop()
        other = await h.till(shop.shop_id)
        statuses = [(await h.feed(shop)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await h.feed(shop)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        # Per key: another till is not affected, and callbacks never are.
        assert (await h.feed(other)).status_code == 200
        for _ in range(10):
            assert (await h.post(attempt_path(shop))).status_code == 200
        h.clock.advance(2)
        assert (await h.feed(shop)).status_code == 200


async def test_acknowledgements_have_their_own_limit(make_harness: Any) -> None:
    async with make_harness(feed_rate_burst=1, ack_rate_burst=3, ack_rate_per_s=1) as h:
        shop = await h.shop()
        for _ in range(4):
            assert (await h.post(attempt_path(shop))).status_code == 200
        events = (await h.feed(shop)).json()["events"]
        # Reading used the only feed token; acknowledging a whole batch is still allowed.
        assert (await h.feed(shop)).status_code == 429
        statuses = [(await h.ack(shop, e["id"])).status_code for e in events]
        assert statuses == [200, 200, 200, 429]
        assert (await h.ack(shop, events[3]["id"])).headers["retry-after"] == "1"
        h.clock.advance(1)
        assert (await h.ack(shop, events[3]["id"])).status_code == 200


async def test_acknowledged_events_are_pruned_after_retention(make_harness: Any) -> None:
    async with make_harness(retention_days=7, prune_interval_s=3600) as h:
        shop = await h.shop()
        for _ in range(3):
            assert (await h.post(attempt_path(shop))).status_code == 200
        events = (await h.feed(shop)).json()["events"]
        assert (await h.ack(shop, events[0]["id"])).status_code == 200
        h.clock.advance(6 * 86400)
        await asyncio.sleep(0.05)
        assert await h.count("SELECT COUNT(*) FROM events") == 3
        h.clock.advance(86400 + 3600)
        for _ in range(100):
            if await h.count("SELECT COUNT(*) FROM events") == 2:
                break
            await asyncio.sleep(0.01)
        # Only the acknowledged one went; unacknowledged callbacks are never pruned.
        assert await h.count("SELECT COUNT(*) FROM events") == 2
        assert await h.count("SELECT COUNT(*) FROM events WHERE state = 'acked'") == 0


async def test_metrics_need_an_allowed_address_or_the_token(make_harness: Any) -> None:
    async with make_harness(metrics_token="s3cret-metrics") as h:
        shop = await h.shop()
        assert (await h.post(attempt_path(shop))).status_code == 200
        assert (await h.client("127.0.0.1").get("/metrics")).status_code == 200
        outside = h.client("203.0.113.9")
        assert (await outside.get("/metrics")).status_code == 403
        wrong = {"Authorization": "Bearer nope"}
        assert (await outside.get("/metrics", headers=wrong)).status_code == 403
        spoof = {"X-Forwarded-For": "127.0.0.1"}
        assert (await outside.get("/metrics", headers=spoof)).status_code == 403
        good = {"Authorization": "Bearer s3cret-metrics"}
        response = await outside.get("/metrics", headers=good)
        assert response.status_code == 200
        text = response.text
        assert "relay_inbox_depth 1.0" in text
        assert 'relay_callbacks_total{outcome="stored"} 1.0' in text
        assert "relay_oldest_unacked_age_seconds" in text
        # No series names a shop or a till: per-shop figures come from `smartduka-relay stats`.
        assert shop.shop_id not in text
        assert shop.till_id not in text
        assert "s3cret-metrics" not in text


async def test_healthz(harness: Harness) -> None:
    response = await harness.client().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_a_closed_hub_answers_open_long_polls_and_later_ones_at_once(
    harness: Harness,
) -> None:
    """What SIGTERM does (callback_relay/server.py): no till keeps the relay waiting."""
    shop = await harness.shop()
    poll = await start_poll(harness, shop, 30)
    harness.relay.hub.close()
    response = await asyncio.wait_for(poll, timeout=10)
    assert response.json() == {"events": []}
    assert harness.relay.hub.waiting(shop.till_id) == 0
    again = await asyncio.wait_for(harness.feed(shop, wait=30), timeout=10)
    assert again.json() == {"events": []}
    # Events waiting are still handed out: closing cuts only the wait.
    assert (await harness.post(attempt_path(shop))).status_code == 200
    events = (await asyncio.wait_for(harness.feed(shop, wait=30), timeout=10)).json()["events"]
    assert len(events) == 1
