"""One event of a till's relay feed (`GET /v1/events`), the one model both sides use.

The relay builds its answers with `FeedEvent.from_stored` and `wire`; the till reads them with
`FeedEvent.model_validate`. Both import it from here (the relay may use the shared protocol
layer, the till never imports the relay), so the wire shape documented in
`callback_relay/README.md` ("The till feed") is written down once. `received_at` goes out as
UTC with milliseconds and a `Z` (`2026-12-04T18:30:16.123Z`), as it always has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

FeedKind = Literal["callback", "security", "c2b", "result", "queue_timeout"]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch_ms(ms: int) -> datetime:
    """Milliseconds since the epoch as an exact UTC datetime (no float in between)."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso_ms(moment: datetime) -> str:
    """`moment` in UTC as the feed writes it: milliseconds and a `Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class SecurityDetail(BaseModel):
    """Why the relay refused a correctly signed callback (a `security` event)."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(max_length=64)
    source: str | None = Field(default=None, max_length=64)
    size: int | None = None
    """The refused body's size in bytes; None when reading stopped at the size limit."""


class FeedEvent(BaseModel):
    """One event of the relay's feed (`callback_relay/README.md`, "The till feed")."""

    model_config = ConfigDict(frozen=True)

    id: int = Field(ge=0)
    kind: FeedKind
    shop_id: str = Field(max_length=64)
    till_id: str = Field(max_length=64)
    attempt_ref: str = Field(max_length=64)
    received_at: datetime
    body: str = Field(repr=False)
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    flags: list[str] = Field(default_factory=list)
    delivery_count: int = Field(default=1, ge=0)
    security: SecurityDetail | None = None

    @field_serializer("received_at")
    def _received_at(self, moment: datetime) -> str:
        return iso_ms(moment)

    @classmethod
    def from_stored(
        cls,
        *,
        event_id: int,
        kind: str,
        shop_id: str,
        till_id: str,
        attempt_ref: str,
        received_at_ms: int,
        body: bytes,
        body_sha256: str,
        flags: Iterable[str],
        delivery_count: int,
        detail: str | None,
    ) -> FeedEvent:
        """The event as the relay stored it, unchecked: the relay hands out what it holds (a
        till that cannot read an event keeps it as a problem for its manager), so a stored
        value outside the model's limits must not make the relay's feed fail."""
        security = None if detail is None else SecurityDetail.model_construct(**json.loads(detail))
        fields: dict[str, Any] = {
            "id": event_id,
            "kind": kind,
            "shop_id": shop_id,
            "till_id": till_id,
            "attempt_ref": attempt_ref,
            "received_at": from_epoch_ms(received_at_ms),
            "body": body.decode("utf-8", errors="replace"),
            "body_sha256": body_sha256,
            "flags": list(flags),
            "delivery_count": delivery_count,
            "security": security,
        }
        return cls.model_construct(**fields)

    def wire(self) -> dict[str, Any]:
        """The JSON object the feed sends."""
        return self.model_dump(mode="json")
