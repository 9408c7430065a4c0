"""Helpers for the client tests: a clock that records sleeps, a driver that moves it, a
registered simulator shop, a request-log marker, and a raw loopback server for the network
failures the simulator cannot produce (a connection reset after the request, a listener that
goes away)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import httpx

from smartduka_tui.clock import ManualClock
from smartduka_tui.mpesa.requests import DarajaCredentials, MerchantConfig, MerchantKind
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import RequestLogEntry, ShortcodeKind

PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"
OAUTH_PATH = "/oauth/v1/generate"
# Callbacks go to a loopback port nobody listens on: the client tests do not need them, and the
# simulator records the failed delivery without retrying.
CALLBACK_URL = "http://127.0.0.1:9/hooks/stk/shop/till/ref/k1.AAAAAAAAAAAAAAAAAAAAAA"

_T = TypeVar("_T")
_markers = itertools.count(1)


class RecordingClock(ManualClock):
    """A ManualClock that remembers every sleep asked of it."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start or datetime.now(UTC))
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await super().sleep(seconds)


async def drive(clock: ManualClock, work: Awaitable[_T]) -> _T:
    """Run `work`, moving `clock` past each sleep it parks on, while real I/O goes on."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=0.005)
        if clock.sleepers:
            clock.advance(3600)
    return task.result()


@dataclass(frozen=True)
class SimShop:
    merchant: MerchantConfig
    consumer_key: str
    consumer_secret: str
    passkey: str

    @property
    def shortcode(self) -> str:
        return self.merchant.business_shortcode


async def register_shop(
    control: SimulatorControl, *, till: bool = False, **settings: object
) -> SimShop:
    """A fresh shortcode with its own app and secrets (random, so each test is isolated)."""
    key, secret, passkey = (secrets.token_hex(12) for _ in range(3))
    view = await control.register_shortcode(
        passkey=passkey,
        consumer_key=key,
        consumer_secret=secret,
        kind=ShortcodeKind.TILL if till else ShortcodeKind.PAYBILL,
        settings=dict(settings),
    )
    merchant = MerchantConfig(
        kind=MerchantKind.TILL if till else MerchantKind.PAYBILL,
        business_shortcode=view.shortcode,
        till_number=view.till_numbers[0] if till else None,
        passkey=passkey,
        credentials=DarajaCredentials(consumer_key=key, consumer_secret=secret),
    )
    return SimShop(merchant, key, secret, passkey)


async def log_marker(base_url: str) -> int:
    """The simulator's current request-log position: send a request it logs (and refuses)
    under a unique CheckoutRequestID, then read back its seq."""
    marker = f"marker{next(_markers)}x{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        await http.post(QUERY_PATH, json={"CheckoutRequestID": marker})
    async with SimulatorControl(base_url) as control:
        (entry,) = await control.requests(checkout_request_id=marker)
    return entry.seq


async def logged_since(
    base_url: str, since: int, *, path: str | None = None, phone: str | None = None
) -> list[RequestLogEntry]:
    async with SimulatorControl(base_url) as control:
        entries = await control.requests(since=since, phone=phone)
    return [e for e in entries if path is None or e.path == path]


@dataclass
class RawDaraja:
    """A bare HTTP/1.1 server on 127.0.0.1 standing in for Safaricom's network edge.

    OAuth gets a token. A push is handled by `push_mode`: "reset" reads the whole request
    and drops the connection without a byte of answer. With `close_after_token` the listener
    shuts after the token is served, so the next connection is refused.
    """

    push_mode: str = "reset"
    close_after_token: bool = False
    seen: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RawDaraja:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            path = request_line.split(" ")[1]
            self.seen.append(path.split("?")[0])
            if path.startswith(OAUTH_PATH):
                body = json.dumps({"access_token": "rawtoken", "expires_in": "3599"}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                if self.close_after_token and self._server is not None:
                    self._server.close()
            # Anything else (the push in "reset" mode): no answer at all.
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def closed_loopback_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
