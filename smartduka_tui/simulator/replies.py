"""What a Daraja endpoint answers, and the refusals that short-cut a handler.

Shared by the STK engine and the statement APIs, so neither imports the other for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from smartduka_tui.simulator.codes import ErrorSpec, invalid_field
from smartduka_tui.simulator.wire import envelope, first_invalid_field

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the HTTP layer sends back."""

    status: int
    body: bytes
    content_type: str | None = "application/json"
    error_code: str | None = None


def json_reply(body: dict[str, Any]) -> Reply:
    """A 200 answer carrying `body` as JSON."""
    return Reply(200, json.dumps(body).encode())


def error_reply(spec: ErrorSpec, request_id: str | None = None) -> Reply:
    return Reply(spec.http_status, envelope(spec, request_id), error_code=spec.code)


class Refused(Exception):
    """A Daraja request refused part-way; `reply` is the answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def refuse(spec: ErrorSpec, request_id: str | None = None) -> Refused:
    return Refused(error_reply(spec, request_id))


def parse_body(model: type[_M], body: dict[str, Any]) -> _M:
    """The request body as `model`, or Daraja's refusal naming the first field it checks that
    is wrong (fields are declared in Daraja's checking order)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise refuse(invalid_field(first_invalid_field(exc))) from None


class ControlError(Exception):
    """A control request that cannot be done; the message says why (and holds no secret)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
