"""Daraja's reachability as the till learns it: from its real calls and a light probe, never from
minting an OAuth token; for a platform shop, from the relay broker's own view."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.connectivity import (
    ANSWER_WITHIN_S,
    ConnectionState,
    ConnectivityMonitor,
    DarajaProbe,
    Reachability,
    daraja_answers,
)
from smartduka_tui.payments.api import PaymentRefused, RefusalReason
from smartduka_tui.payments.broker_gateway import BrokerGateway
from smartduka_tui.relay_client import HEARTBEAT_S, RelayClient, RelayUnavailable
from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.integration.support import Platform, RelayHandle
from tests.integration.test_pay_e2e import direct_till, platform_till
from tests.payments.proxy import TcpProxy


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hung_server() -> Iterator[str]:
    """A socket that listens and never accepts: the kernel completes each handshake from its
    backlog, as it does for a stopped (SIGSTOP) Daraja, and nothing is ever answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def parked(clock: ManualClock) -> None:
    """Let the loop run until something sleeps on the clock (bounded by passes, not time)."""
    for _ in range(2000):
        if clock.sleepers:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("nothing ever waited on the clock")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_probe_asks_for_no_token_and_flips_the_signal(
    sim: SimulatorControl,
) -> None:
    monitor = ConnectivityMonitor(SystemClock(), relay_used=False)
    seen: list[ConnectionState] = []
    monitor.subscribe(seen.append)
    before = await sim.requests()
    last_seq = before[-1].seq if before else 0
    up = DarajaProbe(monitor, SystemClock(), lambda: daraja_answers(sim.base_url))
    assert await up.probe_once() is True
    assert monitor.current().daraja is Reachability.REACHABLE
    asked = [(r.method, r.path) for r in await sim.requests(since=last_seq)]
    assert asked == [("HEAD", "/")], "a bare HEAD: no OAuth token minted"
    down = DarajaProbe(monitor, SystemClock(), lambda: daraja_answers(closed_port_url()))
    assert await down.probe_once() is False
    assert await down.probe_once() is False
    assert [s.daraja for s in seen] == [Reachability.REACHABLE, Reachability.UNREACHABLE]
    assert all(s.relay is Reachability.NOT_USED for s in seen)


async def test_a_hung_daraja_turns_the_probe_amber_within_ten_seconds() -> None:
    """Issue case 8: a TCP connect to a stopped Daraja succeeds, so the old probe kept the light
    green. Now an unanswered probe shows it not answering after ANSWER_WITHIN_S on the clock."""
    clock = ManualClock()
    monitor = ConnectivityMonitor(clock, relay_used=False)
    monitor.daraja_reachable(True)
    with hung_server() as url:
        probe = DarajaProbe(monitor, clock, lambda: daraja_answers(url))
        checking = asyncio.create_task(probe.probe_once())
        await parked(clock)
        clock.advance(ANSWER_WITHIN_S - 0.5)
        await settle()
        assert monitor.current().daraja is Reachability.REACHABLE
        clock.advance(0.5)
        await settle()
        assert ANSWER_WITHIN_S <= 10
        assert monitor.current().daraja is Reachability.NOT_ANSWERING
        assert monitor.current().daraja_down, "pushes are refused while it is silent"
        checking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checking
    assert monitor.current().daraja is Reachability.NOT_ANSWERING


async def test_a_real_call_to_a_hung_daraja_turns_the_light_amber(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """Issue case 8: a push to a stopped Daraja waited 20 s with the light green. The call is
    watched on the injected clock: silent for ANSWER_WITHIN_S, the light is amber."""
    till = await direct_till(tmp_path, relay, sim)
    clock = ManualClock()
    with hung_server() as url:
        relay_url = till.settings().relay.url or str(till.enrolment["relay_url"])
        async with till.opened(clock=clock, no_relay_url=relay_url, daraja={"base_url": url}) as t:
            engine, link = t.engine, t.link
            pushing = asyncio.create_task(engine.start_payment("HUNG1", 10, unique_phone()))
            await parked(clock)
            assert link.connection.current().daraja is Reachability.UNKNOWN
            clock.advance(ANSWER_WITHIN_S)
            await settle()
            assert link.connection.current().daraja is Reachability.NOT_ANSWERING
            assert not pushing.done(), "the call itself goes on to its own end"
            pushing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pushing


async def test_a_hung_relay_turns_its_light_amber_within_ten_seconds(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """Issue case 8: a stopped relay accepted the feed's connection and the light stayed as it
    was. A quick feed read silent for ANSWER_WITHIN_S on the clock shows it not answering."""
    till = await direct_till(tmp_path, relay, sim)
    clock = ManualClock()
    with hung_server() as url:
        async with till.opened(clock=clock, relay={"url": url}) as t:
            link = t.link
            await parked(clock)
            clock.advance(ANSWER_WITHIN_S - 0.5)
            await settle()
            assert link.connection.current().relay is Reachability.UNKNOWN
            clock.advance(0.5)
            await settle()
            assert link.connection.current().relay is Reachability.NOT_ANSWERING
            assert link.connection.current().relay_down


async def test_a_relay_that_hangs_during_a_long_poll_turns_amber_within_ten_seconds(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """Issue #12: a relay stopped while the feed's long-poll was open was noticed only after
    the poll's wait plus 5 s. The heartbeat beside the long-poll shows it within 10 s."""
    till = await direct_till(tmp_path, relay, sim)
    clock = ManualClock()
    proxy = await TcpProxy(relay.url).start()
    try:
        async with till.opened(clock=clock, relay={"url": proxy.url}) as t:
            link = t.link
            for _ in range(2000):  # the quick read answered, and the long-poll is open
                if link.connection.current().relay is Reachability.REACHABLE and clock.sleepers:
                    break
                await asyncio.sleep(0.005)
            assert link.connection.current().relay is Reachability.REACHABLE
            proxy.hang()
            parked_before = clock.sleepers  # the long-poll's alarm and the heartbeat's sleep
            clock.advance(HEARTBEAT_S)
            # The heartbeat woke and its HEAD is out, unanswered, watched on the clock.
            await sleepers_back_to(clock, parked_before)
            clock.advance(ANSWER_WITHIN_S - 0.5)
            await settle()
            assert link.connection.current().relay is Reachability.REACHABLE
            clock.advance(0.5)
            await settle()
            assert HEARTBEAT_S + ANSWER_WITHIN_S <= 10
            assert link.connection.current().relay is Reachability.NOT_ANSWERING
            assert link.connection.current().relay_down
    finally:
        await proxy.refuse()


async def sleepers_back_to(clock: ManualClock, count: int) -> None:
    """Let the loop run until `count` sleeps wait on the clock again (bounded by passes)."""
    for _ in range(2000):
        if clock.sleepers >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the woken sleeper never waited on the clock again")


async def test_real_calls_report_daraja_unreachable_before_anything_is_stored(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    async with till.opened(daraja={"base_url": closed_port_url()}) as t:
        engine, link = t.engine, t.link
        with pytest.raises(PaymentRefused) as refused:
            await engine.start_payment("NET1", 10, unique_phone())
        assert refused.value.reason is RefusalReason.DARAJA_UNREACHABLE
        assert link.connection.current().daraja is Reachability.UNREACHABLE
    assert await till.attempts() == []


async def test_a_platform_till_sees_daraja_through_the_broker(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, platform: Platform
) -> None:
    till = await platform_till(tmp_path, relay, sim, "ST")
    async with till.opened(probe_daraja=True) as t:
        assert isinstance(t.daraja, BrokerGateway)
        assert await t.daraja.daraja_status() == "reachable"
        link = t.link
        assert link.probe is not None
        assert await link.probe.probe_once() is True
        assert link.connection.current().daraja is Reachability.REACHABLE
    gone = await platform_till(tmp_path, relay, sim, "SU", name="gone")
    async with gone.opened(probe_daraja=True, relay={"url": closed_port_url()}) as t:
        link = t.link
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
