"""OAuth and bearer checks against the real simulator process over loopback."""

from __future__ import annotations

import base64

import httpx
import pytest

from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import ExpiresInType
from tests.conftest import unique_phone
from tests.simulator.support import OAUTH, PUSH, CallbackReceiver, Daraja, Shop, register_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")

INVALID_TOKEN = {"errorCode": "404.001.03", "errorMessage": "Invalid Access Token"}


def _envelope(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}
    assert isinstance(body["requestId"], str) and body["requestId"]
    return {"errorCode": body["errorCode"], "errorMessage": body["errorMessage"]}


async def test_token_has_a_string_expires_in_by_default(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    response = await http.get(OAUTH, headers={"Authorization": shop.basic})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == "3599"
    assert body["access_token"].isalnum() and len(body["access_token"]) == 28


async def test_expires_in_as_a_number_and_lifetime_per_app(
    http: httpx.AsyncClient, control: SimulatorControl, shop: Shop
) -> None:
    await control.set_app(
        shop.consumer_key,
        shop.consumer_secret,
        token_lifetime_s=600,
        expires_in_type=ExpiresInType.NUMBER,
    )
    response = await http.get(OAUTH, headers={"Authorization": shop.basic})
    assert response.json()["expires_in"] == 599


async def test_wrong_secret_gets_a_bare_400(http: httpx.AsyncClient, shop: Shop) -> None:
    wrong = base64.b64encode(f"{shop.consumer_key}:not-the-secret".encode()).decode()
    unknown = base64.b64encode(b"nobody:nothing").decode()
    for header in (f"Basic {wrong}", f"Basic {unknown}", "Basic !!!not-base64!!!"):
        response = await http.get(OAUTH, headers={"Authorization": header})
        assert response.status_code == 400
        assert response.content == b""


async def test_missing_basic_header_is_an_invalid_authentication_type(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    for headers in ({}, {"Authorization": "Bearer something"}):
        response = await http.get(OAUTH, headers=headers)
        assert response.status_code == 400
        assert _envelope(response) == {
            "errorCode": "400.008.01",
            "errorMessage": "Invalid authentication type passed",
        }


async def test_bad_grant_type(http: httpx.AsyncClient, shop: Shop) -> None:
    for url in (
        "/oauth/v1/generate",
        "/oauth/v1/generate?grant_type=password",
        "/oauth/v1/generate?grant_type=client_credentials%20",  # the trailing-space pitfall
    ):
        response = await http.get(url, headers={"Authorization": shop.basic})
        assert response.status_code == 400
        assert _envelope(response) == {
            "errorCode": "400.008.02",
            "errorMessage": "Invalid grant type passed",
        }


async def test_oauth_with_the_wrong_method(http: httpx.AsyncClient, shop: Shop) -> None:
    response = await http.post(OAUTH, headers={"Authorization": shop.basic})
    assert response.status_code == 404
    assert _envelope(response) == {
        "errorCode": "404.001.04",
        "errorMessage": "Invalid Authentication Header",
    }


async def test_missing_malformed_and_unknown_tokens(
    http: httpx.AsyncClient, shop: Shop, receiver: CallbackReceiver
) -> None:
    body = shop.push_body(unique_phone(), receiver.url())
    token = await shop.token(http)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer notatoken"},
        {"Authorization": f"bearer {token}"},
        {"Authorization": shop.basic},
    ):
        response = await http.post(PUSH, json=body, headers=headers)
        assert response.status_code == 404
        assert _envelope(response) == INVALID_TOKEN


async def test_token_expires_when_simulator_time_passes(
    http: httpx.AsyncClient, control: SimulatorControl, shop: Shop, receiver: CallbackReceiver
) -> None:
    await control.set_app(shop.consumer_key, shop.consumer_secret, token_lifetime_s=60)
    daraja = Daraja(http, shop)
    await daraja.push_ok(unique_phone(), receiver.url())
    await control.advance_clock(61)
    response = await daraja.push(unique_phone(), receiver.url())
    assert response.status_code == 404
    assert _envelope(response) == INVALID_TOKEN


async def test_a_new_token_revokes_the_old_one_when_set(
    http: httpx.AsyncClient, control: SimulatorControl, shop: Shop, receiver: CallbackReceiver
) -> None:
    first = await shop.token(http)
    second = await shop.token(http)
    for token in (first, second):  # by default both stay valid
        response = await http.post(
            PUSH,
            json=shop.push_body(unique_phone(), receiver.url()),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text

    await control.set_app(shop.consumer_key, shop.consumer_secret, revoke_old_token=True)
    old = await shop.token(http)
    new = await shop.token(http)
    refused = await http.post(
        PUSH,
        json=shop.push_body(unique_phone(), receiver.url()),
        headers={"Authorization": f"Bearer {old}"},
    )
    assert refused.status_code == 404
    assert _envelope(refused) == INVALID_TOKEN
    accepted = await http.post(
        PUSH,
        json=shop.push_body(unique_phone(), receiver.url()),
        headers={"Authorization": f"Bearer {new}"},
    )
    assert accepted.status_code == 200


async def test_a_token_acts_only_for_its_own_apps_shortcodes(
    http: httpx.AsyncClient, control: SimulatorControl, shop: Shop, receiver: CallbackReceiver
) -> None:
    other = await register_shop(control)
    token = await shop.token(http)
    response = await http.post(
        PUSH,
        json=other.push_body(unique_phone(), receiver.url()),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 500
    assert _envelope(response) == {
        "errorCode": "500.001.1001",
        "errorMessage": "Merchant does not exist",
    }


async def test_any_app_can_use_the_shared_sandbox_shortcode(
    http: httpx.AsyncClient, shop: Shop, receiver: CallbackReceiver
) -> None:
    sandbox = Shop(
        shortcode="174379",
        passkey="bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
        consumer_key="sim-demo-consumer-key",
        consumer_secret="sim-demo-consumer-secret",
    )
    response = await Daraja(http, sandbox).push(unique_phone(), receiver.url())
    assert response.status_code == 200, response.text
    foreign_token = await shop.token(http)
    response = await http.post(
        PUSH,
        json=sandbox.push_body(unique_phone(), receiver.url()),
        headers={"Authorization": f"Bearer {foreign_token}"},
    )
    assert response.status_code == 200, response.text
