"""DarajaClient's classification logic for answers and network failures that a loopback server
cannot produce on demand (connect timeouts, pool timeouts, odd bodies). Here an
`httpx.MockTransport` stands in for Safaricom's side of the wire; everything else is real."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import httpx
import pytest

from smartduka_tui.mpesa.client import DarajaClient, QueryStatus
from smartduka_tui.mpesa.errors import (
    AuthenticationFailed,
    DarajaUnavailable,
    PushOutcomeUnknown,
    PushRefused,
    QueryNoAnswer,
    QueryRefused,
)
from smartduka_tui.mpesa.requests import (
    DarajaCredentials,
    MerchantConfig,
    MerchantKind,
    build_stk_push,
)
from smartduka_tui.mpesa.result_codes import CONNECTION_FAILED, HTTP_REFUSED, Outcome
from tests.mpesa.support import (
    CALLBACK_URL,
    OAUTH_PATH,
    PUSH_PATH,
    QUERY_PATH,
    RecordingClock,
    drive,
)

MERCHANT = MerchantConfig(
    kind=MerchantKind.PAYBILL,
    business_shortcode="174379",
    passkey="pk",
    credentials=DarajaCredentials(consumer_key="key", consumer_secret="secret"),
)
TOKEN = {"access_token": "tok", "expires_in": "3599"}
Handler = Callable[[httpx.Request], httpx.Response]


class Edge:
    """Counts requests by path and answers push/query with the given handlers."""

    def __init__(
        self,
        push: Handler | None = None,
        query: Handler | None = None,
        oauth: Handler | None = None,
    ) -> None:
        self.calls: list[str] = []
        self.push = push
        self.query = query
        self.oauth = oauth or (lambda request: httpx.Response(200, json=TOKEN))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        handler = {OAUTH_PATH: self.oauth, PUSH_PATH: self.push, QUERY_PATH: self.query}[
            request.url.path
        ]
        assert handler is not None, f"unexpected call to {request.url.path}"
        return handler(request)


def raising(error: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handler


def make_client(edge: Edge, clock: RecordingClock | None = None, **kwargs: object) -> DarajaClient:
    return DarajaClient(
        "https://daraja.test",
        clock or RecordingClock(),
        transport=httpx.MockTransport(edge),
        rng=random.Random(1),
        **kwargs,  # type: ignore[arg-type]
    )


async def push(edge: Edge) -> None:
    clock = RecordingClock()
    async with make_client(edge, clock) as client:
        request = build_stk_push(
            MERCHANT,
            clock=clock,
            amount=10,
            phone="0712345678",
            callback_url=CALLBACK_URL,
            account_reference="S1",
            transaction_desc="Sale",
        )
        await client.stk_push(MERCHANT, request)


@pytest.mark.parametrize("error", [httpx.ConnectTimeout, httpx.ConnectError, httpx.PoolTimeout])
async def test_failures_before_sending_are_definite(error: type[httpx.TransportError]) -> None:
    edge = Edge(push=raising(error))
    with pytest.raises(PushRefused) as caught:
        await push(edge)
    assert caught.value.info is CONNECTION_FAILED
    assert edge.calls.count(PUSH_PATH) == 1


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
    ],
)
async def test_failures_after_sending_are_unknown_and_not_retried(
    error: type[httpx.TransportError],
) -> None:
    edge = Edge(push=raising(error))
    with pytest.raises(PushOutcomeUnknown):
        await push(edge)
    assert edge.calls.count(PUSH_PATH) == 1


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, text="<html>Apigee</html>"), PushOutcomeUnknown),
        (httpx.Response(502, text="Bad gateway"), PushOutcomeUnknown),
        (httpx.Response(500, content=b""), PushOutcomeUnknown),
        (httpx.Response(400, content=b""), PushRefused),
        (httpx.Response(401, text="no"), PushRefused),
        (httpx.Response(302, headers={"Location": "https://elsewhere.test/"}), PushRefused),
        (
            httpx.Response(
                500, json={"requestId": "r", "errorCode": "500.003.1001", "errorMessage": "ISE"}
            ),
            PushRefused,
        ),
    ],
)
async def test_push_answers_without_a_result_are_classified(
    response: httpx.Response, expected: type[Exception]
) -> None:
    edge = Edge(push=lambda request: response)
    with pytest.raises(expected) as caught:
        await push(edge)
    assert isinstance(caught.value, PushRefused | PushOutcomeUnknown)
    assert caught.value.http_status == response.status_code
    assert edge.calls.count(PUSH_PATH) == 1


async def test_push_with_a_non_zero_response_code_is_refused() -> None:
    body = {
        "MerchantRequestID": "m",
        "CheckoutRequestID": "ws_CO_1",
        "ResponseCode": "1",
        "ResponseDescription": "Rejected",
        "CustomerMessage": "Rejected",
    }
    edge = Edge(push=lambda request: httpx.Response(200, json=body))
    with pytest.raises(PushRefused) as caught:
        await push(edge)
    assert caught.value.error_code == "1"
    assert caught.value.info is not None and not caught.value.info.known


async def test_push_is_retried_once_only_after_a_second_invalid_token() -> None:
    invalid = {"requestId": "r", "errorCode": "404.001.03", "errorMessage": "Invalid Access Token"}
    edge = Edge(push=lambda request: httpx.Response(404, json=invalid))
    with pytest.raises(PushRefused) as caught:
        await push(edge)
    assert caught.value.error_code == "404.001.03"
    assert caught.value.info is not None
    assert caught.value.info.outcome is Outcome.FAILED_NEEDS_MANAGER
    assert edge.calls == [OAUTH_PATH, PUSH_PATH, OAUTH_PATH, PUSH_PATH]


@pytest.mark.parametrize(
    ("response", "expected", "message"),
    [
        (httpx.Response(400, content=b""), AuthenticationFailed, "invalid credentials"),
        (
            httpx.Response(
                400,
                json={"requestId": "r", "errorCode": "400.008.02", "errorMessage": "Invalid grant"},
            ),
            AuthenticationFailed,
            "400.008.02",
        ),
        (httpx.Response(200, text="<html>portal</html>"), DarajaUnavailable, "not a token"),
        (
            httpx.Response(200, json={"access_token": "t", "expires_in": "soon"}),
            DarajaUnavailable,
            "not a token",
        ),
        (httpx.Response(503, text="down"), DarajaUnavailable, "HTTP 503"),
    ],
)
async def test_oauth_answers_are_classified(
    response: httpx.Response, expected: type[Exception], message: str
) -> None:
    edge = Edge(oauth=lambda request: response)
    async with make_client(edge) as client:
        with pytest.raises(expected, match=message):
            await client.check_credentials(MERCHANT)


async def test_oauth_sends_basic_auth_and_the_grant_type() -> None:
    seen: list[httpx.Request] = []

    def oauth(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=TOKEN)

    async with make_client(Edge(oauth=oauth)) as client:
        await client.get_token(MERCHANT)
    (request,) = seen
    assert request.method == "GET"
    assert request.url.params["grant_type"] == "client_credentials"
    assert request.headers["Authorization"] == MERCHANT.credentials.basic_authorization()


async def test_push_sends_the_built_body_with_a_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def accept(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "MerchantRequestID": "m",
                "CheckoutRequestID": "ws_CO_1",
                "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
                "CustomerMessage": "Success. Request accepted for processing",
            },
        )

    clock = RecordingClock()
    async with make_client(Edge(push=accept), clock) as client:
        request = build_stk_push(
            MERCHANT,
            clock=clock,
            amount=10,
            phone="0712345678",
            callback_url=CALLBACK_URL,
            account_reference="S1",
            transaction_desc="Sale",
        )
        await client.stk_push(MERCHANT, request)
    (sent,) = seen
    assert sent.headers["Authorization"] == "Bearer tok"
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.content) == request.to_wire()


async def test_short_lived_tokens_refresh_at_half_life_not_every_call() -> None:
    edge = Edge(
        oauth=lambda request: httpx.Response(200, json={"access_token": "t", "expires_in": 60})
    )
    clock = RecordingClock()
    async with make_client(edge, clock, token_refresh_margin_s=120) as client:
        first = await client.get_token(MERCHANT)
        clock.advance(29)
        assert await client.get_token(MERCHANT) is first
        clock.advance(2)
        assert await client.get_token(MERCHANT) is not first
    assert edge.calls == [OAUTH_PATH, OAUTH_PATH]


def query_answer(code: str = "0") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": "m",
            "CheckoutRequestID": "ws_CO_1",
            "ResultCode": code,
            "ResultDesc": "whatever",
        },
    )


async def test_query_retries_unreadable_200s_then_gives_up() -> None:
    edge = Edge(query=lambda request: httpx.Response(200, json={"ResponseCode": "0"}))
    clock = RecordingClock()
    async with make_client(edge, clock, query_retries=2) as client:
        with pytest.raises(QueryNoAnswer, match="after 3 tries"):
            await drive(clock, client.stk_query(MERCHANT, MERCHANT, "ws_CO_1"))
    assert edge.calls.count(QUERY_PATH) == 3


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(403, text="Forbidden"),
        httpx.Response(
            500,
            json={
                "requestId": "r",
                "errorCode": "500.001.1001",
                "errorMessage": "The transaction does not exist",
            },
        ),
    ],
)
async def test_query_refusals_are_not_retried(response: httpx.Response) -> None:
    edge = Edge(query=lambda request: response)
    clock = RecordingClock()
    async with make_client(edge, clock) as client:
        with pytest.raises(QueryRefused) as caught:
            await client.stk_query(MERCHANT, MERCHANT, "ws_CO_1")
    assert caught.value.http_status == response.status_code
    assert edge.calls.count(QUERY_PATH) == 1 and clock.slept == []
    if response.status_code == 403:
        assert caught.value.info is HTTP_REFUSED


async def test_query_retries_read_timeouts_because_a_query_is_read_only() -> None:
    answers = iter([None, query_answer("4999")])

    def query(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer is None:
            raise httpx.ReadTimeout("slow", request=request)
        return answer

    clock = RecordingClock()
    async with make_client(Edge(query=query), clock) as client:
        result = await drive(clock, client.stk_query(MERCHANT, MERCHANT, "ws_CO_1"))
    assert result.status is QueryStatus.RESOLVED
    assert not result.info.known and result.info.outcome is Outcome.FAILED_NEEDS_MANAGER


async def test_backoff_is_capped() -> None:
    edge = Edge(query=lambda request: httpx.Response(503, text="busy"))
    clock = RecordingClock()
    async with make_client(edge, clock, query_retries=6, backoff_max_s=4.0) as client:
        with pytest.raises(QueryNoAnswer):
            await drive(clock, client.stk_query(MERCHANT, MERCHANT, "ws_CO_1"))
    assert len(clock.slept) == 6
    assert all(2.0 <= delay <= 4.0 for delay in clock.slept[2:])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": httpx.Timeout(None)},
        {"timeout": httpx.Timeout(5.0, pool=None)},
        {"query_retries": -1},
        {"token_refresh_margin_s": -1},
    ],
)
def test_unbounded_or_negative_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DarajaClient("https://daraja.test", RecordingClock(), **kwargs)  # type: ignore[arg-type]
