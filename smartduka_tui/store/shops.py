"""Shops and their M-Pesa configuration (DESIGN.md section 6).

A configuration is validated as a whole, with the secrets it would have, before anything is
written: a bad field raises ShopConfigError(field, message) and the database is untouched.
Credentials live in the vault; a shop row only knows which ones are present.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import Any

from smartduka_tui.model import Actor, AuditAction, ShopSecretField, ShopType, VerificationStatus
from smartduka_tui.mpesa.callback_path import BANNED_URL_WORDS
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.credentials import Credentials
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import NotFoundError, ShopConfigError
from smartduka_tui.store.records import (
    ID_PATTERN,
    Shop,
    ShopConfig,
    ShopCredentials,
    ShopSecrets,
    row_reader,
)
from smartduka_tui.store.secret import Secret

_DIGITS_5_TO_7 = re.compile(r"^[0-9]{5,7}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,4}$")
_CREDENTIAL = re.compile(r"^[A-Za-z0-9]+$")
_NAME_MAX = 80
_CREDENTIAL_LENGTHS = {
    ShopSecretField.CONSUMER_KEY: (8, 128),
    ShopSecretField.CONSUMER_SECRET: (8, 128),
    ShopSecretField.PASSKEY: (16, 256),
}
_SHOP_SECRET_NAMES = frozenset(f.value for f in ShopSecretField)
# The vault field that keeps a sealed copy of the shop's routing fields (_routing).
ROUTING_FIELD = "routing"
# Fields whose change means M-Pesa has to be verified again.
_VERIFIED_FIELDS = ("mpesa_type", "business_shortcode", "till_number")
_ROUTING_FIELDS = (*_VERIFIED_FIELDS, "account_prefix")
_shop = row_reader(Shop, later=("secret_fields",))


def validate_shop_id(shop_id: str) -> str:
    if not isinstance(shop_id, str) or not ID_PATTERN.fullmatch(shop_id):
        raise ShopConfigError(
            "id", "must be 1 to 64 letters, digits, '-' or '_' (it appears in callback URLs)"
        )
    lowered = shop_id.lower()
    banned = next((word for word in BANNED_URL_WORDS if word in lowered), None)
    if banned is not None:
        raise ShopConfigError(
            "id", f"must not contain {banned!r}: Safaricom rejects callback URLs with that word"
        )
    return shop_id


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ShopConfigError("name", "must not be empty")
    if len(name) > _NAME_MAX:
        raise ShopConfigError("name", f"must be at most {_NAME_MAX} characters, got {len(name)}")
    if any(not ch.isprintable() for ch in name):
        raise ShopConfigError("name", "must not contain control characters")
    return name


def _validate_number(field: str, value: str | None, what: str) -> str | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not _DIGITS_5_TO_7.fullmatch(value):
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise ShopConfigError(field, f"must be 5 to 7 digits ({what}), got {shown!r}")
    return value


def _validate_secret(name: ShopSecretField, secret: Secret) -> None:
    low, high = _CREDENTIAL_LENGTHS[name]
    value = secret.reveal()
    # Messages describe the value, never repeat it.
    if not _CREDENTIAL.fullmatch(value):
        problem = "has spaces" if any(ch.isspace() for ch in value) else "has other characters"
        raise ShopConfigError(
            name.value,
            f"must be letters and digits only, as shown on the Daraja portal; the value given "
            f"{problem}",
        )
    if not low <= len(value) <= high:
        raise ShopConfigError(
            name.value, f"must be {low} to {high} characters, got {len(value)} characters"
        )


def validate_shop_config(
    config: ShopConfig, secrets_present: Collection[ShopSecretField], new_secrets: ShopSecrets
) -> ShopConfig:
    """The normalised config, or ShopConfigError for the first field that is wrong.

    `secrets_present` are the credentials the shop would have after the change.
    """
    validate_shop_id(config.id)
    name = _validate_name(config.name)
    try:
        mpesa_type = ShopType(config.mpesa_type)
    except ValueError:
        raise ShopConfigError("mpesa_type", "must be paybill, till or platform") from None
    shortcode = _validate_number(
        "business_shortcode", config.business_shortcode, "the paybill or store number"
    )
    till_number = _validate_number("till_number", config.till_number, "the Buy Goods till")
    prefix = config.account_prefix.strip() if isinstance(config.account_prefix, str) else ""
    if not _PREFIX.fullmatch(prefix):
        raise ShopConfigError(
            "account_prefix",
            "must be 1 to 4 letters or digits (AccountReference = prefix + sale number, at "
            "most 12 characters)",
        )
    if not isinstance(config.enabled, bool):
        raise ShopConfigError("enabled", "must be true or false")
    for field_name, secret in new_secrets.given().items():
        _validate_secret(field_name, secret)

    if mpesa_type is ShopType.PLATFORM:
        if shortcode is not None:
            raise ShopConfigError(
                "business_shortcode",
                "must be empty for a platform shop: it is paid through the platform's paybill",
            )
        if till_number is not None:
            raise ShopConfigError("till_number", "must be empty for a platform shop")
        if secrets_present:
            first = sorted(secrets_present)[0]
            raise ShopConfigError(
                first.value,
                "must not be set for a platform shop: the relay holds the platform's "
                "credentials (clear the shop's credentials)",
            )
    else:
        if shortcode is None:
            what = (
                "the paybill number"
                if mpesa_type is ShopType.PAYBILL
                else "the store number (BusinessShortCode) from Go-Live"
            )
            raise ShopConfigError(
                "business_shortcode", f"is required for a {mpesa_type.value} shop: {what}"
            )
        if mpesa_type is ShopType.TILL and till_number is None:
            raise ShopConfigError(
                "till_number",
                "is required for a till (Buy Goods) shop: the number customers pay to",
            )
        if mpesa_type is ShopType.PAYBILL and till_number is not None:
            raise ShopConfigError(
                "till_number", "applies only to till (Buy Goods) shops; leave it empty"
            )
        if config.enabled:
            for field_name in ShopSecretField:
                if field_name not in secrets_present:
                    raise ShopConfigError(
                        field_name.value,
                        f"is required to enable a {mpesa_type.value} shop (set it, or keep "
                        "the shop disabled until you have it)",
                    )
    return dataclasses.replace(
        config,
        name=name,
        mpesa_type=mpesa_type,
        business_shortcode=shortcode,
        till_number=till_number,
        account_prefix=prefix,
    )


class Shops:
    """Shops: add, change, read; credentials through the vault."""

    def __init__(self, db: Database, credentials: Credentials, audit: AuditLog) -> None:
        self._db = db
        self._credentials = credentials
        self._audit = audit

    async def _row_to_shop(self, row: Any, reader: Reader) -> Shop:
        present = {
            ShopSecretField(name)
            for name in await self._credentials.fields(row["id"], tx=reader)
            if name in _SHOP_SECRET_NAMES
        }
        return _shop(row, secret_fields=frozenset(present))

    async def get(self, shop_id: str, *, tx: Reader | None = None) -> Shop | None:
        reader = tx or self._db
        row = await reader.fetchone("SELECT * FROM shops WHERE id = ?", (shop_id,))
        return None if row is None else await self._row_to_shop(row, reader)

    async def require(self, shop_id: str, *, tx: Reader | None = None) -> Shop:
        shop = await self.get(shop_id, tx=tx)
        if shop is None:
            raise NotFoundError(f"there is no shop {shop_id!r} on this till")
        return shop

    async def list_ids(self) -> list[str]:
        """Every shop id (for maintenance that walks shops one at a time, like key rotation)."""
        return [row["id"] for row in await self._db.fetchall("SELECT id FROM shops ORDER BY id")]

    async def add(
        self,
        tx: WriteTx,
        config: ShopConfig,
        secrets: ShopSecrets | None = None,
        *,
        actor: Actor = Actor.MANAGER,
    ) -> Shop:
        """Create a shop; ShopConfigError (and nothing written) if any field is wrong."""
        secrets = secrets or ShopSecrets()
        given = secrets.given()
        config = validate_shop_config(config, set(given), secrets)
        if await tx.fetchone("SELECT 1 FROM shops WHERE id = ?", (config.id,)):
            raise ShopConfigError("id", f"a shop {config.id!r} already exists")
        if given:
            self._credentials.require_keys()
        now = tx.now_ms()
        await tx.execute(
            "INSERT INTO shops (id, name, mpesa_type, business_shortcode, till_number,"
            " account_prefix, enabled, verification_status, verified_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?)",
            (config.id, *_public_fields(config).values(), now, now),
        )
        await self._store_secrets(tx, config, given)
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SHOP_ADDED,
            shop_id=config.id,
            detail={**_public_fields(config), "secrets_set": sorted(f.value for f in given)},
        )
        return await self.require(config.id, tx=tx)

    async def _store_secrets(
        self, tx: WriteTx, config: ShopConfig, given: Mapping[ShopSecretField, Secret]
    ) -> None:
        """Seal the secrets given and, always, the shop's routing (it follows its config)."""
        for field_name, secret in given.items():
            await self._credentials.put(tx, config.id, field_name.value, secret)
        await self._credentials.seal_routing(tx, config.id, ROUTING_FIELD, _routing(config))

    async def update(
        self,
        tx: WriteTx,
        config: ShopConfig,
        secrets: ShopSecrets | None = None,
        *,
        clear_secrets: bool = False,
        actor: Actor = Actor.MANAGER,
    ) -> Shop:
        """Replace a shop's configuration with `config` and store any `secrets` given
        (`clear_secrets` removes the stored ones first). Changing how the shop is paid, or a
        credential, sets verification back to pending."""
        current = await self.get(config.id, tx=tx)
        if current is None:
            raise NotFoundError(f"there is no shop {config.id!r} on this till")
        secrets = secrets or ShopSecrets()
        given = secrets.given()
        present = set(given) | (set() if clear_secrets else set(current.secret_fields))
        config = validate_shop_config(config, present, secrets)
        if given:
            self._credentials.require_keys()
        before, after = _public_fields(current.config), _public_fields(config)
        changed = sorted(name for name in after if after[name] != before[name])
        cleared = sorted(f.value for f in current.secret_fields) if clear_secrets else []
        reverify = bool(given or cleared) or any(name in _VERIFIED_FIELDS for name in changed)
        if not changed and not given and not cleared:
            return current
        await tx.execute(
            "UPDATE shops SET name = ?, mpesa_type = ?, business_shortcode = ?, till_number = ?,"
            " account_prefix = ?, enabled = ?, updated_at = ? WHERE id = ?",
            (*_public_fields(config).values(), tx.now_ms(), config.id),
        )
        if reverify:
            await tx.execute(
                "UPDATE shops SET verification_status = 'pending', verified_at = NULL WHERE id = ?",
                (config.id,),
            )
        for name in cleared:
            await self._credentials.delete(tx, config.id, name)
        await self._store_secrets(tx, config, given)
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SHOP_UPDATED,
            shop_id=config.id,
            detail={
                "changed": {name: after[name] for name in changed},
                "secrets_set": sorted(f.value for f in given),
                "secrets_cleared": cleared,
            },
        )
        return await self.require(config.id, tx=tx)

    async def set_verification(
        self,
        tx: WriteTx,
        shop_id: str,
        status: VerificationStatus,
        *,
        actor: Actor = Actor.SYSTEM,
    ) -> Shop:
        """Record the outcome of checking the shop's M-Pesa credentials."""
        verified_at = tx.now_ms() if status is VerificationStatus.VERIFIED else None
        changed = await tx.fetchall(
            "UPDATE shops SET verification_status = ?, verified_at = ?, updated_at = ?"
            " WHERE id = ? RETURNING id",
            (status.value, verified_at, tx.now_ms(), shop_id),
        )
        if not changed:
            raise NotFoundError(f"there is no shop {shop_id!r} on this till")
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SHOP_VERIFICATION,
            shop_id=shop_id,
            detail={"status": status.value},
        )
        return await self.require(shop_id, tx=tx)

    async def credentials(self, shop_id: str) -> ShopCredentials:
        """The Daraja credentials of a shop with its own paybill or till (opened from the
        vault). ShopConfigError names a missing one; a platform shop has none."""
        shop = await self.require(shop_id)
        if shop.mpesa_type is ShopType.PLATFORM:
            raise ShopConfigError(
                "mpesa_type", "a platform shop has no credentials of its own: use the relay"
            )
        await self._credentials.check_routing(
            shop_id, ROUTING_FIELD, _routing(shop.config), f"shop {shop_id!r}"
        )
        values: dict[ShopSecretField, Secret] = {}
        for field_name in ShopSecretField:
            secret = await self._credentials.get(shop_id, field_name.value)
            if secret is None:
                raise ShopConfigError(field_name.value, "is not set for this shop")
            values[field_name] = secret
        return ShopCredentials(shop_id, **{name.value: secret for name, secret in values.items()})

    async def masked_secrets(self, shop_id: str) -> dict[ShopSecretField, str]:
        """Each stored credential as `****` plus its last four characters (for `shop show`)."""
        shown: dict[ShopSecretField, str] = {}
        for field_name in ShopSecretField:
            secret = await self._credentials.get(shop_id, field_name.value)
            if secret is not None:
                shown[field_name] = secret.masked()
        return shown


def _public_fields(config: ShopConfig) -> dict[str, Any]:
    """A config's fields but its id, in the shops table's column order."""
    return {
        "name": config.name,
        "mpesa_type": ShopType(config.mpesa_type).value,
        "business_shortcode": config.business_shortcode,
        "till_number": config.till_number,
        "account_prefix": config.account_prefix,
        "enabled": config.enabled,
    }


def routing_of(shop: Shop) -> dict[str, Any]:
    """The routing fields sealed beside a shop's secrets (the initiator's are checked too)."""
    return _routing(shop.config)


def _routing(config: ShopConfig) -> dict[str, Any]:
    """The fields that say where a push goes and which account it pays: sealed with the key."""
    public = _public_fields(config)
    return {name: public[name] for name in _ROUTING_FIELDS}
