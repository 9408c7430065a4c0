"""Read a request body without trusting its Content-Length.

Bytes are counted as they arrive; past the limit the read stops and the caller answers 413. A
declared Content-Length over the limit is refused before reading anything.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


class BodyTooLarge(Exception):
    """The body is (or claims to be) longer than the limit."""


class BodyIncomplete(Exception):
    """The client went away before sending the whole body."""


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            pass
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
