"""Simulator logic in process on a ManualClock, so time-dependent rules are exact: spike arrest,
quota, prompt expiry, timestamp skew, code 17's window, and arbitrary bodies never crashing it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import unique_phone
from tests.simulator.conftest import InProcess
from tests.simulator.support import PUSH, CallbackReceiver, Daraja, Shop, register_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["errorCode"], body["errorMessage"]


async def client_for_new_shop(inproc: InProcess, **settings: Any) -> Daraja:
    return Daraja(inproc.http, await register_shop(inproc.control, settings=settings))


async def test_spike_arrest_counts_pushes_and_queries_per_shortcode(
    inproc: InProcess, receiver: CallbackReceiver
) -> None:
    daraja = await client_for_new_shop(inproc, spike_arrest_per_s=3)
    neighbour = await client_for_new_shop(inproc)
    checkout_id = await daraja.push_ok(unique_phone(), receiver.url())
    await daraja.push_ok(unique_phone(), receiver.url())
    assert (await daraja.query(checkout_id)).status_code == 500  # pending, but counted
    phone = unique_phone()
    refused = await daraja.push(phone, receiver.url())
    assert error_of(refused) == (500, "500.003.02", "Error Occurred: Spike Arrest Violation")
    assert await inproc.control.transactions(phone=phone) == []
    await neighbour.push_ok(unique_phone(), receiver.url())  # another shortcode is not throttled
    inproc.clock.advance(1.0)
    await daraja.push_ok(phone, receiver.url())


async def test_quota_violation_until_the_window_passes(
    inproc: InProcess, receiver: CallbackReceiver
) -> None:
    daraja = await client_for_new_shop(inproc, quota_limit=2, quota_window_s=60)
    await daraja.push_ok(unique_phone(), receiver.url())
    await daraja.push_ok(unique_phone(), receiver.url())
    assert error_of(await daraja.push(unique_phone(), receiver.url())) == (
        500,
        "500.003.03",
        "Quota Violation",
    )
    await inproc.control.advance_clock(59)
    assert (await daraja.push(unique_phone(), receiver.url())).status_code == 500
    await inproc.control.advance_clock(1)
    await daraja.push_ok(unique_phone(), receiver.url())


async def test_unanswered_prompt_locks_the_phone_until_it_expires(
    inproc: InProcess, receiver: CallbackReceiver
) -> None:
    daraja = await client_for_new_shop(inproc, prompt_timeout_s=45)
    phone = unique_phone()
    await inproc.control.set_phone_scenario(phone, unanswered=True)
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url, amount=10)
    await inproc.control.advance_clock(44.9)
    assert error_of(await daraja.push(phone, receiver.url(), amount=11))[2].startswith(
        "Unable to lock"
    )
    assert receiver.at(url) == []
    await inproc.control.advance_clock(0.1)
    [received] = receiver.at(url)
    assert received.json()["Body"]["stkCallback"]["ResultCode"] == 1037
    assert (await daraja.query(checkout_id)).json()["ResultCode"] == "1037"
    await daraja.push_ok(phone, receiver.url(), amount=11)


async def test_rule_17_window_is_exactly_two_minutes_of_simulator_time(
    inproc: InProcess, receiver: CallbackReceiver
) -> None:
    daraja = await client_for_new_shop(inproc)
    phone = unique_phone()
    codes = []
    for wait in (0, 2, 117.9, 0.2):
        await inproc.control.advance_clock(wait or 0.001)
        url = receiver.url()
        await daraja.push_ok(phone, url, amount=500)
        await inproc.control.advance_clock(1.5)
        [received] = receiver.at(url)
        codes.append(received.json()["Body"]["stkCallback"]["ResultCode"])
    # Pushes at 0, 3.5, 122.9 and 124.6 s: the window runs from the last push that prompted,
    # so the rule-limited one at 3.5 s does not restart it.
    assert codes == [0, 17, 0, 17]


async def test_timestamp_skew_check_is_optional(
    inproc: InProcess, receiver: CallbackReceiver
) -> None:
    lenient = await client_for_new_shop(inproc)
    await lenient.push_ok(unique_phone(), receiver.url())  # 2026-11-26 vs a 2026-01-15 clock
    strict = await client_for_new_shop(inproc, max_timestamp_skew_s=300)
    response = await strict.push(unique_phone(), receiver.url())
    assert error_of(response) == (400, "400.002.02", "Bad Request - Invalid Timestamp")


async def test_global_settings_patch_and_reset(inproc: InProcess) -> None:
    control = inproc.control
    changed = await control.update_settings(callback_delay_s=7, expires_in_type="number")
    assert (changed.callback_delay_s, changed.expires_in_type.value) == (7, "number")
    assert (await control.settings()).callback_delay_s == 7
    restored = await control.reset_settings()
    assert (restored.callback_delay_s, restored.expires_in_type.value) == (1.5, "string")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "BusinessShortCode",
    "Password",
    "Timestamp",
    "TransactionType",
    "Amount",
    "PartyA",
    "PartyB",
    "PhoneNumber",
    "CallBackURL",
    "AccountReference",
    "TransactionDesc",
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=4))
async def test_arbitrary_field_values_get_a_daraja_answer(
    inproc: InProcess, changes: dict[str, Any]
) -> None:
    shop = Shop(
        "174379",
        "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
        "sim-demo-consumer-key",
        "sim-demo-consumer-secret",
    )
    daraja = Daraja(inproc.http, shop)
    body = shop.push_body(unique_phone(), "http://127.0.0.1:9/cb", **changes)
    response = await inproc.http.post(
        PUSH,
        content=json.dumps(body).encode(),
        headers={**await daraja.bearer(), "Content-Type": "application/json"},
    )
    answer = response.json()
    if response.status_code == 200:
        assert answer["ResponseCode"] == "0"
    else:
        assert response.status_code in (400, 500)
        assert set(answer) == {"requestId", "errorCode", "errorMessage"}
        if response.status_code == 400:
            field = answer["errorMessage"].removeprefix("Bad Request - Invalid ")
            assert field in changes
