"""The enrolment file: what the relay prints for a till and the till keeps.

The relay writes it (`smartduka-relay shop add`, `till add`, `till rekey`); the till reads it
(`smartduka enrol FILE`, the manager's M-Pesa settings screen). One model (`Enrolment`, built
on `RotatedSecret`) and one strict loader serve both sides, so the writer and the readers
cannot drift apart. The shapes read:

- a till enrolment, format `smartduka-enrolment/1`: shop_id, shop_name, till_id, till_key,
  callback_secret, callback_kid and relay_url (null when the relay has no public URL). A till
  enrolled before per-till callback keys got the shop's own kid (`k1`), one since then its own
  (`k1-r1`); the shape is the same.
- a rotated callback secret, as `shop rotate-secret --json` printed it before per-till keys:
  shop_id, callback_kid and callback_secret, no till. Its kid is added to the shop's tills.

A missing `format` reads as version 1, keys this code does not know are ignored (a newer relay
may add some), and a file with till_id but no till_key (or the reverse) is refused. Secrets
never show in a repr, a str or a validation error, and no error quotes a value from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smartduka_tui.mpesa.models import strict_json

ENROLMENT_FORMAT: Final = "smartduka-enrolment/1"
MAX_ENROLMENT_BYTES: Final = 64 * 1024


class EnrolmentError(ValueError):
    """A file that is not an enrolment this code reads. The message says what is wrong, never a
    value from the file."""


class RotatedSecret(BaseModel):
    """A shop's new callback secret for the tills it already has (the old `shop rotate-secret`
    output): no till of its own."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True, hide_input_in_errors=True)

    format: str | None = None
    shop_id: str
    shop_name: str | None = None
    callback_secret: str = Field(repr=False)
    callback_kid: str


class Enrolment(RotatedSecret):
    """What a till needs to join the relay: printed once by the relay, kept in the till's vault,
    never stored in the clear."""

    till_id: str
    till_key: str = Field(repr=False)
    relay_url: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The file, secrets in the clear (the relay prints it once), in the relay's key order."""
        return {
            "format": ENROLMENT_FORMAT,
            "shop_id": self.shop_id,
            "shop_name": self.shop_name,
            "till_id": self.till_id,
            "till_key": self.till_key,
            "callback_secret": self.callback_secret,
            "callback_kid": self.callback_kid,
            "relay_url": self.relay_url,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2)


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "the file"
    if error["type"] == "missing":
        return f"{where}: field required"
    if error["type"] == "string_type":
        return f"{where}: must be text"
    return f"{where}: {error['msg'].lower()}"


def load_enrolment(raw: bytes, source: str = "the file") -> Enrolment | RotatedSecret:
    """The enrolment in `raw`, or EnrolmentError naming what is wrong, `source` (a path, or
    "the file") first."""
    if len(raw) > MAX_ENROLMENT_BYTES:
        raise EnrolmentError(f"{source} is larger than 64 KiB: not an enrolment file")
    try:
        data = strict_json(raw)
    except ValueError:
        raise EnrolmentError(
            f"{source} is not JSON: use the enrolment file the relay wrote"
        ) from None
    if not isinstance(data, dict):
        raise EnrolmentError(f"{source} must hold one JSON object")
    has_id, has_key = (data.get(name) is not None for name in ("till_id", "till_key"))
    if has_id != has_key:
        missing = "till_id" if has_key else "till_key"
        raise EnrolmentError(
            f"{source}: {missing}: field required (a till's enrolment must have both till_id "
            "and till_key)"
        )
    model = Enrolment if has_id else RotatedSecret
    try:
        document = model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            _problem(e)
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        )
        raise EnrolmentError(f"{source} is not a valid enrolment: {problems}") from None
    if document.format is not None and document.format != ENROLMENT_FORMAT:
        raise EnrolmentError(
            f"{source}: its format is not {ENROLMENT_FORMAT}, the only one this SmartDuka "
            "reads: use the relay's file"
        )
    return document


def read_enrolment_file(path: str | Path) -> bytes:
    """The first bytes of the file at `path` (`~` expanded), enough to tell one too large; or
    EnrolmentError saying why it cannot be read."""
    where = Path(path).expanduser()
    try:
        with where.open("rb") as handle:
            return handle.read(MAX_ENROLMENT_BYTES + 1)
    except OSError as error:
        raise EnrolmentError(f"cannot read {where}: {error.strerror or 'unreadable'}") from None
