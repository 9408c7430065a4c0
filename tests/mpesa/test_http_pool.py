"""Keep-alive against a real uvicorn server: a connection the server closed while idle never turns
a good request into a failure, and a push that may have left is never sent twice.

The race of production (the server closes an idle connection just as the client sends on it) is
made deterministic by `LateClose`, a loopback hop in front of the real simulator served by
uvicorn in this process: when uvicorn closes an idle connection, the client is not told (as when
the close is still on its way), and what it sends next is dropped and its connection reset.
Tests wait on uvicorn having closed the connection, never on a guessed time.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from smartduka_tui.mpesa.client import DarajaClient, QueryStatus
from smartduka_tui.mpesa.errors import PushOutcomeUnknown
from smartduka_tui.mpesa.http_pool import (
    DARAJA_KEEPALIVE_EXPIRY_S,
    RELAY_KEEPALIVE_EXPIRY_S,
    Exchange,
)
from smartduka_tui.mpesa.models import StkPushRequest
from smartduka_tui.mpesa.requests import build_stk_push
from smartduka_tui.relay_client import HEARTBEAT_S
from smartduka_tui.serving import SERVER_KEEP_ALIVE_S
from smartduka_tui.simulator.app import create_app
from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.mpesa.support import (
    CALLBACK_URL,
    PUSH_PATH,
    RecordingClock,
    SimShop,
    drive,
    logged_since,
    register_shop,
)
from tests.support.late_close import LateClose, served_behind_late_close


@contextlib.asynccontextmanager
async def simulator_behind_late_close(keep_alive_s: float) -> AsyncIterator[tuple[str, LateClose]]:
    """The real simulator on uvicorn (idle timeout `keep_alive_s`) and a LateClose before it."""
    async with served_behind_late_close(create_app(), keep_alive_s) as served:
        yield served


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest_asyncio.fixture
async def short_server() -> AsyncIterator[tuple[str, LateClose]]:
    """A server that closes idle connections sooner than our Daraja clients drop them (1 s):
    Daraja's own idle timeout is not published."""
    async with simulator_behind_late_close(1.0) as served:
        yield served


async def _shop(direct_url: str) -> SimShop:
    async with SimulatorControl(direct_url) as control:
        return await register_shop(control)


def _push(shop: SimShop, clock: RecordingClock, phone: str) -> StkPushRequest:
    return build_stk_push(
        shop.merchant,
        clock=clock,
        amount=10,
        phone=phone,
        callback_url=CALLBACK_URL,
        account_reference="S1",
        transaction_desc="Sale S1",
    )


def test_clients_drop_idle_connections_before_our_servers_do() -> None:
    assert DARAJA_KEEPALIVE_EXPIRY_S < SERVER_KEEP_ALIVE_S
    assert RELAY_KEEPALIVE_EXPIRY_S < SERVER_KEEP_ALIVE_S
    # ... and the till's heartbeat beside a long-poll finds its connection still kept.
    assert HEARTBEAT_S < RELAY_KEEPALIVE_EXPIRY_S


async def traced(*events: str) -> Exchange:
    exchange = Exchange()
    for name in events:
        await exchange(name, {})
    return exchange


SENT = ("http11.send_request_headers.started", "http11.send_request_headers.complete")


async def test_what_httpcore_reports_decides_what_may_go_again() -> None:
    fresh = await traced("connection.connect_tcp.started", *SENT)
    reused = await traced(*SENT)
    answered = await traced(*SENT, "http11.receive_response_headers.complete")
    unwritten = await traced(
        "http11.send_request_headers.started", "http11.send_request_headers.failed"
    )
    untraced = await traced()  # an in-process transport reports nothing
    assert [e.stale_connection() for e in (fresh, reused, answered, unwritten, untraced)] == [
        False,
        True,
        False,
        True,
        False,
    ]
    assert [e.never_sent() for e in (fresh, reused, answered, unwritten, untraced)] == [
        False,
        False,
        False,
        True,
        False,
    ]


async def test_push_after_the_server_closed_the_idle_connection_is_accepted(
    clock: RecordingClock,
) -> None:
    # A server that keeps idle connections just longer than our clients do: by the time it has
    # closed one, the client has dropped it, so the push goes out on a new connection.
    async with simulator_behind_late_close(DARAJA_KEEPALIVE_EXPIRY_S + 1.0) as (direct, hop):
        shop = await _shop(direct)
        async with DarajaClient(hop.base_url, clock, rng=random.Random(7)) as client:
            await client.get_token(shop.merchant)
            await hop.wait_server_closed()
            phone = unique_phone()
            request = _push(shop, clock, phone)
            accepted = await client.stk_push(shop.merchant, request)
        assert accepted.accepted
        assert hop.lost == 0
        assert hop.connections == 2
        assert len(await logged_since(direct, 0, path=PUSH_PATH, phone=phone)) == 1


async def test_token_and_query_on_a_closed_pooled_connection_go_again_at_once(
    short_server: tuple[str, LateClose], clock: RecordingClock
) -> None:
    direct, hop = short_server
    shop = await _shop(direct)
    async with DarajaClient(hop.base_url, clock, rng=random.Random(7)) as client:
        await client.get_token(shop.merchant)
        await hop.wait_server_closed()
        await client.check_credentials(shop.merchant)  # an OAuth GET on the closed connection
        assert hop.lost == 1
        request = _push(shop, clock, unique_phone())
        accepted = await client.stk_push(shop.merchant, request)
        await hop.wait_server_closed()
        answer = await drive(
            clock, client.stk_query(shop.merchant, shop.merchant, accepted.checkout_request_id)
        )
    assert answer.status in (QueryStatus.PENDING, QueryStatus.RESOLVED)
    assert hop.lost == 2
    assert clock.slept == []  # sent again at once, not after a backoff


async def test_push_that_may_have_left_is_not_sent_again(
    short_server: tuple[str, LateClose], clock: RecordingClock
) -> None:
    direct, hop = short_server
    shop = await _shop(direct)
    phone = unique_phone()
    async with DarajaClient(hop.base_url, clock, rng=random.Random(7)) as client:
        await client.get_token(shop.merchant)
        await hop.wait_server_closed()
        request = _push(shop, clock, phone)
        with pytest.raises(PushOutcomeUnknown):
            await client.stk_push(shop.merchant, request)
    # Its bytes left this machine, so only the simulator could say; the client never guesses.
    assert hop.lost == 1
    assert hop.connections == 1
    assert await logged_since(direct, 0, path=PUSH_PATH, phone=phone) == []
