"""Daraja's reachability as the till learns it: from its real calls and a light probe, never from
minting an OAuth token; for a platform shop, from the relay broker's own view."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from smartduka_tui.clock import SystemClock
from smartduka_tui.connectivity import ConnectivityMonitor, DarajaProbe, tcp_reachable
from smartduka_tui.payments.api import PaymentRefused, RefusalReason
from smartduka_tui.payments.broker_gateway import BrokerGateway
from smartduka_tui.relay_client import RelayClient, RelayUnavailable, till_link
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.ui.connection import ConnectionState, Reachability
from tests.conftest import unique_phone
from tests.integration.support import Platform, RelayHandle
from tests.integration.test_pay_e2e import direct_till, platform_till


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_the_probe_connects_without_sending_a_request_and_flips_the_signal(
    sim: SimulatorControl,
) -> None:
    monitor = ConnectivityMonitor(SystemClock(), relay_used=False)
    seen: list[ConnectionState] = []
    monitor.subscribe(seen.append)
    before = await sim.requests()
    last_seq = before[-1].seq if before else 0
    up = DarajaProbe(monitor, SystemClock(), lambda: tcp_reachable(sim.base_url))
    assert await up.probe_once() is True
    assert monitor.current().daraja is Reachability.REACHABLE
    assert await sim.requests(since=last_seq) == [], "no request, so no OAuth token minted"
    down = DarajaProbe(monitor, SystemClock(), lambda: tcp_reachable(closed_port_url()))
    assert await down.probe_once() is False
    assert await down.probe_once() is False
    assert [s.daraja for s in seen] == [Reachability.REACHABLE, Reachability.UNREACHABLE]
    assert all(s.relay is Reachability.NOT_USED for s in seen)


async def test_real_calls_report_daraja_unreachable_before_anything_is_stored(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    async with (
        till.engine(daraja={"base_url": closed_port_url()}) as engine,
        till_link(engine, engine.settings, probe_daraja=False) as link,
    ):
        with pytest.raises(PaymentRefused) as refused:
            await engine.start_payment("NET1", 10, unique_phone())
        assert refused.value.reason is RefusalReason.DARAJA_UNREACHABLE
        assert link.connection.current().daraja is Reachability.UNREACHABLE
    assert await till.attempts() == []


async def test_a_platform_till_sees_daraja_through_the_broker(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, platform: Platform
) -> None:
    till = await platform_till(tmp_path, relay, sim, "ST")
    async with till.engine() as engine:
        assert isinstance(engine.gateway, BrokerGateway)
        assert await engine.gateway.daraja_status() == "reachable"
        async with till_link(engine, engine.settings, probe_daraja=True) as link:
            assert link.probe is not None
            assert await link.probe.probe_once() is True
            assert link.connection.current().daraja is Reachability.REACHABLE
    gone = await platform_till(tmp_path, relay, sim, "SU", name="gone")
    async with (
        gone.engine(relay={"url": closed_port_url()}) as engine,
        till_link(engine, engine.settings, probe_daraja=True) as link,
    ):
        assert link.probe is not None
        assert await link.probe.probe_once() is False, "no relay, no M-Pesa for this shop"


async def test_a_revoked_till_key_reads_nothing_and_shows_the_relay_as_unreachable(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    assert await relay.cli("till", "revoke", till.till_id) == 0
    async with till.engine() as engine:
        client = RelayClient(engine, engine.store, engine.till, relay.url, SystemClock())
        try:
            with pytest.raises(RelayUnavailable, match="refused this till's key"):
                await client.poll_once()
        finally:
            await client.close()
