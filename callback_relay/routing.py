"""Routes to the parts the app's lifespan builds and keeps on `app.state`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]


def on_state(part: str, handler: Callable[[Any, Request], Awaitable[Response]]) -> Endpoint:
    """An endpoint that calls `handler(app.state.<part>, request)`: a route is declared before
    the lifespan makes the part it calls."""

    async def endpoint(request: Request) -> Response:
        return await handler(getattr(request.app.state, part), request)

    return endpoint
