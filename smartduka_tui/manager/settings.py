"""A shop's M-Pesa settings as the manager sees and types them (the enrolment file is
`smartduka_tui.mpesa.enrolment`, shared with the relay)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from smartduka_tui.model import ShopSecretField, ShopType, VerificationStatus
from smartduka_tui.store.secret import Secret


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
