"""The relay's Daraja broker: the relay app in process (its logic), the real simulator as Daraja.

Shops and the platform are set with the real `smartduka-relay` commands on the app's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from callback_relay import cli as relay_cli
from callback_relay.app import Relay, make_app
from callback_relay.settings import RelaySettings
from smartduka_tui.clock import ManualClock
from smartduka_tui.model import Mode, ShopType, VerificationStatus
from smartduka_tui.mpesa.callback_path import sign, sign_new_attempt
from smartduka_tui.payments.broker_gateway import BrokerGateway
from smartduka_tui.payments.gateway import (
    NotReady,
    PushOrder,
    PushRejected,
    QueryKind,
    Unreachable,
)
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import PushAnomaly
from smartduka_tui.store.records import Shop, TillCredentials
from smartduka_tui.store.secret import Secret
from tests.conftest import unique_phone
from tests.integration.support import PlatformCreds, RelayHandle
from tests.integration.test_pay_e2e import direct_till, platform_till

RELAY_KEY = "3c" * 32
PUSH = "/v1/daraja/stk-push"
QUERY = "/v1/daraja/stk-query"


@dataclass
class BrokerRig:
    relay: Relay
    app: Any
    db: Path
    client: httpx.AsyncClient
    platform_shortcode: str

    async def cli(self, *args: str) -> int:
        code = await asyncio.to_thread(relay_cli.main, [*args, "--db", str(self.db)])
        await self.relay.cache.refresh_if_changed()
        return code

    async def shop(self, *args: str) -> dict[str, Any]:
        out = self.db.parent / f"enrol-{len(list(self.db.parent.iterdir()))}.json"
        assert await self.cli("shop", "add", "Broker test shop", *args, "--out", str(out)) == 0
        data: dict[str, Any] = json.loads(out.read_text())
        out.unlink()
        return data

    def push_count(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("SELECT count(*) FROM broker_pushes").fetchone()[0])


def auth(enrolment: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {enrolment['till_key']}"}


def callback_url(enrolment: dict[str, Any]) -> str:
    e = enrolment
    signed = sign_new_attempt(e["callback_secret"], e["shop_id"], e["till_id"], e["callback_kid"])
    return "http://relay.test" + signed.path()


def push_body(enrolment: dict[str, Any], phone: str, **changes: Any) -> dict[str, Any]:
    body = {
        "amount": 100,
        "phone": phone,
        "reference": "S1",
        "description": "SmartDuka",
        "callback_url": callback_url(enrolment),
    }
    body.update(changes)
    return body


@contextlib.asynccontextmanager
async def broker_rig(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch, *, platform: bool
) -> AsyncIterator[BrokerRig]:
    monkeypatch.setenv("SMARTDUKA_RELAY_ENCRYPTION_KEY", RELAY_KEY)
    creds = PlatformCreds()
    view = await sim.register_shortcode(
        passkey=creds.passkey,
        consumer_key=creds.key,
        consumer_secret=creds.secret,
        settings={"callback_delay_s": 300},
    )
    db = tmp_path / "relay" / "relay.db"
    settings = RelaySettings(
        db=db, encryption_key=RELAY_KEY, public_url="http://relay.test", registry_refresh_s=3600
    )
    app = make_app(settings, clock=ManualClock())
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://relay.test"
        )
        rig = BrokerRig(app.state.relay, app, db, client, view.shortcode)
        if platform:
            monkeypatch.setenv("SMARTDUKA_RELAY_PLATFORM_CONSUMER_KEY", creds.key)
            monkeypatch.setenv("SMARTDUKA_RELAY_PLATFORM_CONSUMER_SECRET", creds.secret)
            monkeypatch.setenv("SMARTDUKA_RELAY_PLATFORM_PASSKEY", creds.passkey)
            args = ("platform", "set", "--shortcode", view.shortcode)
            assert await rig.cli(*args, "--daraja-url", sim.base_url) == 0
        try:
            yield rig
        finally:
            await client.aclose()


class SeenTransport(httpx.ASGITransport):
    """The relay app in process, noting each request's path."""

    def __init__(self, app: Any, seen: list[str]) -> None:
        super().__init__(app=app)
        self._seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._seen.append(request.url.path)
        return await super().handle_async_request(request)


def gateway_for(
    rig: BrokerRig, enrolment: dict[str, Any], prefix: str, *, seen: list[str] | None = None
) -> BrokerGateway:
    shop = Shop(
        id=enrolment["shop_id"],
        name="Platform shop",
        mpesa_type=ShopType.PLATFORM,
        business_shortcode=None,
        till_number=None,
        account_prefix=prefix,
        enabled=True,
        verification_status=VerificationStatus.PENDING,
        verified_at=None,
        created_at=rig.relay.clock.now(),
        updated_at=rig.relay.clock.now(),
        secret_fields=frozenset(),
    )
    till = TillCredentials(
        shop_id=enrolment["shop_id"],
        till_id=enrolment["till_id"],
        relay_url="http://relay.test",
        till_key=Secret(enrolment["till_key"]),
        active_callback_kid=enrolment["callback_kid"],
        callback_secrets={enrolment["callback_kid"]: Secret(enrolment["callback_secret"])},
    )
    return BrokerGateway(
        shop,
        till,
        "http://relay.test",
        timeout=httpx.Timeout(10.0),
        transport=SeenTransport(rig.app, [] if seen is None else seen),
    )


async def test_pushes_carry_the_platform_shortcode_and_the_shop_prefix_and_queries_stay_in_shop(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        shop_a = await rig.shop("--platform", "--prefix", "AA")
        shop_b = await rig.shop("--platform", "--prefix", "BB")
        known = await sim.requests()
        since = known[-1].seq if known else 0
        phone = unique_phone()
        ready = await rig.client.get("/v1/daraja/ready", headers=auth(shop_a))
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        pushed = await rig.client.post(PUSH, json=push_body(shop_a, phone), headers=auth(shop_a))
        assert pushed.status_code == 200, pushed.text
        checkout = pushed.json()["CheckoutRequestID"]
        (request,) = [r for r in await sim.requests(phone=phone) if "processrequest" in r.path]
        assert request.body["BusinessShortCode"] == rig.platform_shortcode
        assert request.body["PartyB"] == rig.platform_shortcode
        assert request.body["AccountReference"] == "AAS1"
        assert request.body["Password"] == "<redacted>"

        asked = await rig.client.post(
            QUERY, json={"checkout_request_id": checkout}, headers=auth(shop_a)
        )
        assert asked.status_code == 500, "still on the phone: Daraja's own answer, as it was"
        assert asked.json()["errorCode"] == "500.001.1001"
        assert "being processed" in asked.json()["errorMessage"]
        await sim.resolve(checkout, 1032)
        asked = await rig.client.post(
            QUERY, json={"checkout_request_id": checkout}, headers=auth(shop_a)
        )
        assert asked.status_code == 200 and asked.json()["ResultCode"] == "1032"

        other_phone = unique_phone()
        sent_b = await rig.client.post(
            PUSH, json=push_body(shop_b, other_phone, reference="T9"), headers=auth(shop_b)
        )
        assert sent_b.status_code == 200, sent_b.text
        (request_b,) = [r for r in await sim.requests(phone=other_phone) if r.method == "POST"]
        assert request_b.body["AccountReference"] == "BBT9"
        logins = [r for r in await sim.requests(since=since) if r.path.startswith("/oauth")]
        assert len(logins) == 1, "one OAuth token serves every platform shop"

        other = await rig.client.post(
            QUERY, json={"checkout_request_id": checkout}, headers=auth(shop_b)
        )
        assert other.status_code == 404
        assert other.json()["errorCode"] == "broker.unknown_checkout"
        gateway = gateway_for(rig, shop_b, "BB")
        try:
            answer = await gateway.query(checkout)
        finally:
            await gateway.aclose()
        assert answer.kind is QueryKind.NO_ANSWER


async def test_a_till_enrolled_a_moment_ago_can_push_before_the_cache_refreshes(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's registry cache refreshes every `registry_refresh_s` (an hour in this rig);
    a shop enrolled by the CLI just before its till's first push is found by the cache's
    recheck, not refused as an unsigned callback address."""
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        out = tmp_path / "fresh.json"
        args = ["shop", "add", "Fresh shop", "--platform", "--prefix", "FR", "--out", str(out)]
        assert await asyncio.to_thread(relay_cli.main, [*args, "--db", str(rig.db)]) == 0
        enrolment = json.loads(out.read_text())
        assert rig.relay.cache.entry(enrolment["shop_id"]) is None, "the cache has not seen it"
        phone = unique_phone()
        pushed = await rig.client.post(
            PUSH, json=push_body(enrolment, phone), headers=auth(enrolment)
        )
        assert pushed.status_code == 200, pushed.text
        assert rig.push_count() == 1
        (request,) = [r for r in await sim.requests(phone=phone) if r.method == "POST"]
        assert request.body["AccountReference"] == "FRS1"


async def test_bad_requests_are_refused_by_name_and_nothing_is_pushed(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        shop = await rig.shop("--platform", "--prefix", "PRE")
        own = await rig.shop()
        sibling = await rig.shop("--platform", "--prefix", "SIB")
        phone = unique_phone()
        e = shop
        bad_tag = sign(
            e["callback_secret"], e["shop_id"], e["till_id"], "abcdefgh", e["callback_kid"]
        ).path()
        bad_tag = "http://relay.test" + bad_tag[:-4] + "AAAA"
        cases: list[tuple[Any, dict[str, str], int, str, str]] = [
            (b"{not json", auth(shop), 400, "400.002.05", "not JSON"),
            ([1, 2], auth(shop), 400, "400.002.05", "expected an object"),
            ({**push_body(shop, phone), "shortcode": "174379"}, auth(shop), 400, "400.002.05",
             "unknown field 'shortcode'"),
            (push_body(shop, phone, amount=10.5), auth(shop), 400, "400.002.02",
             "Invalid Amount"),
            (push_body(shop, phone, amount=0), auth(shop), 400, "400.002.02", "Invalid Amount"),
            (push_body(shop, "0712"), auth(shop), 400, "400.002.02", "Invalid PhoneNumber"),
            (push_body(shop, phone, reference="123456789X"), auth(shop), 400, "400.002.02",
             "Invalid AccountReference (must be at most 12 characters, got 13"),
            (push_body(shop, phone, reference="S#1"), auth(shop), 400, "400.002.02",
             "Invalid AccountReference"),
            (push_body(shop, phone, callback_url=callback_url(sibling)), auth(shop), 400,
             "broker.callback_url_not_signed", "not a callback address this till signed"),
            (push_body(shop, phone, callback_url=bad_tag), auth(shop), 400,
             "broker.callback_url_not_signed", "not a callback address"),
            (push_body(shop, phone, callback_url="https://evil.example/hooks/stk/x"), auth(shop),
             400, "broker.callback_url_not_signed", "not a callback address"),
            (push_body(own, phone), auth(own), 403, "broker.not_platform_shop",
             "its own M-Pesa credentials"),
        ]  # fmt: skip
        for body, headers, status, code, words in cases:
            kwargs: dict[str, Any] = (
                {"content": body} if isinstance(body, bytes) else {"json": body}
            )
            answer = await rig.client.post(PUSH, headers=headers, **kwargs)
            assert answer.status_code == status, (body, answer.text)
            assert answer.json()["errorCode"] == code, (body, answer.text)
            assert words in answer.json()["errorMessage"], (body, answer.text)
        for headers in ({}, {"Authorization": "Bearer t222222222222.nope"}):
            answer = await rig.client.post(PUSH, json=push_body(shop, phone), headers=headers)
            assert answer.status_code == 401
        assert (await rig.client.get("/v1/daraja/ready", headers=auth(own))).status_code == 403
        assert await sim.requests(phone=phone) == [], "nothing reached Daraja"
        assert rig.push_count() == 0


async def test_the_till_refuses_a_body_the_broker_would_refuse_in_the_brokers_words(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One body model on both sides: an order the broker's model refuses is refused by the
    till's gateway before it is sent, with the code and words the broker answers for it."""
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        shop = await rig.shop("--platform", "--prefix", "ONE")
        phone = unique_phone()
        sent: list[str] = []
        gateway = gateway_for(rig, shop, "ONE", seen=sent)
        orders = [
            PushOrder(0, phone, "ONES1", "SmartDuka", callback_url(shop)),
            PushOrder(100, phone, "ONES1", "SmartDuka sale 1", callback_url(shop)),
            PushOrder(100, phone, "ONE" + "S" * 13, "SmartDuka", callback_url(shop)),
        ]
        try:
            for order in orders:
                with pytest.raises(PushRejected) as rejected:
                    await gateway.push(order)
                body = push_body(
                    shop,
                    phone,
                    amount=order.amount,
                    description=order.description,
                    reference=order.account_reference.removeprefix("ONE"),
                )
                answer = (await rig.client.post(PUSH, json=body, headers=auth(shop))).json()
                assert answer["errorCode"] == rejected.value.code == "400.002.02"
                assert answer["errorMessage"] == str(rejected.value)
                assert str(rejected.value).startswith("Bad Request - Invalid ")
        finally:
            await gateway.aclose()
        assert sent == [], "the till sent none of them"
        assert await sim.requests(phone=phone) == [], "nothing reached Daraja"
        assert rig.push_count() == 0


async def test_a_shops_push_limit_answers_429_and_the_till_reads_it_as_try_later(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        shop = await rig.shop("--platform", "--prefix", "LIM", "--pushes-per-minute", "2")
        other = await rig.shop("--platform", "--prefix", "OTH")
        for _ in range(2):
            sent = await rig.client.post(
                PUSH, json=push_body(shop, unique_phone()), headers=auth(shop)
            )
            assert sent.status_code == 200, sent.text
        phone = unique_phone()
        over = await rig.client.post(PUSH, json=push_body(shop, phone), headers=auth(shop))
        assert over.status_code == 429 and over.headers["Retry-After"] == "30"
        assert over.json()["errorCode"] == "broker.rate_limited"
        assert "2 a minute" in over.json()["errorMessage"]
        assert await sim.requests(phone=phone) == []
        gateway = gateway_for(rig, shop, "LIM")
        try:
            with pytest.raises(Unreachable, match="push limit for this shop is reached"):
                await gateway.prepare()
            with pytest.raises(PushRejected) as rejected:
                await gateway.push(PushOrder(100, phone, "LIMS2", "SmartDuka", callback_url(shop)))
        finally:
            await gateway.aclose()
        assert rejected.value.code == "500.003.02", "retry later, as after a spike arrest"
        # The limit is the shop's own: another platform shop still pushes.
        fine = await rig.client.post(
            PUSH, json=push_body(other, unique_phone()), headers=auth(other)
        )
        assert fine.status_code == 200


async def test_without_the_platform_set_up_tills_are_told_and_nothing_is_sent(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with broker_rig(tmp_path, sim, monkeypatch, platform=False) as rig:
        shop = await rig.shop("--platform", "--prefix", "NOP")
        phone = unique_phone()
        answer = await rig.client.post(PUSH, json=push_body(shop, phone), headers=auth(shop))
        assert answer.status_code == 503
        assert answer.json()["errorCode"] == "broker.not_configured"
        gateway = gateway_for(rig, shop, "NOP")
        try:
            with pytest.raises(NotReady, match="platform's paybill is not set up"):
                await gateway.prepare()
        finally:
            await gateway.aclose()
        assert await sim.requests(phone=phone) == []


async def test_oversized_bodies_and_a_relay_without_a_public_url_push_nothing(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        shop = await rig.shop("--platform", "--prefix", "BIG")
        phone = unique_phone()
        huge = dict(push_body(shop, phone), description="x" * (64 * 1024))
        answer = await rig.client.post(PUSH, json=huge, headers=auth(shop))
        assert answer.status_code == 413
        assert answer.json()["errorCode"] == "broker.body_too_large"
        # The CallBackURL is built from the configured public URL only: without one, no push.
        rig.relay.settings = rig.relay.settings.model_copy(update={"public_url": None})
        answer = await rig.client.post(PUSH, json=push_body(shop, phone), headers=auth(shop))
        assert answer.status_code == 503
        assert answer.json()["errorCode"] == "broker.no_public_url"
        assert "no public URL" in answer.json()["errorMessage"]
        assert rig.push_count() == 0
        assert await sim.requests(phone=phone) == []


async def test_a_production_relay_will_not_push_with_an_http_daraja_url(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The platform was set from a sandbox-mode shell (the simulator's http:// URL) on the
    # database a production relay serves: the broker refuses rather than send credentials
    # over plain http.
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        shop = await rig.shop("--platform", "--prefix", "TLS")
        phone = unique_phone()
        rig.relay.settings = rig.relay.settings.model_copy(update={"mode": Mode.PRODUCTION})
        for route, body in ((PUSH, push_body(shop, phone)), (QUERY, {"checkout_request_id": "x"})):
            answer = await rig.client.post(route, json=body, headers=auth(shop))
            assert answer.status_code == 503
            assert answer.json()["errorCode"] == "broker.not_configured"
            assert "must be an https:// URL in production mode" in answer.json()["errorMessage"]
        assert rig.push_count() == 0
        assert await sim.requests(phone=phone) == []


async def test_the_engine_treats_brokered_and_direct_pushes_alike(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, platform: object
) -> None:
    """Daraja's refusal (a phone with a prompt open elsewhere) and a push whose answer is lost
    (a 503 page instead of Daraja's envelope) end the same way through either gateway."""
    direct = await direct_till(tmp_path, relay, sim, name="direct")
    brokered = await platform_till(tmp_path, relay, sim, "BRK", name="brokered")
    locked_first_direct, locked_first_brokered = unique_phone(), unique_phone()
    lost_direct, lost_brokered = unique_phone(), unique_phone()
    for phone in (locked_first_direct, locked_first_brokered):
        await sim.set_phone_scenario(phone, callback_delay_s=300)
    for phone in (lost_direct, lost_brokered):
        await sim.set_phone_scenario(phone, push_anomaly=PushAnomaly.GATEWAY_ERROR)

    async with direct.engine() as d, brokered.engine() as b:
        assert (await d.start_payment("L1", 10, locked_first_direct)).state.value == "PENDING"
        assert (await b.start_payment("L2", 10, locked_first_brokered)).state.value == "PENDING"
        refused_b = await b.start_payment("L3", 10, locked_first_direct)
        refused_d = await d.start_payment("L4", 10, locked_first_brokered)
        lost_d = await d.start_payment("X1", 10, lost_direct)
        lost_b = await b.start_payment("X2", 10, lost_brokered)

    for field in ("state", "stage", "result_code", "cashier_message"):
        assert getattr(refused_b, field) == getattr(refused_d, field), field
    assert (refused_b.retry.block, refused_b.retry.allowed_now) == (
        refused_d.retry.block,
        refused_d.retry.allowed_now,
    )
    assert refused_b.state.value == "FAILED" and refused_b.result_code == "500.001.1001"
    for field in ("state", "stage", "cashier_message"):
        assert getattr(lost_b, field) == getattr(lost_d, field), field
    assert lost_b.state.value == "UNKNOWN"
