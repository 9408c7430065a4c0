"""The request log: every Daraja request in arrival order, filterable, with secrets redacted.

The redaction test plants canary secrets and looks for them everywhere the simulator shows
anything: the request and callback logs, the listings, the CLI's output and the server's log."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.simulator.conftest import CliRunner
from tests.simulator.support import (
    OAUTH,
    PUSH,
    CallbackReceiver,
    Daraja,
    password,
    register_shop,
)
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_requests_are_logged_in_order_and_filterable(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = daraja.shop
    phone = unique_phone()
    start = max((e.seq for e in await control.requests(limit=10_000)), default=0)
    checkout_id = await daraja.push_ok(phone, receiver.url())  # also fetches a token
    await daraja.push(phone, receiver.url(), amount=0)
    await daraja.query(checkout_id)
    mine = await control.requests(shortcode=shop.shortcode, since=start)
    assert [(e.method, e.path, e.status, e.error_code) for e in mine] == [
        ("POST", PUSH, 200, None),
        ("POST", PUSH, 400, "400.002.02"),
        ("POST", "/mpesa/stkpushquery/v1/query", 500, "500.001.1001"),
    ]
    assert [e.seq for e in mine] == sorted(e.seq for e in mine)
    assert mine[0].body["Amount"] == 10 and mine[0].body["PhoneNumber"] == phone
    by_checkout = await control.requests(checkout_request_id=checkout_id)
    assert [e.path for e in by_checkout] == [PUSH, "/mpesa/stkpushquery/v1/query"]
    by_phone = await control.requests(phone=phone)
    assert {e.seq for e in by_phone} == {e.seq for e in mine}
    oauth = [e for e in await control.requests(since=start) if e.path == "/oauth/v1/generate"]
    assert oauth and oauth[0].query == {"grant_type": "client_credentials"}
    assert len(await control.requests(since=start, limit=1)) == 1


async def test_canary_secrets_never_appear_anywhere(
    http: httpx.AsyncClient,
    control: SimulatorControl,
    receiver: CallbackReceiver,
    simulator: ServerProcess,
    sim: CliRunner,
) -> None:
    passkey = "CANARYPASSKEY7f3e9a1c"
    key = "CANARYKEY5d2b8e4f"
    secret = "CANARYSECRET9c1a6d3b"
    shop = await register_shop(control, passkey=passkey, consumer_key=key, consumer_secret=secret)
    daraja = Daraja(http, shop)
    callback_url = receiver.url("hooks/stk/shop1/till1/CANARYPATHREF")
    checkout_id = await daraja.push_ok(unique_phone(), callback_url)
    await daraja.query(checkout_id)
    token = (await daraja.bearer())["Authorization"].split(" ", 1)[1]
    stk_password = password(shop.shortcode, passkey)
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    # Secrets in odd places: a broken body, a body in the wrong type, a token in the query.
    await http.post(
        PUSH,
        content=f'{{"Password": "{stk_password}", "x": {passkey}'.encode(),
        headers={**await daraja.bearer(), "Content-Type": "application/json"},
    )
    await http.post(
        PUSH,
        content=json.dumps({"Password": stk_password}).encode(),
        headers={**await daraja.bearer(), "Content-Type": "text/plain"},
    )
    await http.get(f"{OAUTH}&access_token={token}", headers={"Authorization": f"Basic {basic}"})
    await control.advance_clock(2)

    shown = [
        (await http.get("/__sim/requests", params={"limit": 10_000})).text,
        (await http.get("/__sim/callbacks", params={"shortcode": shop.shortcode})).text,
        (await http.get("/__sim/shortcodes")).text,
        (await http.get("/__sim/apps")).text,
        (await http.get("/__sim/transactions", params={"shortcode": shop.shortcode})).text,
    ]
    code, out, err = await sim("log", "--json", "--url", simulator.base_url)
    assert code == 0, err
    shown += [out, err, simulator.log_tail(10_000)]
    everything = "\n".join(shown)
    assert checkout_id in everything  # the logs do show what happened...
    assert '"Password":"<redacted>"' in everything.replace(" ", "")
    for canary in (passkey, key, secret, stk_password, basic, token, "CANARYPATHREF"):
        assert canary not in everything, canary  # ...but never a secret


async def test_callback_log_payload_is_exactly_what_was_sent(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    url = receiver.url()
    checkout_id = await daraja.push_ok(unique_phone(), url)
    await control.advance_clock(2)
    [delivery] = await control.callbacks(checkout_request_id=checkout_id)
    [received] = receiver.at(url)
    assert delivery.payload.encode() == received.body
    assert (delivery.status, delivery.copy_number, delivery.result_code) == (200, 1, 0)
    assert delivery.url == f"http://127.0.0.1:{receiver.port}/<redacted>"
