"""A shop's M-Pesa settings as the manager sees and types them, and enrolment files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from smartduka_tui.model import ShopSecretField, ShopType, VerificationStatus
from smartduka_tui.payments.manager.errors import ManagerInputError
from smartduka_tui.store.secret import Secret

ENROLMENT_FORMAT = "smartduka-enrolment/1"
ENROLMENT_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class TillView:
    till_id: str
    relay_url: str
    active_callback_kid: str
    callback_kids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SettingsView:
    """A shop's M-Pesa settings for the screen. Credentials only as `****` and the last four
    characters (None: not set); they are never given back in full."""

    shop_id: str
    name: str
    mpesa_type: ShopType
    business_shortcode: str | None
    till_number: str | None
    account_prefix: str
    enabled: bool
    secrets: Mapping[ShopSecretField, str | None]
    verification_status: VerificationStatus
    verified_at: datetime | None
    last_checked_at: datetime | None
    tills: tuple[TillView, ...]
    production: bool
    initiator: str | None = None
    """The initiator (API operator) name as `****` and its last four, None when not set;
    its password is never shown at all."""


@dataclass(frozen=True, slots=True)
class SettingsForm:
    """What the manager typed. A credential left None (or blank) keeps the stored one: saved
    credentials are replaced, never shown."""

    name: str
    mpesa_type: str
    business_shortcode: str
    till_number: str
    account_prefix: str
    enabled: bool
    consumer_key: Secret | None = None
    consumer_secret: Secret | None = None
    passkey: Secret | None = None
    initiator_name: Secret | None = None
    """With `initiator_password`: both typed together, or neither (the stored pair is kept)."""
    initiator_password: Secret | None = None


class VerifyOutcome(StrEnum):
    VERIFIED = "verified"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    outcome: VerifyOutcome
    message: str
    settings: SettingsView


class EnrolmentDocument(BaseModel):
    """The relay's enrolment JSON (`smartduka-relay shop add` / `till add`, or a rotated
    callback secret). Secrets stay hidden in reprs and errors; unknown keys are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    format: str | None = None
    shop_id: str
    shop_name: str | None = None
    till_id: str | None = None
    till_key: SecretStr | None = None
    relay_url: str | None = None
    callback_kid: str
    callback_secret: SecretStr


def parse_enrolment_document(raw: bytes) -> EnrolmentDocument:
    """The enrolment in `raw`, or ManagerInputError('enrolment', ...) naming what is wrong
    (never a value from the file)."""
    if len(raw) > ENROLMENT_MAX_BYTES:
        raise ManagerInputError("enrolment", "the file is larger than 64 KiB: not an enrolment")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ManagerInputError(
            "enrolment", "the file is not JSON: use the file the relay wrote"
        ) from None
    if not isinstance(data, dict):
        raise ManagerInputError("enrolment", "the file must hold one JSON object")
    try:
        document = EnrolmentDocument.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].lower()}"
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        )
        raise ManagerInputError(
            "enrolment", f"the file is not a valid enrolment ({problems})"
        ) from None
    if document.format is not None and document.format != ENROLMENT_FORMAT:
        raise ManagerInputError(
            "enrolment", f"the file's format is not {ENROLMENT_FORMAT}: use the relay's file"
        )
    if (document.till_id is None) != (document.till_key is None):
        raise ManagerInputError("enrolment", "the file must have both till_id and till_key")
    return document


def read_enrolment_file(path_text: str) -> bytes:
    """The first bytes of the enrolment file (enough to tell one too large), or
    ManagerInputError saying why it cannot be read."""
    path = Path(path_text).expanduser()
    try:
        with path.open("rb") as handle:
            return handle.read(ENROLMENT_MAX_BYTES + 1)
    except OSError as error:
        raise ManagerInputError(
            "enrolment", f"cannot read {path}: {error.strerror or 'unreadable'}"
        ) from None
