"""A platform shop's push through the relay's broker after the relay closed the till's idle
connection: the real relay app on uvicorn (its own keep-alive, only just longer than the till's),
behind a hop that hides the close until the till sends again (tests/support/late_close.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from smartduka_tui.model import ShopType, VerificationStatus
from smartduka_tui.mpesa.http_pool import RELAY_KEEPALIVE_EXPIRY_S
from smartduka_tui.payments.broker_gateway import BrokerGateway
from smartduka_tui.payments.gateway import PushOrder
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.records import Shop, TillCredentials
from smartduka_tui.store.secret import Secret
from tests.conftest import unique_phone
from tests.integration.test_broker import broker_rig, callback_url
from tests.support.late_close import served_behind_late_close


async def test_a_brokered_push_after_the_relay_closed_the_idle_connection_is_accepted(
    tmp_path: Path, sim: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with broker_rig(tmp_path, sim, monkeypatch, platform=True) as rig:
        enrolment = await rig.shop("--platform", "--prefix", "KA")
        now = rig.relay.clock.now()
        shop = Shop(
            id=enrolment["shop_id"],
            name="Platform shop",
            mpesa_type=ShopType.PLATFORM,
            business_shortcode=None,
            till_number=None,
            account_prefix="KA",
            enabled=True,
            verification_status=VerificationStatus.PENDING,
            verified_at=None,
            created_at=now,
            updated_at=now,
            secret_fields=frozenset(),
        )
        # The app's lifespan already runs in the rig: uvicorn only serves it.
        keep_alive_s = RELAY_KEEPALIVE_EXPIRY_S + 1.0  # only just longer than the till's
        async with served_behind_late_close(rig.app, keep_alive_s, lifespan="off") as (_, hop):
            till = TillCredentials(
                shop_id=enrolment["shop_id"],
                till_id=enrolment["till_id"],
                relay_url=hop.base_url,
                till_key=Secret(enrolment["till_key"]),
                active_callback_kid=enrolment["callback_kid"],
                callback_secrets={enrolment["callback_kid"]: Secret(enrolment["callback_secret"])},
            )
            gateway = BrokerGateway(shop, till, hop.base_url, timeout=httpx.Timeout(10.0))
            try:
                await gateway.prepare()
                await hop.wait_server_closed()
                order = PushOrder(100, unique_phone(), "KAS1", "SmartDuka", callback_url(enrolment))
                accepted = await gateway.push(order)
            finally:
                await gateway.aclose()
        assert accepted.checkout_request_id.startswith("ws_CO_")
        assert hop.lost == 0
        assert hop.connections == 2
        assert rig.push_count() == 1
