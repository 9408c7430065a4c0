"""C2B intake at the relay, in-process on both stores: the token route, fan-out to every till,
duplicates and conflicts, platform prefix routing, every refusal, and the shop-wide claim."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from callback_relay.c2b import C2BSetupError, confirmation_path, issue_token, route_prefix
from tests.relay.conftest import SAFARICOM_IP, Harness, bearer
from tests.support.daraja import PAYLOADS

SHORTCODE = "5501234"
PLATFORM_PAYBILL = "600900"
_receipts = itertools.count(1)


def confirmation(**changes: str) -> bytes:
    """The real-shape v2 confirmation sample with a fresh TransID and `changes` applied."""
    body: dict[str, Any] = json.loads(
        (PAYLOADS / "c2b_confirmation_v2_masked_msisdn.json").read_text()
    )
    body["TransID"] = f"TKQ{next(_receipts):07d}"
    body.update(changes)
    return json.dumps(body).encode()


async def c2b_rows(h: Harness) -> int:
    return await h.count("SELECT COUNT(*) FROM events WHERE kind = 'c2b'")


async def claims(h: Harness) -> int:
    return await h.count("SELECT COUNT(*) FROM meta WHERE key LIKE ?", "c2b/claim/%")


async def claim(h: Harness, till: Any, trans_id: str, sale_ref: str) -> httpx.Response:
    return await h.client("10.9.8.7").post(
        f"/v1/c2b/{trans_id}/claim", json={"sale_ref": sale_ref}, headers=bearer(till)
    )


async def test_confirmation_is_stored_for_every_till_of_the_shop_and_fed_to_each(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    other_shop = await harness.shop("Other")
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation()
    response = await harness.post(confirmation_path(token), body)
    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert await c2b_rows(harness) == 2
    for till in (shop, second):
        events = await harness.drain(till)
        assert [(e["kind"], e["attempt_ref"], e["body"].encode()) for e in events] == [
            ("c2b", json.loads(body)["TransID"], body)
        ]
        assert events[0]["till_id"] == till.till_id
    assert await harness.drain(other_shop) == []


async def test_duplicate_trans_id_is_stored_once_and_a_different_body_is_flagged(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation()
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    # Safaricom retries: the same body again is answered 2xx and changes nothing.
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    assert await c2b_rows(harness) == 1
    trans_id = json.loads(body)["TransID"]
    changed = confirmation(TransID=trans_id, TransAmount="900.00")
    assert (await harness.post(confirmation_path(token), changed)).status_code == 200
    events = await harness.drain(shop)
    assert [e["flags"] for e in events] == [[], ["conflicting_body"]]


async def test_a_wrong_token_is_refused_and_stores_nothing(harness: Harness) -> None:
    shop = await harness.shop()
    await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    for path in ("/hooks/c2b/" + "ab" * 32, "/hooks/c2b/short", "/hooks/c2b/" + "AB" * 32):
        response = await harness.post(path, confirmation())
        assert (response.status_code, response.json()) == (404, {"error": "not found"})
    assert await c2b_rows(harness) == 0
    assert await harness.drain(shop) == []


async def test_an_unlisted_source_is_refused_in_production(harness: Harness) -> None:
    shop = await harness.shop()
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    response = await harness.post(confirmation_path(token), confirmation(), source="203.0.113.9")
    assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
    assert await c2b_rows(harness) == 0
    ok = await harness.post(confirmation_path(token), confirmation(), source=SAFARICOM_IP)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"MSISDN": ""}, "MSISDN is missing"),
        ({"MSISDN": "0722 ***** 149"}, "MSISDN is masked but not a Kenyan number"),
        ({"MSISDN": "2547-xx-149"}, "MSISDN is neither a number, a masked number nor a hash"),
        ({"TransAmount": "150.50"}, "TransAmount has cents; this till takes whole shillings"),
        ({"BusinessShortCode": "5509999"}, "BusinessShortCode 5509999 is not the shortcode"),
    ],
)
async def test_bad_confirmations_are_refused_with_words_and_change_nothing(
    harness: Harness, changes: dict[str, str], message: str
) -> None:
    shop = await harness.shop()
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation(**changes)
    response = await harness.post(confirmation_path(token), body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert await c2b_rows(harness) == 0
    # Nothing was noted as received, so no till can claim it either.
    trans_id = json.loads(body)["TransID"]
    assert (await claim(harness, shop, trans_id, "S1")).status_code == 404
    assert await claims(harness) == 0


async def test_a_masked_payer_is_stored_as_sent_never_unmasked(harness: Harness) -> None:
    shop = await harness.shop()
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation(MSISDN="2547 ***** 149")
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    [event] = await harness.drain(shop)
    assert json.loads(event["body"])["MSISDN"] == "2547 ***** 149"


async def test_platform_paybill_routes_by_bill_ref_prefix(harness: Harness) -> None:
    first = await harness.shop("First")
    second = await harness.shop("Second")
    store = harness.relay.store
    await route_prefix(store, PLATFORM_PAYBILL, "AB", first.shop_id)
    await route_prefix(store, PLATFORM_PAYBILL, "cd", second.shop_id)
    token = await issue_token(store, PLATFORM_PAYBILL, None)
    path = confirmation_path(token)
    body = confirmation(BusinessShortCode=PLATFORM_PAYBILL, BillRefNumber="CD1042")
    assert (await harness.post(path, body)).status_code == 200
    assert await harness.drain(first) == []
    assert [e["attempt_ref"] for e in await harness.drain(second)] == [json.loads(body)["TransID"]]
    # A BillRefNumber that names no shop on this paybill.
    stray = confirmation(BusinessShortCode=PLATFORM_PAYBILL, BillRefNumber="ZZ77")
    response = await harness.post(path, stray)
    assert response.status_code == 400
    assert response.json()["error"] == "BillRefNumber 'ZZ77' names no shop on paybill 600900"
    assert await c2b_rows(harness) == 1


async def test_a_prefix_held_by_another_shop_is_refused(harness: Harness) -> None:
    first = await harness.shop("First")
    second = await harness.shop("Second")
    await route_prefix(harness.relay.store, PLATFORM_PAYBILL, "AB", first.shop_id)
    with pytest.raises(C2BSetupError, match="already routes to shop"):
        await route_prefix(harness.relay.store, PLATFORM_PAYBILL, "ab", second.shop_id)
    with pytest.raises(C2BSetupError, match="5 to 7 digits"):
        await issue_token(harness.relay.store, "12", first.shop_id)


async def test_the_first_till_to_claim_wins_shop_wide(harness: Harness) -> None:
    shop = await harness.shop()
    second = await harness.till(shop.shop_id)
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation()
    trans_id = json.loads(body)["TransID"]
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    granted = await claim(harness, shop, trans_id, "S-101")
    assert granted.status_code == 200
    assert granted.json()["granted"] is True
    # Asking again for the same sale is the same answer (a retried request is safe).
    assert (await claim(harness, shop, trans_id, "S-101")).status_code == 200
    refused = await claim(harness, second, trans_id, "S-7")
    assert refused.status_code == 409
    assert refused.json()["error"] == (
        f"{trans_id} is already attached to sale S-101 at till {shop.till_id}"
    )
    other_sale = await claim(harness, shop, trans_id, "S-102")
    assert other_sale.status_code == 409
    assert await claims(harness) == 1


async def test_a_claim_needs_a_payment_of_this_shop_and_a_till_key(harness: Harness) -> None:
    shop = await harness.shop()
    other = await harness.shop("Other")
    token = await issue_token(harness.relay.store, SHORTCODE, shop.shop_id)
    body = confirmation()
    trans_id = json.loads(body)["TransID"]
    assert (await harness.post(confirmation_path(token), body)).status_code == 200
    foreign = await claim(harness, other, trans_id, "S1")
    assert (foreign.status_code, foreign.json()) == (
        404,
        {"error": f"no C2B payment {trans_id} reached this shop"},
    )
    anonymous = await harness.client("10.9.8.7").post(
        f"/v1/c2b/{trans_id}/claim", json={"sale_ref": "S1"}
    )
    assert anonymous.status_code == 401
    bad = await harness.client("10.9.8.7").post(
        f"/v1/c2b/{trans_id}/claim", json={"sale_ref": "no spaces"}, headers=bearer(shop)
    )
    assert bad.status_code == 400
    assert await claims(harness) == 0
