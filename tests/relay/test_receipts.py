"""The shop's receipt index at the relay, in-process on both stores: first holder wins shop-wide,
C2B claims count as held, other shops see nothing, and every bad body or key is refused with
words and stores nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from callback_relay.c2b import confirmation_path, issue_token
from callback_relay.receipts import MAX_RECEIPTS
from tests.relay.conftest import Harness, bearer
from tests.relay.test_c2b import SHORTCODE, claim, confirmation

REGISTER = "/v1/receipts"
KNOWN = "/v1/receipts/known"
RELEASE = "/v1/receipts/release"


async def held_rows(h: Harness) -> int:
    return await h.count("SELECT COUNT(*) FROM meta WHERE key LIKE ?", "receipt/%")


async def register(h: Harness, till: Any, *pairs: tuple[str, str]) -> httpx.Response:
    body = {"receipts": [{"receipt": r, "sale_ref": s} for r, s in pairs]}
    return await h.client("10.9.8.7").post(REGISTER, json=body, headers=bearer(till))


async def known(h: Harness, till: Any, *receipts: str) -> httpx.Response:
    return await h.client("10.9.8.7").post(
        KNOWN, json={"receipts": list(receipts)}, headers=bearer(till)
    )


async def test_the_first_till_to_register_a_receipt_holds_it_shop_wide(harness: Harness) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    first = await register(harness, shop, ("TKQ1000001", "S-1"), ("TKQ1000002", "S-2"))
    assert first.status_code == 200
    assert first.json() == {"registered": ["TKQ1000001", "TKQ1000002"], "conflicts": []}
    # The same till and sale again is the same answer: a catch-up may resend everything.
    again = await register(harness, shop, ("TKQ1000001", "S-1"))
    assert again.json() == {"registered": ["TKQ1000001"], "conflicts": []}
    taken = await register(harness, second, ("TKQ1000001", "S-9"), ("TKQ1000003", "S-9"))
    assert taken.status_code == 200
    assert taken.json() == {
        "registered": ["TKQ1000003"],
        "conflicts": [{"receipt": "TKQ1000001", "till_id": shop.till_id, "sale_ref": "S-1"}],
    }
    answer = await known(harness, second, "TKQ1000001", "TKQ1000003", "TKQ9999999")
    assert answer.status_code == 200
    assert answer.json() == {
        "held": [
            {"receipt": "TKQ1000001", "till_id": shop.till_id, "sale_ref": "S-1"},
            {"receipt": "TKQ1000003", "till_id": second.till_id, "sale_ref": "S-9"},
        ]
    }
    assert await held_rows(harness) == 3


async def test_another_shop_sees_none_of_a_shops_receipts(harness: Harness) -> None:
    shop = await harness.shop()
    other = await harness.shop("Other")
    assert (await register(harness, shop, ("TKQ2000001", "S-1"))).status_code == 200
    assert (await known(harness, other, "TKQ2000001")).json() == {"held": []}
    # The other shop may hold the same code for itself: receipts are per shop.
    mine = await register(harness, other, ("TKQ2000001", "O-1"))
    assert mine.json() == {"registered": ["TKQ2000001"], "conflicts": []}


async def test_a_claimed_direct_payment_counts_as_held(harness: Harness) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation()
    trans_id = json.loads(body)["TransID"]
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    assert (await claim(harness, shop, trans_id, "S-5")).status_code == 200
    holder = {"receipt": trans_id, "till_id": shop.till_id, "sale_ref": "S-5"}
    assert (await known(harness, second, trans_id)).json() == {"held": [holder]}
    refused = await register(harness, second, (trans_id, "S-6"))
    assert refused.json() == {"registered": [], "conflicts": [holder]}
    assert await held_rows(harness) == 0


async def release(h: Harness, till: Any, receipt: str, sale_ref: str) -> httpx.Response:
    return await h.client("10.9.8.7").post(
        RELEASE, json={"receipt": receipt, "sale_ref": sale_ref}, headers=bearer(till)
    )


async def test_the_holder_releases_a_receipt_and_another_sale_may_then_hold_it(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    assert (await register(harness, shop, ("TKQ5000001", "S-1"))).status_code == 200
    released = await release(harness, shop, "TKQ5000001", "S-1")
    assert (released.status_code, released.json()) == (200, {"released": "TKQ5000001"})
    assert (await known(harness, second, "TKQ5000001")).json() == {"held": []}
    assert await held_rows(harness) == 0
    taken = await register(harness, second, ("TKQ5000001", "S-7"))
    assert taken.json() == {"registered": ["TKQ5000001"], "conflicts": []}
    # Released once is released: the same release again finds another holder and keeps it.
    again = await release(harness, shop, "TKQ5000001", "S-1")
    assert again.status_code == 409
    holder = {"receipt": "TKQ5000001", "till_id": second.till_id, "sale_ref": "S-7"}
    assert (await known(harness, shop, "TKQ5000001")).json() == {"held": [holder]}


async def test_only_the_holder_till_and_sale_may_release_and_a_refusal_changes_nothing(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    other = await harness.shop("Other")
    assert (await register(harness, shop, ("TKQ6000001", "S-1"))).status_code == 200
    holder = {"receipt": "TKQ6000001", "till_id": shop.till_id, "sale_ref": "S-1"}
    for till, sale_ref in ((second, "S-1"), (shop, "S-2")):
        refused = await release(harness, till, "TKQ6000001", sale_ref)
        assert refused.status_code == 409
        assert refused.json() == {
            "error": (
                f"receipt TKQ6000001 is held by sale S-1 at till {shop.till_id}, not by sale "
                f"{sale_ref} here; nothing changed"
            ),
            "holder": holder,
        }
    # Another shop's till finds nothing of this shop to release.
    foreign = await release(harness, other, "TKQ6000001", "S-1")
    assert foreign.status_code == 404
    assert foreign.json() == {
        "error": "no sale of this shop holds receipt TKQ6000001; nothing changed"
    }
    not_held = await release(harness, shop, "TKQ6000002", "S-1")
    assert not_held.status_code == 404
    assert "no sale of this shop holds receipt TKQ6000002" in not_held.json()["error"]
    assert (await known(harness, second, "TKQ6000001")).json() == {"held": [holder]}
    assert await held_rows(harness) == 1


async def test_a_claimed_direct_payment_is_not_released(harness: Harness) -> None:
    shop = await harness.shop()
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation()
    trans_id = json.loads(body)["TransID"]
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    assert (await claim(harness, shop, trans_id, "S-5")).status_code == 200
    refused = await release(harness, shop, trans_id, "S-5")
    assert refused.status_code == 409
    holder = {"receipt": trans_id, "till_id": shop.till_id, "sale_ref": "S-5"}
    assert (await known(harness, shop, trans_id)).json() == {"held": [holder]}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"receipt": "tkq7000001", "sale_ref": "S-1"}, "receipt"),
        ({"receipt": "TKQ7000001"}, "sale_ref"),
        ({"receipt": "TKQ7000001", "sale_ref": "no spaces"}, "sale_ref"),
        ({"receipts": [{"receipt": "TKQ7000001", "sale_ref": "S-1"}]}, "receipt"),
        ({"receipt": "TKQ7000001", "sale_ref": "S-1", "till": "x"}, "till"),
    ],
)
async def test_a_bad_release_is_refused_and_changes_nothing(
    harness: Harness, body: dict[str, Any], words: str
) -> None:
    shop = await harness.shop()
    assert (await register(harness, shop, ("TKQ7000001", "S-1"))).status_code == 200
    response = await harness.client("10.9.8.7").post(RELEASE, json=body, headers=bearer(shop))
    assert response.status_code == 400
    error = response.json()["error"]
    assert words in error and "nothing was stored" in error and "its sale_ref" in error
    assert await held_rows(harness) == 1


def _many(n: int) -> list[dict[str, str]]:
    return [{"receipt": f"TKQ{i:07d}", "sale_ref": "S-1"} for i in range(n)]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"receipts": [{"receipt": "tkq3000001", "sale_ref": "S-1"}]}, "receipts.0.receipt"),
        ({"receipts": [{"receipt": "TKQ300000", "sale_ref": "S-1"}]}, "receipts.0.receipt"),
        ({"receipts": [{"receipt": "TKQ3000001", "sale_ref": "no spaces"}]}, "sale_ref"),
        ({"receipts": [{"receipt": "TKQ3000001"}]}, "sale_ref"),
        ({"receipts": []}, "receipts"),
        ({"receipts": _many(MAX_RECEIPTS + 1)}, "at most 500"),
        (
            {
                "receipts": [
                    {"receipt": "TKQ3000001", "sale_ref": "S-1"},
                    {"receipt": "TKQ3000001", "sale_ref": "S-2"},
                ]
            },
            "listed twice",
        ),
        ({"receipts": [{"receipt": "TKQ3000001", "sale_ref": "S-1"}], "till": "x"}, "till"),
    ],
)
async def test_a_bad_registration_is_refused_and_stores_nothing(
    harness: Harness, body: dict[str, Any], words: str
) -> None:
    shop = await harness.shop()
    response = await harness.client("10.9.8.7").post(REGISTER, json=body, headers=bearer(shop))
    assert response.status_code == 400
    error = response.json()["error"]
    assert words in error and "nothing was stored" in error
    assert await held_rows(harness) == 0


async def test_bodies_past_64_kib_and_cut_short_are_refused(harness: Harness) -> None:
    shop = await harness.shop()
    padded = b'{"receipts": [' + b" " * (64 * 1024) + b"]}"
    big = await harness.client("10.9.8.7").post(REGISTER, content=padded, headers=bearer(shop))
    assert (big.status_code, big.json()["error"]) == (413, "body is larger than 64 KiB")
    for path in (REGISTER, KNOWN):
        junk = await harness.client("10.9.8.7").post(path, content=b"{", headers=bearer(shop))
        assert junk.status_code == 400
    assert await held_rows(harness) == 0


@pytest.mark.parametrize(
    "receipts",
    [["TKQ-000001"], [], [f"TKQ{i:07d}" for i in range(MAX_RECEIPTS + 1)], [123]],
)
async def test_a_bad_question_is_refused(harness: Harness, receipts: list[Any]) -> None:
    shop = await harness.shop()
    response = await harness.client("10.9.8.7").post(
        KNOWN, json={"receipts": receipts}, headers=bearer(shop)
    )
    assert response.status_code == 400
    assert "nothing was stored" in response.json()["error"]


async def test_unsigned_wrong_and_revoked_keys_are_refused_and_store_nothing(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    body = {"receipts": [{"receipt": "TKQ4000001", "sale_ref": "S-1"}]}
    client = harness.client("10.9.8.7")
    wrong = shop.till_key[:-4] + ("AAAA" if not shop.till_key.endswith("AAAA") else "BBBB")
    await harness.registry.revoke_till(second.till_id)
    for headers in (
        {},
        {"Authorization": f"Bearer {wrong}"},
        {"Authorization": shop.till_key},
        bearer(second),
    ):
        for path, payload in (
            (REGISTER, body),
            (KNOWN, {"receipts": ["TKQ4000001"]}),
            (RELEASE, {"receipt": "TKQ4000001", "sale_ref": "S-1"}),
        ):
            response = await client.post(path, json=payload, headers=headers)
            assert response.status_code == 401, (path, headers.keys())
            assert response.json() == {"error": "missing, wrong or revoked till key"}
    assert await held_rows(harness) == 0


async def test_get_meta_many_reads_the_keys_that_are_set(harness: Harness) -> None:
    store = harness.relay.store
    await store.set_meta_if_absent("receipt/x/A", b"one")
    await store.set_meta_if_absent("receipt/x/B", b"two")
    assert await store.get_meta_many(["receipt/x/A", "receipt/x/B", "receipt/x/C"]) == {
        "receipt/x/A": b"one",
        "receipt/x/B": b"two",
    }
    assert await store.get_meta_many(["receipt/x/C"]) == {}
    assert await store.get_meta_many([]) == {}


async def test_set_meta_many_if_absent_keeps_the_first_value_of_each_key(
    harness: Harness,
) -> None:
    store = harness.relay.store
    await store.set_meta_if_absent("receipt/y/A", b"first")
    stored = await store.set_meta_many_if_absent(
        [("receipt/y/A", b"second"), ("receipt/y/B", b"new")]
    )
    assert stored == {"receipt/y/A": b"first", "receipt/y/B": b"new"}
    assert await store.get_meta("receipt/y/B") == b"new"
    assert await store.set_meta_many_if_absent([]) == {}


async def test_delete_meta_if_deletes_only_the_value_it_names(harness: Harness) -> None:
    store = harness.relay.store
    await store.set_meta_if_absent("receipt/z/A", b"mine")
    assert await store.delete_meta_if("receipt/z/A", b"theirs") is False
    assert await store.get_meta("receipt/z/A") == b"mine"
    assert await store.delete_meta_if("receipt/z/A", b"mine") is True
    assert await store.get_meta("receipt/z/A") is None
    assert await store.delete_meta_if("receipt/z/A", b"mine") is False
