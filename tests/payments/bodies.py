"""Daraja-shaped callback bodies for events handed to the engine directly (forged, reordered,
for another attempt), in the shape of shared/daraja/payloads/callback_*.json."""

from __future__ import annotations

import json
from datetime import datetime

from smartduka_tui.payments.api import CallbackEvent
from smartduka_tui.store.records import Attempt


def success_body(
    checkout_request_id: str,
    amount: int | str,
    phone: str,
    receipt: str = "TST0000001",
    merchant_request_id: str = "29115-34620561-1",
) -> bytes:
    return json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "MerchantRequestID": merchant_request_id,
                    "CheckoutRequestID": checkout_request_id,
                    "ResultCode": 0,
                    "ResultDesc": "The service request is processed successfully.",
                    "CallbackMetadata": {
                        "Item": [
                            {"Name": "Amount", "Value": amount},
                            {"Name": "MpesaReceiptNumber", "Value": receipt},
                            {"Name": "Balance"},
                            {"Name": "TransactionDate", "Value": 20260115090102},
                            {"Name": "PhoneNumber", "Value": int(phone)},
                        ]
                    },
                }
            }
        }
    ).encode()


def with_phone_item(body: bytes, value: object) -> bytes:
    """`body` with its PhoneNumber item's value set to `value` (a masked number, say).

    The item is set in the parsed JSON, never by replacing the number's digits in the bytes:
    the simulator's CheckoutRequestID ends with the local number after three millisecond
    digits, so a push made at millisecond 254 carries the whole 2547... number inside its id.
    """
    parsed = json.loads(body)
    items = parsed["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    [item] = [item for item in items if item["Name"] == "PhoneNumber"]
    item["Value"] = value
    return json.dumps(parsed).encode()


def failure_body(
    checkout_request_id: str,
    code: int | str,
    desc: str = "Request cancelled by user",
    merchant_request_id: str = "29115-34620561-1",
) -> bytes:
    return json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "MerchantRequestID": merchant_request_id,
                    "CheckoutRequestID": checkout_request_id,
                    "ResultCode": code,
                    "ResultDesc": desc,
                }
            }
        }
    ).encode()


def event_for(attempt: Attempt, body: bytes, at: datetime, **override: str) -> CallbackEvent:
    """An event as the relay would hand it for `attempt`'s signed path."""
    fields = {
        "attempt_ref": attempt.attempt_ref,
        "shop_id": attempt.shop_id,
        "till_id": attempt.till_id,
        **override,
    }
    return CallbackEvent(body=body, received_at=at, **fields)
