"""Test helpers for the simulator: a callback receiver on loopback and a registered test shop.

The helpers compute the STK Password and Basic header themselves (not with the simulator's own
functions), so a mistake in the simulator cannot hide behind the same mistake in the test.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from smartduka_tui.serving import bind_socket
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import ShortcodeKind
from tests.support.asgi import Served, request_body

TIMESTAMP = "20261126103000"
PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
OAUTH = "/oauth/v1/generate?grant_type=client_credentials"
_paths = itertools.count(1)


@dataclass
class Received:
    path: str
    body: bytes
    content_type: str | None

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)


@dataclass
class CallbackReceiver:
    """A plain HTTP server on 127.0.0.1 (port 0) that records every POST it gets.

    Paths choose the answer: `/status/NNN/...` answers NNN, `/slow/...` answers after 5 s,
    `/reject/...` answers 200 with a C2B validation rejection (C2B00012), anything else answers
    200 with Daraja's customary acknowledgement.
    """

    received: list[Received] = field(default_factory=list)
    port: int = 0
    _served: Served = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._served = Served(self)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await request_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path: str = scope["path"]
        self.received.append(Received(path, body, headers.get("content-type")))
        status = 200
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
        elif path.startswith("/slow/"):
            await asyncio.sleep(5)
        answer = b'{"ResultCode": 0}'
        if path.startswith("/reject/"):
            answer = b'{"ResultCode": "C2B00012", "ResultDesc": "Rejected"}'
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    async def start(self) -> CallbackReceiver:
        await self._served.start()
        self.port = self._served.port
        return self

    async def stop(self) -> None:
        await self._served.stop()

    async def __aenter__(self) -> CallbackReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, prefix: str = "cb") -> str:
        """A fresh callback URL whose path no other test uses."""
        return f"http://127.0.0.1:{self.port}/{prefix}/n{next(_paths)}/{secrets.token_hex(4)}"

    def at(self, url: str) -> list[Received]:
        path = httpx.URL(url).path
        return [r for r in self.received if r.path == path]


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was bound, then released)."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/cb/nobody"


def password(shortcode: str, passkey: str, timestamp: str = TIMESTAMP) -> str:
    return base64.b64encode((shortcode + passkey + timestamp).encode()).decode()


@dataclass
class Shop:
    """A shortcode registered for one test, with its own app credentials and passkey."""

    shortcode: str
    passkey: str
    consumer_key: str
    consumer_secret: str
    kind: ShortcodeKind = ShortcodeKind.PAYBILL
    till_numbers: list[str] = field(default_factory=list)

    @property
    def basic(self) -> str:
        raw = f"{self.consumer_key}:{self.consumer_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def token(self, daraja: httpx.AsyncClient) -> str:
        response = await daraja.get(OAUTH, headers={"Authorization": self.basic})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def push_body(
        self, phone: str, callback_url: str, amount: int = 10, **changes: Any
    ) -> dict[str, Any]:
        is_till = self.kind is ShortcodeKind.TILL
        body: dict[str, Any] = {
            "BusinessShortCode": self.shortcode,
            "Password": password(self.shortcode, self.passkey),
            "Timestamp": TIMESTAMP,
            "TransactionType": "CustomerBuyGoodsOnline" if is_till else "CustomerPayBillOnline",
            "Amount": amount,
            "PartyA": phone,
            "PartyB": self.till_numbers[0] if is_till else self.shortcode,
            "PhoneNumber": phone,
            "CallBackURL": callback_url,
            "AccountReference": "DUKA-000123",
            "TransactionDesc": "Sale 000123",
        }
        body.update(changes)
        return body

    def query_body(self, checkout_request_id: str, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "BusinessShortCode": self.shortcode,
            "Password": password(self.shortcode, self.passkey),
            "Timestamp": TIMESTAMP,
            "CheckoutRequestID": checkout_request_id,
        }
        body.update(changes)
        return body


async def register_shop(
    control: SimulatorControl,
    kind: ShortcodeKind = ShortcodeKind.PAYBILL,
    settings: dict[str, Any] | None = None,
    passkey: str | None = None,
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
) -> Shop:
    """A fresh shortcode (picked by the simulator, so parallel tests never share one)."""
    shop = Shop(
        shortcode="",
        passkey=passkey or secrets.token_hex(32),
        consumer_key=consumer_key or "key" + secrets.token_hex(12),
        consumer_secret=consumer_secret or "secret" + secrets.token_hex(12),
        kind=kind,
    )
    view = await control.register_shortcode(
        passkey=shop.passkey,
        consumer_key=shop.consumer_key,
        consumer_secret=shop.consumer_secret,
        kind=kind,
        settings=settings,
    )
    shop.shortcode = view.shortcode
    shop.till_numbers = view.till_numbers
    return shop


class Daraja:
    """A raw Daraja client for one shop: the tests see every status and byte."""

    def __init__(self, http: httpx.AsyncClient, shop: Shop) -> None:
        self.http = http
        self.shop = shop
        self._token: str | None = None

    async def bearer(self) -> dict[str, str]:
        if self._token is None:
            self._token = await self.shop.token(self.http)
        return {"Authorization": f"Bearer {self._token}"}

    async def push(
        self, phone: str, callback_url: str, amount: int = 10, **changes: Any
    ) -> httpx.Response:
        body = self.shop.push_body(phone, callback_url, amount, **changes)
        return await self.http.post(PUSH, json=body, headers=await self.bearer())

    async def push_ok(self, phone: str, callback_url: str, amount: int = 10, **changes: Any) -> str:
        response = await self.push(phone, callback_url, amount, **changes)
        assert response.status_code == 200, response.text
        checkout_id: str = response.json()["CheckoutRequestID"]
        return checkout_id

    async def query(self, checkout_request_id: str, **changes: Any) -> httpx.Response:
        body = self.shop.query_body(checkout_request_id, **changes)
        return await self.http.post(QUERY, json=body, headers=await self.bearer())
