"""DarajaClient against the real simulator process over loopback (and a raw loopback server for
network failures the simulator cannot produce)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from smartduka_tui.config import DarajaSettings, Settings
from smartduka_tui.mpesa.client import DarajaClient, QueryStatus
from smartduka_tui.mpesa.errors import (
    AuthenticationFailed,
    DarajaUnavailable,
    PushOutcomeUnknown,
    PushRefused,
    QueryNoAnswer,
    QueryRefused,
)
from smartduka_tui.mpesa.models import StkPushRequest
from smartduka_tui.mpesa.requests import DarajaCredentials, MerchantConfig, build_stk_push
from smartduka_tui.mpesa.result_codes import (
    AUTHENTICATION_FAILED,
    CONNECTION_FAILED,
    Outcome,
)
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import PushAnomaly, QueryAnomaly
from tests.conftest import unique_phone
from tests.mpesa.support import (
    CALLBACK_URL,
    OAUTH_PATH,
    PUSH_PATH,
    QUERY_PATH,
    RawDaraja,
    RecordingClock,
    SimShop,
    closed_loopback_port,
    drive,
    log_marker,
    logged_since,
    register_shop,
)
from tests.support.processes import ServerProcess


@pytest_asyncio.fixture
async def control(simulator: ServerProcess) -> AsyncIterator[SimulatorControl]:
    async with SimulatorControl(simulator.base_url) as client:
        yield client


@pytest_asyncio.fixture
async def shop(control: SimulatorControl) -> SimShop:
    return await register_shop(control)


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest_asyncio.fixture
async def client(simulator: ServerProcess, clock: RecordingClock) -> AsyncIterator[DarajaClient]:
    async with DarajaClient(simulator.base_url, clock, rng=random.Random(7)) as daraja:
        yield daraja


def push_request(
    merchant: MerchantConfig, clock: RecordingClock, phone: str, amount: int = 10
) -> StkPushRequest:
    return build_stk_push(
        merchant,
        clock=clock,
        amount=amount,
        phone=phone,
        callback_url=CALLBACK_URL,
        account_reference="S1",
        transaction_desc="Sale S1",
    )


# ---------------------------------------------------------------- push accepted, tokens


async def test_push_is_accepted(
    client: DarajaClient, shop: SimShop, clock: RecordingClock, simulator: ServerProcess
) -> None:
    phone = unique_phone()
    accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    assert accepted.accepted and accepted.checkout_request_id.startswith("ws_CO_")
    (logged,) = await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=phone)
    assert logged.status == 200
    assert logged.authorization == "Bearer <redacted>"


async def test_till_push_is_accepted(
    client: DarajaClient, control: SimulatorControl, clock: RecordingClock
) -> None:
    till = await register_shop(control, till=True)
    accepted = await client.stk_push(
        till.merchant, push_request(till.merchant, clock, unique_phone())
    )
    assert accepted.accepted


async def test_token_is_cached_per_credential_set(
    client: DarajaClient, shop: SimShop, control: SimulatorControl, simulator: ServerProcess
) -> None:
    other = await register_shop(control)
    since = await log_marker(simulator.base_url)
    first = await client.get_token(shop.merchant)
    again = await client.get_token(shop.merchant.credentials)
    theirs = await client.get_token(other.merchant)
    assert first is again
    assert theirs.value.get_secret_value() != first.value.get_secret_value()
    assert len(await logged_since(simulator.base_url, since, path=OAUTH_PATH)) == 2


async def test_concurrent_callers_share_one_refresh(
    client: DarajaClient, shop: SimShop, simulator: ServerProcess
) -> None:
    since = await log_marker(simulator.base_url)
    tokens = await asyncio.gather(*(client.get_token(shop.merchant) for _ in range(10)))
    assert len({id(token) for token in tokens}) == 1
    assert len(await logged_since(simulator.base_url, since, path=OAUTH_PATH)) == 1


async def test_token_is_refreshed_before_it_expires(
    simulator: ServerProcess, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    await control.set_app(shop.consumer_key, shop.consumer_secret, token_lifetime_s=3600)
    async with DarajaClient(simulator.base_url, clock, token_refresh_margin_s=120) as client:
        since = await log_marker(simulator.base_url)
        first = await client.get_token(shop.merchant)
        assert first.expires_in == 3599
        clock.advance(3000)
        assert await client.get_token(shop.merchant) is first
        clock.advance(500)  # 3500 s: inside the 120 s margin before 3599
        second = await client.get_token(shop.merchant)
        assert second is not first
        assert second.value.get_secret_value() != first.value.get_secret_value()
        assert len(await logged_since(simulator.base_url, since, path=OAUTH_PATH)) == 2


async def test_expired_token_is_replaced_after_the_simulator_clock_moves(
    simulator: ServerProcess, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    """Both clocks pass the token's hour: the next call mints a new one and works."""
    await control.set_app(shop.consumer_key, shop.consumer_secret, token_lifetime_s=60)
    async with DarajaClient(simulator.base_url, clock) as client:
        first = await client.get_token(shop.merchant)
        await control.advance_clock(61)
        clock.advance(61)
        phone = unique_phone()
        since = await log_marker(simulator.base_url)
        accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
        assert accepted.accepted
        assert (await client.get_token(shop.merchant)) is not first
        logged = await logged_since(simulator.base_url, since)
        assert [e.path for e in logged] == [OAUTH_PATH, PUSH_PATH]


async def test_revoked_token_is_refreshed_once_and_the_push_tried_again(
    simulator: ServerProcess, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    await control.set_app(shop.consumer_key, shop.consumer_secret, revoke_old_token=True)
    async with (
        DarajaClient(simulator.base_url, clock) as till_a,
        DarajaClient(simulator.base_url, clock) as till_b,
    ):
        await till_a.get_token(shop.merchant)
        await till_b.check_credentials(shop.merchant)  # revokes till_a's token
        phone = unique_phone()
        accepted = await till_a.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
        assert accepted.accepted
        pushes = await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=phone)
        assert [(e.status, e.error_code) for e in pushes] == [(404, "404.001.03"), (200, None)]


async def test_revoked_token_is_refreshed_once_for_a_query(
    simulator: ServerProcess, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    await control.set_app(shop.consumer_key, shop.consumer_secret, revoke_old_token=True)
    async with (
        DarajaClient(simulator.base_url, clock) as till_a,
        DarajaClient(simulator.base_url, clock) as till_b,
    ):
        phone = unique_phone()
        accepted = await till_a.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
        await till_b.check_credentials(shop.merchant)
        result = await till_a.stk_query(shop.merchant, shop.merchant, accepted.checkout_request_id)
        assert result.status is QueryStatus.PENDING
        assert clock.slept == []  # a token refresh is not a busy signal: no backoff


async def test_wrong_secret_is_authentication_failed(
    client: DarajaClient, shop: SimShop, clock: RecordingClock, simulator: ServerProcess
) -> None:
    wrong = DarajaCredentials(consumer_key=shop.consumer_key, consumer_secret="not-the-secret")
    with pytest.raises(AuthenticationFailed) as caught:
        await client.check_credentials(wrong)
    assert caught.value.http_status == 400
    assert caught.value.info is AUTHENTICATION_FAILED
    assert "invalid credentials" in str(caught.value)
    phone = unique_phone()
    with pytest.raises(PushRefused) as refused:
        await client.stk_push(wrong, push_request(shop.merchant, clock, phone))
    assert refused.value.info is AUTHENTICATION_FAILED
    assert isinstance(refused.value.__cause__, AuthenticationFailed)
    assert await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=phone) == []


async def test_check_credentials_mints_a_new_token(client: DarajaClient, shop: SimShop) -> None:
    cached = await client.get_token(shop.merchant)
    verified = await client.check_credentials(shop.merchant)
    assert verified is not cached
    assert await client.get_token(shop.merchant) is verified


# ---------------------------------------------------------------- definite push refusals


async def refused_push(
    client: DarajaClient, merchant: MerchantConfig, request: StkPushRequest
) -> PushRefused:
    with pytest.raises(PushRefused) as caught:
        await client.stk_push(merchant, request)
    return caught.value


async def test_unknown_shortcode_is_merchant_does_not_exist(
    client: DarajaClient, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    other = await register_shop(control)  # a shortcode this app does not own
    stranger = shop.merchant.model_copy(update={"business_shortcode": other.shortcode})
    error = await refused_push(client, shop.merchant, push_request(stranger, clock, unique_phone()))
    assert (error.http_status, error.error_code) == (500, "500.001.1001")
    assert error.error_message == "Merchant does not exist"
    assert error.info is not None and error.info.outcome is Outcome.FAILED_NEEDS_MANAGER


async def test_wrong_passkey_is_wrong_credentials(
    client: DarajaClient, shop: SimShop, clock: RecordingClock, simulator: ServerProcess
) -> None:
    wrong = shop.merchant.model_copy(update={"passkey": SecretStr("not-the-passkey")})
    phone = unique_phone()
    error = await refused_push(client, wrong, push_request(wrong, clock, phone))
    assert (error.http_status, error.error_code) == (500, "500.001.1001")
    assert error.error_message == "Wrong credentials"
    assert error.info is not None and error.info.outcome is Outcome.FAILED_NEEDS_MANAGER
    assert len(await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=phone)) == 1


async def test_second_prompt_to_a_busy_phone_is_unable_to_lock_subscriber(
    client: DarajaClient, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, callback_delay_s=600)
    await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone, amount=10))
    error = await refused_push(
        client, shop.merchant, push_request(shop.merchant, clock, phone, amount=20)
    )
    assert error.error_code == "500.001.1001"
    assert error.error_message is not None and "Unable to lock subscriber" in error.error_message
    assert error.info is not None and error.info.outcome is Outcome.FAILED_RETRYABLE
    assert error.info.retry_not_before is not None
    assert error.info.retry_not_before.total_seconds() == 60


async def test_spike_arrest_on_push_is_a_definite_refusal_never_retried(
    client: DarajaClient, control: SimulatorControl, clock: RecordingClock, simulator: ServerProcess
) -> None:
    busy = await register_shop(control, spike_arrest_per_s=1)
    first, second = unique_phone(), unique_phone()
    await client.stk_push(busy.merchant, push_request(busy.merchant, clock, first))
    error = await refused_push(client, busy.merchant, push_request(busy.merchant, clock, second))
    assert (error.http_status, error.error_code) == (500, "500.003.02")
    assert error.info is not None and error.info.outcome is Outcome.FAILED_RETRYABLE
    assert len(await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=second)) == 1


async def test_quota_violation_on_push(
    client: DarajaClient, control: SimulatorControl, clock: RecordingClock
) -> None:
    limited = await register_shop(control, quota_limit=1)
    await client.stk_push(limited.merchant, push_request(limited.merchant, clock, unique_phone()))
    error = await refused_push(
        client, limited.merchant, push_request(limited.merchant, clock, unique_phone())
    )
    assert (error.http_status, error.error_code) == (500, "500.003.03")
    assert error.info is not None and error.info.outcome is Outcome.FAILED_NEEDS_MANAGER


async def test_invalid_phone_is_a_400_refusal(
    client: DarajaClient, shop: SimShop, clock: RecordingClock
) -> None:
    good = push_request(shop.merchant, clock, unique_phone())
    bad = good.model_copy(update={"phone_number": "2547", "party_a": "2547"})
    error = await refused_push(client, shop.merchant, bad)
    assert (error.http_status, error.error_code) == (400, "400.002.02")
    assert error.error_message == "Bad Request - Invalid PartyA"
    assert error.info is not None and error.info.known


async def test_connection_refused_is_definite(clock: RecordingClock, shop: SimShop) -> None:
    async with DarajaClient(f"http://127.0.0.1:{closed_loopback_port()}", clock) as client:
        error = await refused_push(
            client, shop.merchant, push_request(shop.merchant, clock, unique_phone())
        )
    assert error.info is CONNECTION_FAILED


async def test_push_connection_refused_after_a_token_is_definite(
    clock: RecordingClock, shop: SimShop
) -> None:
    edge = await RawDaraja(close_after_token=True).start()
    try:
        async with DarajaClient(edge.base_url, clock) as client:
            error = await refused_push(
                client, shop.merchant, push_request(shop.merchant, clock, unique_phone())
            )
    finally:
        await edge.stop()
    assert error.info is CONNECTION_FAILED
    assert "could not connect" in str(error)
    assert edge.seen == [OAUTH_PATH]


# ---------------------------------------------------------------- unknown push outcomes


async def test_push_read_timeout_is_unknown_and_sent_exactly_once(
    simulator: ServerProcess, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, push_anomaly=PushAnomaly.HOLD, push_hold_s=30)
    timeout = httpx.Timeout(connect=5, read=0.5, write=5, pool=5)
    async with DarajaClient(simulator.base_url, clock, timeout=timeout) as client:
        with pytest.raises(PushOutcomeUnknown) as caught:
            await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    assert "ReadTimeout" in str(caught.value)
    assert caught.value.info is not None and caught.value.info.outcome is Outcome.PENDING
    assert len(await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=phone)) == 1
    (transaction,) = await control.transactions(phone=phone)  # it did start on Daraja's side
    assert transaction.amount == 10


async def test_push_gateway_error_without_envelope_is_unknown(
    client: DarajaClient,
    shop: SimShop,
    control: SimulatorControl,
    clock: RecordingClock,
    simulator: ServerProcess,
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, push_anomaly=PushAnomaly.GATEWAY_ERROR)
    with pytest.raises(PushOutcomeUnknown) as caught:
        await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    assert caught.value.http_status == 503
    assert len(await logged_since(simulator.base_url, 0, path=PUSH_PATH, phone=phone)) == 1


async def test_connection_reset_after_sending_is_unknown(
    clock: RecordingClock, shop: SimShop
) -> None:
    edge = await RawDaraja(push_mode="reset").start()
    try:
        async with DarajaClient(edge.base_url, clock) as client:
            with pytest.raises(PushOutcomeUnknown):
                await client.stk_push(
                    shop.merchant, push_request(shop.merchant, clock, unique_phone())
                )
    finally:
        await edge.stop()
    assert edge.seen == [OAUTH_PATH, PUSH_PATH]  # sent once, never again


# ---------------------------------------------------------------- STK query


async def test_query_pending_then_resolved(
    client: DarajaClient, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, callback_delay_s=30)
    accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    checkout = accepted.checkout_request_id
    pending = await client.stk_query(shop.merchant, shop.merchant, checkout)
    assert pending.pending and pending.info.outcome is Outcome.PENDING
    assert pending.checkout_request_id == checkout
    await control.advance_clock(31)
    resolved = await client.stk_query(shop.merchant, shop.merchant, checkout)
    assert resolved.status is QueryStatus.RESOLVED
    assert resolved.result_code == 0 and resolved.code_key == "0"
    assert resolved.info.outcome is Outcome.PAID
    assert resolved.response is not None and resolved.response.result_code_raw == "0"
    assert clock.slept == []


async def test_query_reports_a_failure_code(
    client: DarajaClient, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, result_code=1032, callback_delay_s=0)
    accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    result = await client.stk_query(shop.merchant, shop.merchant, accepted.checkout_request_id)
    assert (result.status, result.result_code) == (QueryStatus.RESOLVED, 1032)
    assert result.info.outcome is Outcome.FAILED_RETRYABLE and result.info.final


async def test_query_backs_off_on_spike_arrest_then_answers(
    client: DarajaClient,
    shop: SimShop,
    control: SimulatorControl,
    clock: RecordingClock,
    simulator: ServerProcess,
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(
        phone, callback_delay_s=0, query_anomaly=QueryAnomaly.SPIKE_ARREST, query_anomaly_times=2
    )
    accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    checkout = accepted.checkout_request_id
    result = await drive(clock, client.stk_query(shop.merchant, shop.merchant, checkout))
    assert result.status is QueryStatus.RESOLVED and result.result_code == 0
    assert len(clock.slept) == 2
    assert 0.5 <= clock.slept[0] <= 1.0 and 1.0 <= clock.slept[1] <= 2.0  # doubling, jittered
    queries = await logged_since(simulator.base_url, 0, path=QUERY_PATH, phone=phone)
    assert [e.error_code for e in queries] == ["500.003.02", "500.003.02", None]


async def test_query_gives_up_after_bounded_retries(
    client: DarajaClient,
    shop: SimShop,
    control: SimulatorControl,
    clock: RecordingClock,
    simulator: ServerProcess,
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, callback_delay_s=0, query_anomaly=QueryAnomaly.QUOTA)
    accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    with pytest.raises(QueryNoAnswer) as caught:
        await drive(
            clock, client.stk_query(shop.merchant, shop.merchant, accepted.checkout_request_id)
        )
    assert caught.value.error_code == "500.003.03"
    assert caught.value.info is not None and caught.value.info.code == "no_answer"
    assert len(clock.slept) == client.query_retries == 3
    assert clock.slept[2] >= 2.0
    queries = await logged_since(simulator.base_url, 0, path=QUERY_PATH, phone=phone)
    assert len(queries) == 4


async def test_query_retries_a_gateway_error(
    client: DarajaClient, shop: SimShop, control: SimulatorControl, clock: RecordingClock
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(
        phone,
        result_code=1037,
        callback_delay_s=0,
        query_anomaly=QueryAnomaly.GATEWAY_ERROR,
        query_anomaly_times=1,
    )
    accepted = await client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone))
    result = await drive(
        clock, client.stk_query(shop.merchant, shop.merchant, accepted.checkout_request_id)
    )
    assert result.result_code == 1037 and len(clock.slept) == 1


async def test_query_for_an_unknown_checkout_is_refused_without_retry(
    client: DarajaClient, shop: SimShop, clock: RecordingClock
) -> None:
    with pytest.raises(QueryRefused) as caught:
        await client.stk_query(shop.merchant, shop.merchant, "ws_CO_000000000000000000000000")
    assert (caught.value.http_status, caught.value.error_code) == (400, "400.002.02")
    assert clock.slept == []


async def test_query_with_refused_credentials_raises_authentication_failed(
    client: DarajaClient, shop: SimShop
) -> None:
    wrong = DarajaCredentials(consumer_key=shop.consumer_key, consumer_secret="wrong")
    with pytest.raises(AuthenticationFailed):
        await client.stk_query(wrong, shop.merchant, "ws_CO_1")


async def test_query_when_daraja_is_unreachable_is_no_answer(
    clock: RecordingClock, shop: SimShop
) -> None:
    async with DarajaClient(f"http://127.0.0.1:{closed_loopback_port()}", clock) as client:
        with pytest.raises(QueryNoAnswer) as caught:
            await drive(clock, client.stk_query(shop.merchant, shop.merchant, "ws_CO_1"))
    assert "could not connect" in str(caught.value)
    assert len(clock.slept) == 3


async def test_token_fetch_unreachable_is_daraja_unavailable(
    clock: RecordingClock, shop: SimShop
) -> None:
    async with DarajaClient(f"http://127.0.0.1:{closed_loopback_port()}", clock) as client:
        with pytest.raises(DarajaUnavailable):
            await client.check_credentials(shop.merchant)


# ---------------------------------------------------------------- secrets never leak


async def test_no_secret_or_derivative_reaches_logs_errors_or_reprs(
    simulator: ServerProcess,
    control: SimulatorControl,
    clock: RecordingClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop = await register_shop(control, spike_arrest_per_s=1)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    phone, busy_phone = unique_phone(), unique_phone()
    await control.set_phone_scenario(
        busy_phone, query_anomaly=QueryAnomaly.SPIKE_ARREST, callback_delay_s=0
    )
    async with DarajaClient(simulator.base_url, clock) as client:
        token = await client.get_token(shop.merchant)
        request = push_request(shop.merchant, clock, busy_phone)
        accepted = await client.stk_push(shop.merchant, request)
        seen += [repr(client), repr(token), str(token), repr(request), repr(accepted)]
        for failing in (
            client.stk_push(shop.merchant, push_request(shop.merchant, clock, phone)),
            drive(
                clock, client.stk_query(shop.merchant, shop.merchant, accepted.checkout_request_id)
            ),
            client.check_credentials(
                DarajaCredentials(
                    consumer_key=shop.consumer_key, consumer_secret="x" + shop.consumer_secret
                )
            ),
        ):
            try:
                await failing
            except Exception as error:  # every failure's text and repr is checked below
                seen += [str(error), repr(error)]
    secrets_and_derivatives = [
        shop.consumer_key,
        shop.consumer_secret,
        shop.passkey,
        token.value.get_secret_value(),
        request.password.get_secret_value(),
        shop.merchant.credentials.basic_authorization().split()[1],
        CALLBACK_URL.split("/hooks/")[1],
    ]
    everything = "\n".join([*seen, caplog.text, *(str(r.args) for r in caplog.records)])
    assert "STK push" in caplog.text  # the client did log
    for secret in secrets_and_derivatives:
        assert secret not in everything


async def test_client_from_settings_reaches_the_configured_base_url(
    simulator: ServerProcess, shop: SimShop, clock: RecordingClock
) -> None:
    settings = Settings(
        daraja=DarajaSettings(base_url=simulator.base_url + "/", read_timeout_s=7.5)
    )
    async with DarajaClient.from_settings(settings, clock) as client:
        assert client.base_url == simulator.base_url
        token = await client.check_credentials(shop.merchant)
    assert token.expires_in == 3599
