"""C2B end to end over loopback: the real simulator's customer pays the till directly, its
confirmation reaches the real relay process at the URL `smartduka-relay c2b token` made, and
every till of the shop reads it from its feed; the first till's claim wins."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from typing import Any

import httpx

from callback_relay import cli as relay_cli
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import ShortcodeKind
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle, unique_name
from tests.simulator.support import Daraja, register_shop
from tests.support.processes import ServerProcess


async def token_url(relay: RelayHandle, shortcode: str, shop_id: str) -> str:
    def run() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            args = ["c2b", "token", shortcode, "--shop", shop_id, "--json", "--db", str(relay.db)]
            assert relay_cli.main(args) == 0
        url: str = json.loads(out.getvalue())["url"]
        return url

    printed = await asyncio.to_thread(run)
    return relay.url.rstrip("/") + printed[printed.index("/hooks/c2b/") :]


async def next_events(http: httpx.AsyncClient, till: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-poll the till's feed until something arrives (the relay wakes it on commit)."""
    headers = {"Authorization": f"Bearer {till['till_key']}"}
    for _ in range(20):
        response = await http.get("/v1/events", params={"wait": 5}, headers=headers)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        if events:
            for event in events:
                ack = await http.post(f"/v1/events/{event['id']}/ack", headers=headers)
                assert ack.status_code == 200
            return events
    raise AssertionError("no event reached the till's feed")


async def test_a_direct_payment_reaches_every_till_and_one_claim_wins(
    relay: RelayHandle, simulator: ServerProcess, sim: SimulatorControl
) -> None:
    shop = await relay.enrol("shop", "add", unique_name("c2b"))
    second = await relay.enrol("till", "add", shop["shop_id"])
    merchant = await register_shop(sim, ShortcodeKind.TILL)
    url = await token_url(relay, merchant.shortcode, shop["shop_id"])
    async with httpx.AsyncClient(base_url=simulator.base_url, trust_env=False) as sim_http:
        daraja = Daraja(sim_http, merchant)
        registered = await sim_http.post(
            "/mpesa/c2b/v2/registerurl",
            json={
                "ShortCode": merchant.shortcode,
                "ResponseType": "Completed",
                "ConfirmationURL": url,
            },
            headers=await daraja.bearer(),
        )
        assert registered.status_code == 200, registered.text
    paid = await sim.pay_till(merchant.shortcode, unique_phone(), 150, first_name="MARY")
    async with httpx.AsyncClient(base_url=relay.url, trust_env=False, timeout=30) as http:
        for till in (shop, second):
            [event] = await next_events(http, till)
            body = json.loads(event["body"])
            assert (event["kind"], event["attempt_ref"]) == ("c2b", paid.trans_id)
            assert (body["TransAmount"], body["FirstName"]) == ("150.00", "MARY")
            assert "*" in body["MSISDN"]
        first = await http.post(
            f"/v1/c2b/{paid.trans_id}/claim",
            json={"sale_ref": "S-1"},
            headers={"Authorization": f"Bearer {second['till_key']}"},
        )
        assert first.status_code == 200, first.text
        late = await http.post(
            f"/v1/c2b/{paid.trans_id}/claim",
            json={"sale_ref": "S-9"},
            headers={"Authorization": f"Bearer {shop['till_key']}"},
        )
        assert late.status_code == 409
        assert late.json()["error"] == (
            f"{paid.trans_id} is already attached to sale S-1 at till {second['till_id']}"
        )
