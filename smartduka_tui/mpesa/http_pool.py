"""How the till's HTTP clients keep connections, and when a failed request may go out again.

A server closes a keep-alive connection that has been idle for its own timeout (uvicorn: 5 s
unless told). If the client sends on that connection at the moment the server closes it, the
request meets a closed socket: httpx raises `RemoteProtocolError` ("Server disconnected without
sending a response") or `ReadError`, and for an STK push that means UNKNOWN, since the client
cannot tell whether Daraja read the request. httpcore already drops an idle connection whose
socket shows the server's close (`has_expired`: "is readable"), but only once the close has
arrived; the race is a close still on its way.

Two rules keep a good payment from turning UNKNOWN that way:

1. Every client drops an idle connection sooner than the server it talks to would, so a
   connection the client still trusts is never one the server is about to close. Daraja's idle
   timeout is not published, so its clients keep one only `DARAJA_KEEPALIVE_EXPIRY_S` (pushes
   are minutes apart anyway: reuse saves little there). Our relay keeps one
   `smartduka_tui.serving.SERVER_KEEP_ALIVE_S`, set explicitly; its clients keep one
   `RELAY_KEEPALIVE_EXPIRY_S`, well below that and above the till's heartbeat interval, so the
   heartbeat beside a long-poll reuses its connection instead of a new TLS handshake each time.
2. A request that fails on a reused connection before any answer came is sent once more on a
   new one only when that is safe: always for idempotent requests (OAuth token, STK query,
   GETs, the relay's feed and acknowledgements: `send_idempotent`); for anything that may start
   something (an STK push, a reversal: `send_once`) only when httpcore reports that writing the
   request's headers failed, so its body never left and no server can have acted on it. A push
   whose bytes left is never re-sent: Daraja has no idempotency key, and a second push can
   prompt the customer twice.

What happened to a request is read from httpcore's `trace` extension (its connection and
HTTP/1.1 events), so other transports (`httpx.ASGITransport`, `MockTransport`) report nothing
and are never retried here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx

log = logging.getLogger(__name__)

DARAJA_KEEPALIVE_EXPIRY_S: Final = 2.0
"""How long a Daraja client keeps an idle connection (rule 1)."""
RELAY_KEEPALIVE_EXPIRY_S: Final = 6.0
"""How long a client of our relay keeps an idle connection (rule 1)."""


def _limits(keepalive_expiry_s: float) -> httpx.Limits:
    """httpx's default limits, with the keep-alive expiry of rule 1."""
    return httpx.Limits(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=keepalive_expiry_s
    )


DARAJA_LIMITS: Final = _limits(DARAJA_KEEPALIVE_EXPIRY_S)
RELAY_LIMITS: Final = _limits(RELAY_KEEPALIVE_EXPIRY_S)

Send = Callable[[Mapping[str, Any]], Awaitable[httpx.Response]]
"""One request, sent with the given request extensions (the `trace` callback goes there)."""

# Failures that mean "the connection was gone", as opposed to a slow server (timeouts are not
# here: a server that is slow may well be working on the request).
_CONNECTION_GONE: Final = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class Exchange:
    """What httpcore told about one request through its `trace` extension."""

    def __init__(self) -> None:
        self.events: set[str] = set()

    async def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        self.events.add(name)

    @property
    def reused(self) -> bool:
        """It went out on a pooled connection (httpcore sent it without connecting first)."""
        return (
            "http11.send_request_headers.started" in self.events
            and "connection.connect_tcp.started" not in self.events
        )

    @property
    def answered(self) -> bool:
        """The server's answer had begun: whatever failed after that, it read the request."""
        return "http11.receive_response_headers.complete" in self.events

    @property
    def headers_unwritten(self) -> bool:
        """Writing the request's headers failed, so its body was never sent either."""
        return "http11.send_request_headers.failed" in self.events

    def stale_connection(self) -> bool:
        """Failed on a pooled connection before any answer: the server had closed it."""
        return self.reused and not self.answered

    def never_sent(self) -> bool:
        """A stale connection on which not even the headers were written: provably unsent."""
        return self.stale_connection() and self.headers_unwritten


async def send_idempotent(send: Send, what: str) -> httpx.Response:
    """Send; once more on a new connection if a pooled one turned out to be closed."""
    exchange = Exchange()
    try:
        return await send({"trace": exchange})
    except _CONNECTION_GONE as error:
        if not exchange.stale_connection():
            raise
        log.info("%s: pooled connection was closed (%s); sending again", what, type(error).__name__)
    return await send({})


async def send_once(send: Send, what: str) -> httpx.Response:
    """Send a request that must not run twice; again only if it provably never left."""
    exchange = Exchange()
    try:
        return await send({"trace": exchange})
    except _CONNECTION_GONE as error:
        if not exchange.never_sent():
            raise
        log.info("%s: unsent on a closed connection (%s); sending it", what, type(error).__name__)
    return await send({})
