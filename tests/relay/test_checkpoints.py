"""Per-till audit checkpoints: lodged and read with the till key, never moved backwards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from callback_relay.registry import now_ms
from tests.relay.conftest import Harness, bearer

HEAD_A = "a" * 64
HEAD_B = "0123456789abcdef" * 4


async def lodge(h: Harness, enrolment: Any, body: Any, **kwargs: Any) -> httpx.Response:
    client = h.client("10.9.8.7")
    if isinstance(body, bytes):
        return await client.post(
            "/v1/audit/checkpoint", content=body, headers=bearer(enrolment), **kwargs
        )
    return await client.post("/v1/audit/checkpoint", json=body, headers=bearer(enrolment))


async def latest(h: Harness, enrolment: Any) -> httpx.Response:
    return await h.client("10.9.8.7").get("/v1/audit/checkpoint", headers=bearer(enrolment))


async def test_lodge_read_advance_and_repeat(harness: Harness) -> None:
    shop = await harness.shop()
    missing = await latest(harness, shop)
    assert (missing.status_code, missing.json()) == (404, {"error": "no_checkpoint"})

    first = await lodge(harness, shop, {"seq": 0, "head": HEAD_A})
    assert first.status_code == 200
    assert first.json() == {"seq": 0, "head": HEAD_A, "at": now_ms(harness.clock)}
    harness.clock.advance(5)
    # The same checkpoint again is fine and keeps its first time.
    again = await lodge(harness, shop, {"seq": 0, "head": HEAD_A})
    assert (again.status_code, again.json()) == (200, first.json())

    ahead = await lodge(harness, shop, {"seq": 7, "head": HEAD_B})
    assert ahead.status_code == 200
    assert ahead.json() == {"seq": 7, "head": HEAD_B, "at": now_ms(harness.clock)}
    assert (await latest(harness, shop)).json() == ahead.json()


async def test_behind_and_conflicting_checkpoints_get_409_and_change_nothing(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    stored = (await lodge(harness, shop, {"seq": 9, "head": HEAD_A})).json()
    behind = await lodge(harness, shop, {"seq": 8, "head": HEAD_B})
    assert behind.status_code == 409
    assert behind.json() == {"error": "checkpoint_behind", "stored_seq": 9}
    conflict = await lodge(harness, shop, {"seq": 9, "head": HEAD_B})
    assert conflict.status_code == 409
    assert conflict.json() == {"error": "checkpoint_conflict"}
    assert (await latest(harness, shop)).json() == stored


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[1, 2]", "nothing else"),
        (b'{"seq": 1}', "nothing else"),
        (b'{"seq": 1, "head": "' + b"a" * 64 + b'", "extra": 1}', "nothing else"),
        (b'{"seq": -1, "head": "' + b"a" * 64 + b'"}', "seq must be an integer >= 0"),
        (b'{"seq": 1.5, "head": "' + b"a" * 64 + b'"}', "seq must be an integer >= 0"),
        (b'{"seq": true, "head": "' + b"a" * 64 + b'"}', "seq must be an integer >= 0"),
        (b'{"seq": "1", "head": "' + b"a" * 64 + b'"}', "seq must be an integer >= 0"),
        (b'{"seq": 99999999999999999999, "head": "' + b"a" * 64 + b'"}', "seq must be"),
        (b'{"seq": 1, "head": "' + b"A" * 64 + b'"}', "head must be 64 lowercase hex"),
        (b'{"seq": 1, "head": "' + b"a" * 63 + b'"}', "head must be 64 lowercase hex"),
        (b'{"seq": 1, "head": 5}', "head must be 64 lowercase hex"),
        (b" " * 2000, "body too large"),
    ],
)
async def test_bad_bodies_get_400_and_change_nothing(
    harness: Harness, body: bytes, message: str
) -> None:
    shop = await harness.shop()
    stored = (await lodge(harness, shop, {"seq": 3, "head": HEAD_A})).json()
    response = await lodge(harness, shop, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert (await latest(harness, shop)).json() == stored


async def test_checkpoints_need_a_live_till_key_and_stay_per_till(harness: Harness) -> None:
    shop = await harness.shop()
    sibling = await harness.till(shop.shop_id)
    await lodge(harness, shop, {"seq": 4, "head": HEAD_A})
    # A sibling till has its own (empty) checkpoint and may lodge a lower seq.
    assert (await latest(harness, sibling)).status_code == 404
    assert (await lodge(harness, sibling, {"seq": 1, "head": HEAD_B})).status_code == 200
    client = harness.client("10.9.8.7")
    for headers in ({}, {"Authorization": "Bearer tnotatill0000.xyz"}):
        get = await client.get("/v1/audit/checkpoint", headers=headers)
        post = await client.post(
            "/v1/audit/checkpoint", json={"seq": 99, "head": HEAD_B}, headers=headers
        )
        assert (get.status_code, post.status_code) == (401, 401)
    await harness.registry.revoke_till(shop.till_id)
    await harness.relay.cache.refresh_if_changed()
    refused = await lodge(harness, shop, {"seq": 99, "head": HEAD_B})
    assert refused.status_code == 401
    assert (
        await harness.count("SELECT seq FROM audit_checkpoints WHERE till_id = ?", shop.till_id)
        == 4
    )
    assert (await latest(harness, sibling)).json()["seq"] == 1
