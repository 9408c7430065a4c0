"""The initiator APIs' result routes in-process, on both stores: a signed per-request path
bound to one till and one request (and to its purpose), committed before the 2xx, stored once,
fed to that till only; every wrong or replayed path changes nothing."""

from __future__ import annotations

import json
import uuid

from smartduka_tui.mpesa import result_path
from smartduka_tui.mpesa.enrolment import Enrolment
from smartduka_tui.mpesa.result_path import ResultPurpose
from tests.relay.conftest import SAFARICOM_IP, Harness, attempt_path


def result_body(code: int | str = 0, receipt: str = "TKQ9ZZ1A2B") -> bytes:
    """A real-shape Transaction Status result (distinct ConversationID each time)."""
    return json.dumps(
        {
            "Result": {
                "ResultType": 0,
                "ResultCode": code,
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": f"{uuid.uuid4().int % 10**5}-{uuid.uuid4().hex[:8]}",
                "ConversationID": f"AG_20260101_{uuid.uuid4().hex[:20]}",
                "TransactionID": receipt,
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "ReceiptNo", "Value": receipt},
                        {"Key": "Amount", "Value": 150},
                        {"Key": "FinalisedTime", "Value": 20260101120000},
                        {"Key": "TransactionStatus", "Value": "Completed"},
                    ]
                },
            }
        }
    ).encode()


def paths(e: Enrolment, ref: str | None = None) -> tuple[str, str]:
    if ref is None:
        result, timeout = result_path.sign_new_request(
            e.callback_secret, e.shop_id, e.till_id, e.callback_kid
        )
    else:
        result, timeout = (
            result_path.sign(e.callback_secret, p, e.shop_id, e.till_id, ref, e.callback_kid)
            for p in ResultPurpose
        )
    return result.path(), timeout.path()


async def test_a_result_is_committed_answered_and_fed_to_its_till_only(harness: Harness) -> None:
    shop = await harness.shop()
    other_till = await harness.till(shop.shop_id)
    result, _ = paths(shop)
    body = result_body()
    response = await harness.post(result, body)
    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert await harness.count("SELECT COUNT(*) FROM events WHERE kind = 'result'") == 1
    events = await harness.drain(shop)
    assert [(e["kind"], e["body"].encode()) for e in events] == [("result", body)]
    assert events[0]["attempt_ref"] == result_path.parse(result).request_ref
    assert await harness.drain(other_till) == []


async def test_the_queue_timeout_route_stores_its_own_kind(harness: Harness) -> None:
    shop = await harness.shop()
    _, timeout = paths(shop)
    response = await harness.post(timeout, result_body(code=1, receipt=""))
    assert response.status_code == 200
    assert [e["kind"] for e in await harness.drain(shop)] == ["queue_timeout"]


async def test_a_replayed_result_is_stored_once_and_a_different_body_is_flagged(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    result, _ = paths(shop)
    body = result_body()
    for _ in range(3):
        assert (await harness.post(result, body)).status_code == 200
    assert await harness.count("SELECT COUNT(*) FROM events WHERE kind = 'result'") == 1
    assert (await harness.post(result, result_body(code="R000002"))).status_code == 200
    events = await harness.drain(shop)
    assert [e["flags"] for e in events] == [[], ["conflicting_body"]]


async def test_wrong_signed_paths_get_404_and_store_nothing(harness: Harness) -> None:
    shop = await harness.shop()
    other_shop = await harness.shop("Other")
    other_till = await harness.till(shop.shop_id)
    result, timeout = paths(shop, "req0ref0a")
    signed = result_path.parse(result)
    # The result tag at the timeout route (the purpose is signed).
    swapped = timeout.rsplit(".", 1)[0] + "." + signed.tag
    # The path moved to another till of the shop, or to another shop, with the same tag.
    moved_till = result.replace(f"/{shop.till_id}/", f"/{other_till.till_id}/")
    moved_shop = result.replace(f"/{shop.shop_id}/", f"/{other_shop.shop_id}/")
    # Another request's ref under this request's tag.
    moved_ref = result.replace("/req0ref0a/", "/req0ref0b/")
    # An STK callback path's own valid tag, at the result route.
    stk = attempt_path(shop, "req0ref0a").replace("/hooks/stk/", "/hooks/res/")
    tampered = result[:-1] + ("A" if result[-1] != "A" else "B")
    for path in (swapped, moved_till, moved_shop, moved_ref, stk, tampered, "/hooks/res/x"):
        response = await harness.post(path, result_body())
        assert response.status_code == 404, path
        assert response.json() == {"error": "not found"}
    assert await harness.count("SELECT COUNT(*) FROM events") == 0
    for enrolment in (shop, other_till, other_shop):
        assert await harness.drain(enrolment) == []


async def test_a_signed_path_with_a_body_that_is_no_result_is_refused(harness: Harness) -> None:
    shop = await harness.shop()
    result, _ = paths(shop)
    for body in (b"not json", b'{"Body": {}}', b'{"Result": {"ResultCode": []}}'):
        response = await harness.post(result, body)
        assert response.status_code == 400
        assert response.json() == {"error": "body is not an M-Pesa result"}
    assert await harness.count("SELECT COUNT(*) FROM events") == 0


async def test_production_refuses_a_result_from_an_unlisted_source(harness: Harness) -> None:
    shop = await harness.shop()
    result, _ = paths(shop)
    response = await harness.post(result, result_body(), source="203.0.113.9")
    assert response.status_code == 403
    assert await harness.count("SELECT COUNT(*) FROM events") == 0
    assert (await harness.post(result, result_body(), source=SAFARICOM_IP)).status_code == 200


async def test_a_result_path_in_a_log_line_is_redacted(harness: Harness) -> None:
    import logging

    from callback_relay.server import RedactCallbackPaths

    shop = await harness.shop()
    result, timeout = paths(shop)
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "POST %s then %s", (result, timeout), None
    )
    assert RedactCallbackPaths().filter(record)
    text = record.getMessage()
    assert (
        text
        == f"POST /hooks/res/{shop.shop_id}/<redacted> then /hooks/qto/{shop.shop_id}/<redacted>"
    )
    assert result_path.parse(result).tag not in text
