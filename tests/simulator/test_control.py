"""The control API: what it lets a test do, and every bad control request answered with a 4xx,
a clear message, and no change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from smartduka_tui.simulator.control import SimulatorControl, SimulatorControlError
from smartduka_tui.simulator.schemas import ShortcodeKind
from tests.conftest import unique_phone
from tests.simulator.conftest import InProcess
from tests.simulator.support import CallbackReceiver, Daraja, register_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def refused(
    http: httpx.AsyncClient, method: str, path: str, status: int, **kwargs: Any
) -> str:
    response = await http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


async def test_bad_scenarios_are_refused_and_the_old_one_stays(
    control: SimulatorControl, http: httpx.AsyncClient
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, result_code=1032)
    path = f"/__sim/phones/{phone}/scenario"
    cases: list[tuple[dict[str, Any] | str, str]] = [
        ({"duplicates": 50}, "duplicates: Input should be less than or equal to 20"),
        ({"colour": "blue"}, "colour: unknown field"),
        (
            {"result_code": True},
            "result_code: Input should be a valid integer or Input should be a valid string",
        ),
        ({"result_code": "has space"}, "result_code: a string result code must be 1-32 letters"),
        ({"unanswered": True, "result_code": 1}, "unanswered prompt always ends with 1037"),
        ({"drop_callback": True, "duplicates": 2}, "drop_callback sends nothing"),
        (
            {"callback_before_response": True, "late_callback_s": 5},
            "both before the push response and late",
        ),
        (
            {"push_anomaly": "explode"},
            "push_anomaly: Input should be 'none', 'hold' or 'gateway_error'",
        ),
        ({"callback_delay_s": -1}, "callback_delay_s: Input should be greater than or equal to 0"),
    ]
    for body, message in cases:
        error = await refused(http, "PUT", path, 422, json=body)
        assert message in error, error
    assert "not valid JSON" in await refused(http, "PUT", path, 400, content=b"{oops")
    assert "JSON object" in await refused(http, "PUT", path, 400, json=[1])
    assert "2547XXXXXXXX" in await refused(
        http, "PUT", "/__sim/phones/0712345678/scenario", 422, json={}
    )
    scenario, source = await control.phone_scenario(phone)
    assert (scenario.result_code, source) == (1032, "scripted")
    await control.clear_phone_scenario(phone)
    assert (await control.phone_scenario(phone))[1] == "default"
    assert (await control.phone_scenario("254700000001"))[1] == "magic"


async def test_bad_clock_advances_change_nothing(
    control: SimulatorControl, http: httpx.AsyncClient
) -> None:
    before = (await control.clock()).offset_s
    for body in ({"seconds": -5}, {"seconds": 0}, {"seconds": "soon"}, {}, {"seconds": 10**9}):
        assert "seconds" in await refused(http, "POST", "/__sim/clock/advance", 422, json=body)
    assert (await control.clock()).offset_s == before


async def test_bad_settings_patches_change_nothing(inproc: InProcess) -> None:
    http = inproc.http
    before = await inproc.control.settings()
    for body, message in (
        ({"callback_delay": 3}, "callback_delay: unknown field"),
        ({"callback_delay_s": -1}, "callback_delay_s: Input should be greater than or equal to 0"),
        ({"expires_in_type": "float"}, "expires_in_type: Input should be 'string' or 'number'"),
        ({"token_lifetime_s": 1, "spike_arrest_per_s": 0}, "token_lifetime_s"),
    ):
        assert message in await refused(http, "PATCH", "/__sim/settings", 422, json=body)
    assert await inproc.control.settings() == before


async def test_bad_registrations_register_nothing(
    control: SimulatorControl, http: httpx.AsyncClient
) -> None:
    shop = await register_shop(control)
    good = {"passkey": "pk", "consumer_key": "k-" + shop.consumer_key, "consumer_secret": "s"}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("PUT", "/__sim/shortcodes/12", good, 422, "shortcode must be 5 to 7 digits"),
        (
            "POST",
            "/__sim/shortcodes",
            {**good, "shortcode": "abcde"},
            422,
            "shortcode must be 5 to 7 digits",
        ),
        ("PUT", "/__sim/shortcodes/7777771", {**good, "shortcode": "7777772"}, 422, "differs"),
        ("POST", "/__sim/shortcodes", {**good, "passkey": ""}, 422, "passkey"),
        (
            "POST",
            "/__sim/shortcodes",
            {**good, "till_numbers": ["5501234"]},
            422,
            "a paybill has no till numbers",
        ),
        (
            "POST",
            "/__sim/shortcodes",
            {**good, "kind": "till", "till_numbers": ["12"]},
            422,
            "till numbers must be 5 to 7 digits",
        ),
        (
            "POST",
            "/__sim/shortcodes",
            {**good, "settings": {"token_lifetime_s": 5}},
            422,
            "app settings belong to PUT /__sim/apps",
        ),
        (
            "POST",
            "/__sim/shortcodes",
            {**good, "settings": {"callback_delay_s": "x"}},
            422,
            "settings: callback_delay_s",
        ),
        (
            "POST",
            "/__sim/shortcodes",
            {**good, "consumer_key": shop.consumer_key},
            409,
            "different consumer secret",
        ),
    ]
    before = {v.shortcode for v in await control.shortcodes()}
    for method, path, body, status, message in cases:
        assert message in await refused(http, method, path, status, json=body), (path, body)
    assert {v.shortcode for v in await control.shortcodes()} == before
    till = await register_shop(control, kind=ShortcodeKind.TILL)
    taken = {**good, "kind": "till", "till_numbers": till.till_numbers}
    assert "belongs to shortcode" in await refused(
        http, "POST", "/__sim/shortcodes", 409, json=taken
    )


async def test_unknown_things_and_wrong_methods(http: httpx.AsyncClient) -> None:
    assert "not registered" in await refused(http, "POST", "/__sim/shortcodes/7654321/reset", 404)
    assert "not registered" in await refused(http, "DELETE", "/__sim/shortcodes/7654321", 404)
    assert "no transaction" in await refused(
        http, "POST", "/__sim/transactions/ws_CO_nope/resolve", 404, json={}
    )
    assert "no control endpoint" in await refused(http, "GET", "/__sim/everything", 404)
    assert "GET is not allowed" in await refused(http, "GET", "/__sim/clock/advance", 405)
    assert "unknown filter(s): colour" in await refused(
        http, "GET", "/__sim/requests?colour=red", 422
    )
    assert "since must be a whole number" in await refused(
        http, "GET", "/__sim/callbacks?since=-1", 422
    )
    assert "limit" in await refused(http, "GET", "/__sim/requests?limit=0", 422)
    assert "larger than" in await refused(
        http, "PUT", "/__sim/apps", 413, content=b"{" + b" " * 300_000 + b"}"
    )


async def test_resolving_twice_is_refused(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    await control.set_phone_scenario(phone, unanswered=True)
    checkout_id = await daraja.push_ok(phone, receiver.url())
    await control.resolve(checkout_id, result_code=0)
    with pytest.raises(SimulatorControlError) as caught:
        await control.resolve(checkout_id, result_code=1032)
    assert caught.value.status == 409 and "already resolved" in caught.value.message
    [truth] = await control.transactions(checkout_request_id=checkout_id)
    assert truth.result_code == 0


async def test_shortcodes_are_picked_unique_and_never_show_secrets(
    control: SimulatorControl, http: httpx.AsyncClient
) -> None:
    shops = [await register_shop(control) for _ in range(3)]
    assert len({s.shortcode for s in shops}) == 3
    listing = (await http.get("/__sim/shortcodes")).text + (await http.get("/__sim/apps")).text
    for shop in shops:
        assert shop.shortcode in listing
        for secret in (shop.passkey, shop.consumer_key, shop.consumer_secret):
            assert secret not in listing


async def test_reset_shortcode_ends_its_prompts_silently(
    daraja: Daraja, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    phone = unique_phone()
    url = receiver.url()
    checkout_id = await daraja.push_ok(phone, url, amount=60)
    assert await control.reset_shortcode(daraja.shop.shortcode) == 1
    await control.advance_clock(5)
    assert receiver.at(url) == []
    assert await control.transactions(shortcode=daraja.shop.shortcode) == []
    assert (await daraja.query(checkout_id)).status_code == 400  # unknown now
    again = receiver.url()
    await daraja.push_ok(phone, again, amount=60)  # no lock, no code 17 memory
    await control.advance_clock(2)
    [received] = receiver.at(again)
    assert received.json()["Body"]["stkCallback"]["ResultCode"] == 0


async def test_control_client_reports_refusals(control: SimulatorControl) -> None:
    with pytest.raises(SimulatorControlError) as caught:
        await control.advance_clock(-1)
    assert caught.value.status == 422
    assert caught.value.details and caught.value.details[0]["field"] == "seconds"
