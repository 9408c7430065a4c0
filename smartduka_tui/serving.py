"""Run an ASGI app on uvicorn with a port that may be 0 (chosen by the OS).

The simulator and the relay both serve through this. The socket is bound and listening before
`ready_file` is written, so whoever reads the port can connect at once (early connections wait
in the backlog until uvicorn accepts them).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


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
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
