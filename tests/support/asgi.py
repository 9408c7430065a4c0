"""Small ASGI apps the tests serve in this process: a request's whole body, and an app served
on loopback (port 0) with uvicorn for as long as a test needs it."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from smartduka_tui.serving import bind_socket


async def request_body(receive: Any) -> bytes:
    """Every `http.request` message's body, joined."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


class Served:
    """`app` served on 127.0.0.1 (lifespan off) from `start` to `stop`, or for the length of an
    `async with`. Stopping does not wait for requests still open (a test's slow endpoint)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = bind_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await self._task
            self._server = self._task = None

    async def __aenter__(self) -> Served:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
