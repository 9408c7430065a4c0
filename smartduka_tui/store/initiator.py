"""The shop's M-Pesa initiator (API operator) name and password, sealed in the vault.

Transaction Status and Reversal sign in with them (the password RSA-encrypted into the
SecurityCredential). They are sealed like the consumer secret, under vault fields that name the
shortcode (`initiator_name:600123`), so the associated data binds each ciphertext to the shop,
the field, the shortcode and the key id: a copy moved to another shop or shortcode does not
open. Reading them also checks the shop's sealed routing fields (as the Daraja credentials
do), so a database edited to point the shop elsewhere sends nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from smartduka_tui.model import Actor, AuditAction, ShopType
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.credentials import Credentials
from smartduka_tui.store.db import WriteTx
from smartduka_tui.store.errors import ShopConfigError
from smartduka_tui.store.records import Shop
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.shops import ROUTING_FIELD, Shops, routing_of

NAME_FIELD: Final = "initiator_name"
PASSWORD_FIELD: Final = "initiator_password"  # noqa: S105 - a field name, not a secret
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# An RSA-2048 key with PKCS#1 v1.5 padding holds at most 245 bytes; Safaricom's are 2048-bit.
PASSWORD_MAX: Final = 245


@dataclass(frozen=True, slots=True)
class InitiatorCredentials:
    """What Transaction Status and Reversal sign in with, for one shortcode."""

    shortcode: str
    name: Secret = field(repr=False)
    password: Secret = field(repr=False)


def _fields(shortcode: str) -> tuple[str, str]:
    return f"{NAME_FIELD}:{shortcode}", f"{PASSWORD_FIELD}:{shortcode}"


def _shortcode_of(shop: Shop) -> str:
    if shop.mpesa_type is ShopType.PLATFORM or shop.business_shortcode is None:
        raise ShopConfigError(
            "initiator",
            "this shop has no shortcode of its own (platform shops use the relay), so it has "
            "no initiator",
        )
    return shop.business_shortcode


def validate_initiator(name: Secret, password: Secret) -> None:
    """ShopConfigError naming the field; the messages describe a value, never repeat it."""
    if not _NAME.fullmatch(name.reveal()):
        raise ShopConfigError(
            "initiator_name",
            "must be 1 to 64 letters, digits, '_', '.' or '-' (the API operator's user name on "
            "the M-Pesa portal)",
        )
    secret = password.reveal()
    if not secret or any(ch in secret for ch in "\r\n\x00"):
        raise ShopConfigError("initiator_password", "must be one line, not empty")
    if len(secret.encode("utf-8")) > PASSWORD_MAX:
        raise ShopConfigError(
            "initiator_password", f"must be at most {PASSWORD_MAX} bytes (what the key can hold)"
        )


class Initiators:
    """Set and read a shop's initiator credentials (by shop id, for its current shortcode)."""

    def __init__(self, credentials: Credentials, shops: Shops, audit: AuditLog) -> None:
        self._credentials = credentials
        self._shops = shops
        self._audit = audit

    async def set(
        self,
        tx: WriteTx,
        shop_id: str,
        name: Secret,
        password: Secret,
        *,
        actor: Actor = Actor.MANAGER,
    ) -> None:
        """Store both (replacing earlier ones); ShopConfigError and nothing written if wrong."""
        shop = await self._shops.require(shop_id, tx=tx)
        shortcode = _shortcode_of(shop)
        validate_initiator(name, password)
        self._credentials.require_keys()
        name_field, password_field = _fields(shortcode)
        await self._credentials.put(tx, shop_id, name_field, name)
        await self._credentials.put(tx, shop_id, password_field, password)
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SHOP_INITIATOR_SET,
            shop_id=shop_id,
            detail={"shortcode": shortcode, "secrets_set": [NAME_FIELD, PASSWORD_FIELD]},
        )

    async def get(self, shop_id: str) -> InitiatorCredentials | None:
        """The initiator of the shop's current shortcode, or None when none is set.
        TamperedRoutingError when the routing fields differ from their sealed copy."""
        shop = await self._shops.require(shop_id)
        shortcode = _shortcode_of(shop)
        await self._credentials.check_routing(
            shop_id, ROUTING_FIELD, routing_of(shop), f"shop {shop_id!r}"
        )
        name_field, password_field = _fields(shortcode)
        name = await self._credentials.get(shop_id, name_field)
        password = await self._credentials.get(shop_id, password_field)
        if name is None or password is None:
            return None
        return InitiatorCredentials(shortcode, name, password)

    async def masked(self, shop_id: str) -> str | None:
        """The initiator name as `****` and its last four characters, for `shop show`."""
        shop = await self._shops.require(shop_id)
        if shop.mpesa_type is ShopType.PLATFORM or shop.business_shortcode is None:
            return None
        name = await self._credentials.get(shop_id, _fields(shop.business_shortcode)[0])
        return None if name is None else name.masked()
