"""The callback route in-process: acceptance, duplicates, conflicts, every refusal, 503."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from typing import Any

import pytest

from callback_relay.types import RefusalReason
from smartduka_tui.clock import ManualClock
from tests.relay.conftest import SAFARICOM_IP, Harness, attempt_path, callback_body


def refusals(h: Harness, reason: RefusalReason) -> float:
    value = h.relay.metrics.registry.get_sample_value(
        "relay_refusals_total", {"reason": reason.value}
    )
    return value or 0.0


def callbacks(h: Harness, outcome: str) -> float:
    value = h.relay.metrics.registry.get_sample_value("relay_callbacks_total", {"outcome": outcome})
    return value or 0.0


async def test_valid_callback_is_committed_then_answered_and_delivered(harness: Harness) -> None:
    shop = await harness.shop()
    path = attempt_path(shop)
    body = callback_body()
    response = await harness.post(path, body)
    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    # Committed: a fresh connection sees the row.
    assert await harness.count("SELECT COUNT(*) FROM events WHERE kind='callback'") == 1
    events = (await harness.feed(shop)).json()["events"]
    assert len(events) == 1
    event = events[0]
    assert event["body"].encode() == body
    assert event["attempt_ref"] == path.split("/")[5]
    assert (event["kind"], event["flags"], event["delivery_count"]) == ("callback", [], 1)
    # The documented shape (callback_relay/README.md), nothing more or less.
    assert set(event) == {
        "id",
        "kind",
        "shop_id",
        "till_id",
        "attempt_ref",
        "received_at",
        "body",
        "body_sha256",
        "flags",
        "delivery_count",
        "security",
    }
    assert event["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert event["received_at"] == "2026-01-15T09:00:00.000Z"
    assert (event["shop_id"], event["till_id"], event["security"]) == (
        shop.shop_id,
        shop.till_id,
        None,
    )
    assert callbacks(harness, "stored") == 1


async def test_duplicate_is_answered_2xx_and_stored_once(harness: Harness) -> None:
    shop = await harness.shop()
    path, body = attempt_path(shop), callback_body()
    for _ in range(3):
        assert (await harness.post(path, body)).status_code == 200
    assert await harness.count("SELECT COUNT(*) FROM events") == 1
    assert callbacks(harness, "duplicate") == 2


async def test_different_body_for_same_attempt_is_stored_and_flagged(harness: Harness) -> None:
    shop = await harness.shop()
    path = attempt_path(shop)
    assert (await harness.post(path, callback_body(0))).status_code == 200
    assert (await harness.post(path, callback_body(1032))).status_code == 200
    events = (await harness.feed(shop)).json()["events"]
    assert [e["flags"] for e in events] == [[], ["conflicting_body"]]
    assert callbacks(harness, "conflicting") == 1


async def test_unsigned_refusals_get_404_are_counted_and_reach_no_feed(harness: Harness) -> None:
    shop = await harness.shop("Shop A")
    other_shop = await harness.shop("Shop B")
    sibling = await harness.till(shop.shop_id)
    good = attempt_path(shop)
    prefix, _, last = good.rpartition("/")
    kid, _, tag = last.partition(".")
    flipped = ("B" if tag[0] == "A" else "A") + tag[1:]
    parts = good.split("/")
    other_attempt = "/".join([*parts[:5], "zzzzzzzzzzzzzzzzzzzz", parts[6]])
    other_till = "/".join([*parts[:4], sibling.till_id, *parts[5:]])
    foreign_tag = attempt_path(other_shop).rpartition(".")[2]
    cases: list[tuple[str, RefusalReason]] = [
        (f"{prefix}/{kid}.{flipped}", RefusalReason.BAD_SIGNATURE),
        (f"{prefix}/{kid}.{foreign_tag}", RefusalReason.BAD_SIGNATURE),
        (other_attempt, RefusalReason.BAD_SIGNATURE),
        (other_till, RefusalReason.BAD_SIGNATURE),
        (good.replace(shop.shop_id, "snosuchshop22"), RefusalReason.UNKNOWN_SHOP),
        (f"{prefix}/k9.{tag}", RefusalReason.UNKNOWN_KID),
        ("/hooks/stk/only/three/parts", RefusalReason.MALFORMED_PATH),
        (good + "/extra", RefusalReason.MALFORMED_PATH),
        (good.replace(parts[5], parts[5][:-1] + "!"), RefusalReason.MALFORMED_PATH),
    ]
    for path, reason in cases:
        before = refusals(harness, reason)
        response = await harness.post(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "not found"}
        assert refusals(harness, reason) == before + 1, reason
    assert await harness.count("SELECT COUNT(*) FROM events") == 0
    for enrolment in (shop, other_shop, sibling):
        assert (await harness.feed(enrolment)).json()["events"] == []


async def test_retired_kid_is_refused_and_the_new_kid_works(harness: Harness) -> None:
    shop = await harness.shop()
    assert (await harness.post(attempt_path(shop))).status_code == 200
    new = await harness.registry.rotate_secret(shop.shop_id)
    # A till enrolled after the rotation gets its own key under the new shop kid.
    sibling = await harness.till(shop.shop_id)
    assert (new.kid, sibling.callback_kid) == ("k2", "k2-r1")
    # Both kids are valid until the old one is retired.
    assert (await harness.post(attempt_path(shop))).status_code == 200
    assert (await harness.post(attempt_path(sibling))).status_code == 200
    await harness.registry.retire_kid(shop.shop_id, "k1")
    await harness.relay.cache.refresh_if_changed()
    before = refusals(harness, RefusalReason.UNKNOWN_KID)
    response = await harness.post(attempt_path(shop))
    assert response.status_code == 404
    assert refusals(harness, RefusalReason.UNKNOWN_KID) == before + 1
    assert (await harness.post(attempt_path(sibling))).status_code == 200
    assert await harness.count("SELECT COUNT(*) FROM events") == 4


async def test_signed_refusals_are_counted_and_told_to_the_till(harness: Harness) -> None:
    shop = await harness.shop()
    cases: list[tuple[bytes, str, int, RefusalReason]] = [
        (callback_body(), "127.0.0.2", 403, RefusalReason.SOURCE_NOT_ALLOWED),
        (b"{not json", SAFARICOM_IP, 400, RefusalReason.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", SAFARICOM_IP, 400, RefusalReason.MALFORMED_JSON),
        (b"[" * 5000 + b"]" * 5000, SAFARICOM_IP, 400, RefusalReason.MALFORMED_JSON),
        (b'{"a": NaN}', SAFARICOM_IP, 400, RefusalReason.MALFORMED_JSON),
        (b'{"Body": {"other": 1}}', SAFARICOM_IP, 400, RefusalReason.NOT_STK_CALLBACK),
        (b"[1, 2, 3]", SAFARICOM_IP, 400, RefusalReason.NOT_STK_CALLBACK),
        (b"x" * (64 * 1024 + 1), SAFARICOM_IP, 413, RefusalReason.BODY_TOO_LARGE),
    ]
    for body, source, status, reason in cases:
        before = refusals(harness, reason)
        response = await harness.post(attempt_path(shop), body, source=source)
        assert response.status_code == status, (reason, response.text)
        assert "error" in response.json()
        assert refusals(harness, reason) == before + 1
    events = (await harness.feed(shop)).json()["events"]
    assert [e["kind"] for e in events] == ["security"] * len(cases)
    assert [e["security"]["reason"] for e in events] == [c[3].value for c in cases]
    assert events[0]["security"]["source"] == "127.0.0.2"
    assert await harness.count("SELECT COUNT(*) FROM events WHERE kind='callback'") == 0


async def test_sandbox_mode_accepts_unlisted_sources_and_logs_them(
    make_harness: Any, caplog: Any
) -> None:
    async with make_harness(mode="sandbox") as h:
        shop = await h.shop()
        path = attempt_path(shop)
        caplog.set_level("WARNING", logger="callback_relay")
        assert (await h.post(path, source="127.0.0.2")).status_code == 200
        assert any("unlisted source 127.0.0.2" in r.getMessage() for r in caplog.records)
        assert all(path not in r.getMessage() for r in caplog.records)
        assert len((await h.feed(shop)).json()["events"]) == 1


async def test_forwarded_for_is_believed_only_from_trusted_proxies(make_harness: Any) -> None:
    async with make_harness(trusted_proxies="10.0.0.0/8") as h:
        shop = await h.shop()
        xff = {"X-Forwarded-For": SAFARICOM_IP}
        # Spoofed header from an untrusted peer: judged by the peer, refused.
        assert (await h.post(attempt_path(shop), headers=xff, source="127.0.0.2")).status_code == (
            403
        )
        # The same header through a trusted proxy: the forwarded client is on the list.
        assert (await h.post(attempt_path(shop), headers=xff, source="10.1.1.1")).status_code == (
            200
        )
        # Right-most untrusted hop decides: a client-written left hop cannot launder it.
        chain = {"X-Forwarded-For": f"{SAFARICOM_IP}, 127.0.0.2, 10.2.2.2"}
        assert (await h.post(attempt_path(shop), headers=chain, source="10.1.1.1")).status_code == (
            403
        )
        # IPv4-mapped IPv6 peers are read as IPv4.
        mapped = f"::ffff:{SAFARICOM_IP}"
        assert (await h.post(attempt_path(shop), source=mapped)).status_code == 200


def _scope(harness: Harness, path: str, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    """A POST of `path` from Safaricom's address, as the ASGI server hands it to the app."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"host", b"relay.test")],
        "client": (SAFARICOM_IP, 1234),
        "server": ("relay.test", 80),
        "app": harness.app,
    }


async def test_lying_content_length_is_counted_as_bytes_arrive(harness: Harness) -> None:
    """The ASGI receive channel delivers more than the header claims: we count, not trust."""
    shop = await harness.shop()
    path = attempt_path(shop)
    chunk = b"x" * 8192
    sent: list[int] = []

    async def receive() -> dict[str, Any]:
        sent.append(1)
        return {"type": "http.request", "body": chunk, "more_body": len(sent) < 1000}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await harness.app(_scope(harness, path, (b"content-length", b"100")), receive, send)
    assert messages[0]["status"] == 413
    # Reading stopped just past the limit, far before the 8 MB the sender had queued.
    assert len(sent) == 64 * 1024 // 8192 + 1
    assert await harness.count("SELECT COUNT(*) FROM events WHERE kind='callback'") == 0


async def test_other_methods_on_the_hook_get_405_and_store_nothing(harness: Harness) -> None:
    shop = await harness.shop()
    path = attempt_path(shop)
    client = harness.client()
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, path, content=callback_body())
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
    assert await harness.count("SELECT COUNT(*) FROM events") == 0
    assert callbacks(harness, "stored") == 0
    assert (await harness.post(path)).status_code == 200


async def _raw_post(harness: Harness, path: str, messages: list[dict[str, Any]]) -> list[Any]:
    """Call the app with these receive messages in turn (the route reads `receive` itself)."""
    incoming = iter(messages)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await harness.app(_scope(harness, path), receive, send)
    return sent


async def test_body_in_several_chunks_is_stored_whole(harness: Harness) -> None:
    shop = await harness.shop()
    body = callback_body()
    third = len(body) // 3
    chunks = [body[:third], body[third : 2 * third], body[2 * third :]]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": n < 2}
        for n, chunk in enumerate(chunks)
    ]
    sent = await _raw_post(harness, attempt_path(shop), messages)
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"ResultCode": 0, "ResultDesc": "Accepted"}
    events = (await harness.feed(shop)).json()["events"]
    assert [e["body"].encode() for e in events] == [body]


async def test_client_gone_mid_body_gets_400_and_nothing_is_stored(harness: Harness) -> None:
    shop = await harness.shop()
    body = callback_body()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:40], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = await _raw_post(harness, attempt_path(shop), messages)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"error": "request body was cut short"}
    assert await harness.count("SELECT COUNT(*) FROM events") == 0
    assert (await harness.feed(shop)).json()["events"] == []


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_store_failure_answers_503_never_2xx_and_recovers(make_harness: Any) -> None:
    async with make_harness(busy_timeout_ms=50) as h:
        shop = await h.shop()
        blocker = sqlite3.connect(h.relay.settings.db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            path, body = attempt_path(shop), callback_body()
            response = await h.post(path, body)
            assert response.status_code == 503
            assert "unable" in response.json()["error"]
            assert h.relay.metrics.registry.get_sample_value("relay_store_failures_total") == 1
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await h.count("SELECT COUNT(*) FROM events") == 0
        # Daraja (or the simulator) retrying the same callback later is stored once.
        assert (await h.post(path, body)).status_code == 200
        assert await h.count("SELECT COUNT(*) FROM events") == 1


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_full_disk_answers_503(make_harness: Any) -> None:
    """A real SQLITE_FULL: the database may not grow past its current size."""
    async with make_harness() as h:
        shop = await h.shop()
        store: Any = h.relay.store

        def cap(conn: sqlite3.Connection) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")

        await store._write(cap)
        big = json.loads(callback_body())
        big["Body"]["stkCallback"]["ResultDesc"] = "x" * 2000
        statuses = [
            (await h.post(attempt_path(shop), json.dumps(big).encode())).status_code
            for _ in range(40)
        ]
        # Free pages inside the file may take a few rows; then the disk is full.
        assert set(statuses) == {200, 503}
        assert statuses[-1] == 503
        assert await h.count("SELECT COUNT(*) FROM events") == statuses.count(200)


async def test_a_shop_the_periodic_refresh_loaded_during_a_recheck_is_not_refused(
    harness: Harness,
) -> None:
    """Found by a flaky multi-instance test: a callback for a just-enrolled shop missed the
    cache and waited for its throttled recheck; the periodic refresh loaded the shop in the
    meantime, so the recheck found nothing new, and the callback was refused 404 as for an
    unknown shop (a payment Safaricom never sends again).

    The recheck's window is on a ManualClock here: on real time, a slow enrolment let the
    window pass, the recheck loaded the shop itself, and the race under test never happened."""
    cache = harness.relay.cache
    pacing = cache.pacing = ManualClock()
    enrolment = await harness.registry.add_shop("Just enrolled")
    stranger = {**enrolment.as_json(), "shop_id": "nobody"}
    assert (await harness.post(attempt_path(stranger))).status_code == 404
    # That miss checked the registry (and loaded the new shop): the next recheck waits out its
    # window. A second shop enrolled now is the one the callback is for.
    enrolment = await harness.registry.add_shop("Just enrolled too")
    body = callback_body()
    posted = asyncio.create_task(harness.post(attempt_path(enrolment), body))
    while not pacing.sleepers:  # the callback reaches its recheck's wait
        assert not posted.done(), (await posted).text
        await asyncio.sleep(0.001)
    assert await cache.refresh_if_changed()  # the periodic job finds the change
    pacing.advance(1)  # the window ends: the recheck finds nothing new
    response = await posted
    assert response.status_code == 200, response.text
    assert len((await harness.feed(enrolment)).json()["events"]) == 1
