"""A loopback TCP hop that makes the keep-alive race deterministic (`LateClose`), and a real app
served by uvicorn in this process behind one, with an idle timeout the test chooses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn

from smartduka_tui.serving import bind_socket

HANG_S = 30.0
"""Only a hang reaches this: every wait on the hop ends on a condition long before."""


class LateClose:
    """A TCP hop to `upstream_port` that hides the server's close of an idle connection until
    the client sends again, then drops what was sent and resets the connection: what a client
    meets when it sends just as the server closes (the close still on its way)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self.lost = 0
        self.server_closed = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hop, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def wait_server_closed(self) -> None:
        """Until uvicorn has closed a connection (idle past its keep-alive) since the last call."""
        await asyncio.wait_for(self.server_closed.wait(), HANG_S)
        self.server_closed.clear()

    async def _hop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        gone = asyncio.Event()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            gone.set()
            self.server_closed.set()

        answers = asyncio.create_task(downstream())
        try:
            while data := await reader.read(65536):
                if gone.is_set():
                    self.lost += 1
                    writer.transport.abort()
                    return
                up_writer.write(data)
                await up_writer.drain()
        except ConnectionError:
            pass
        finally:
            answers.cancel()
            up_writer.close()
            writer.close()


@contextlib.asynccontextmanager
async def served_behind_late_close(
    app: Any, keep_alive_s: float, *, lifespan: Literal["on", "off"] = "on"
) -> AsyncIterator[tuple[str, LateClose]]:
    """`app` on uvicorn (idle timeout `keep_alive_s`) and a LateClose before it: yields the
    app's own URL and the hop."""
    sock = bind_socket("127.0.0.1", 0)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        timeout_keep_alive=keep_alive_s,  # type: ignore[arg-type]  # a float works; typed int
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.005)
    hop = LateClose(sock.getsockname()[1])
    await hop.start()
    try:
        yield f"http://127.0.0.1:{hop.upstream_port}", hop
    finally:
        await hop.stop()
        server.should_exit = True
        server.force_exit = True
        await task
