"""Read a request body without trusting its Content-Length.

Bytes are counted as they arrive; past the limit the read stops and the caller answers 413. A
declared Content-Length over the limit is refused before reading anything.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope


class BodyTooLarge(Exception):
    """The body is (or claims to be) longer than the limit."""


class BodyIncomplete(Exception):
    """The client went away before sending the whole body."""


def _check_declared(declared: str | None, limit: int) -> None:
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            pass


async def read_limited(request: Request, limit: int) -> bytes:
    _check_declared(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyIncomplete from None
    return b"".join(chunks)


def header_values(scope: Scope, name: bytes) -> list[str]:
    """Every value of header `name` (lower case) in arrival order, as Starlette decodes them."""
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """`read_limited` for a raw ASGI app, straight from `receive` (no Request built)."""
    declared = header_values(scope, b"content-length")
    _check_declared(declared[0] if declared else None, limit)
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyIncomplete
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
