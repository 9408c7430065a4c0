"""Run an ASGI app on uvicorn with a port that may be 0 (chosen by the OS).

The simulator and the relay both serve through this. The socket is bound and listening before
`ready_file` is written, so whoever reads the port can connect at once (early connections wait
in the backlog until uvicorn accepts them).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Final

SERVER_KEEP_ALIVE_S: Final = 15
"""How long our servers (simulator, relay) keep an idle keep-alive connection. Set explicitly,
and well above the clients' expiries in `mpesa.http_pool`, so that a client always drops an
idle connection before the server closes it: a push sent just as the server closed its
connection would end UNKNOWN (uvicorn's own default, 5 s, equals httpx's)."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only turns Nagle off (TCP_NODELAY) for sockets whose proto
    # says TCP, and without it a response written as headers then body waits ~40 ms for the
    # client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def write_ready_file(ready_file: str | Path, port: int) -> None:
    """Write the port atomically, so a reader never sees a half-written file."""
    target = Path(ready_file)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready_file: str | Path | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    """Serve `app` until interrupted. Prints `listening on http://HOST:PORT` to stdout."""
    import uvicorn

    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown_host}:{bound_port}", flush=True)
    if ready_file is not None:
        write_ready_file(ready_file, bound_port)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
    )
    run_uvicorn(config, sock)


def run_uvicorn(
    config: Any, sock: socket.socket, on_exit: Callable[[], None] | None = None
) -> None:
    """Run uvicorn on `sock` until SIGINT or SIGTERM. `on_exit` runs in the event loop as soon as
    the signal comes, before uvicorn waits for open requests to end: the relay answers its
    long-polls there, which would otherwise hold the process up to their whole wait."""
    import uvicorn

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            if on_exit is not None and self.loop is not None:
                # A signal handler interrupts the loop anywhere: hand over, do not call in.
                self.loop.call_soon_threadsafe(on_exit)

    Server(config).run(sockets=[sock])
