"""Run the relay on uvicorn: one worker, no access log, no uvicorn proxy-header rewriting.

Uvicorn's own `proxy_headers` would rewrite the client address from `X-Forwarded-For` for peers it
trusts (loopback by default), bypassing the relay's trusted-proxy rule, so it is off. Logs pass
through a filter that redacts callback paths, which are capabilities.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from starlette.applications import Starlette

from callback_relay.app import make_app
from callback_relay.settings import RelaySettings
from smartduka_tui.mpesa import result_path
from smartduka_tui.mpesa.callback_path import PREFIX, redact_path
from smartduka_tui.serving import SERVER_KEEP_ALIVE_S, bind_socket, run_uvicorn, write_ready_file

_PREFIXES = (PREFIX, *(purpose.prefix for purpose in result_path.ResultPurpose))
_CALLBACK_PATH = re.compile("(?:" + "|".join(map(re.escape, _PREFIXES)) + r")[^\s\"'?]*")


class RedactCallbackPaths(logging.Filter):
    """Rewrites any callback path in a log record to its redacted form."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(prefix in message for prefix in _PREFIXES):
            record.msg = _CALLBACK_PATH.sub(
                lambda m: result_path.redact(redact_path(m.group(0))), message
            )
            record.args = ()
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCallbackPaths())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def run_server(
    settings: RelaySettings,
    *,
    host: str,
    port: int,
    ready_file: str | Path | None,
    tls: tuple[str, str] | None = None,
) -> None:
    """Serve until stopped; `tls` is (certificate file, key file) to serve https itself."""
    import uvicorn

    configure_logging(settings.log_level)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    scheme = "https" if tls else "http"
    print(f"listening on {scheme}://{shown_host}:{bound_port}", flush=True)
    if ready_file is not None:
        write_ready_file(ready_file, bound_port)
    app = make_app(settings)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    run_uvicorn(config, sock, on_exit=lambda: _answer_long_polls(app))


def _answer_long_polls(app: Starlette) -> None:
    """On SIGTERM: every open feed long-poll answers now (an empty batch, so its till simply
    polls again, here once restarted or at another instance), and new ones do not wait; else
    uvicorn's graceful shutdown waits for them and the process outlives its stop."""
    relay = getattr(app.state, "relay", None)
    if relay is not None:
        relay.hub.close()
