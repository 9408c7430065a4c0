"""Tills enrolled with the relay: relay URL, till API key and callback secrets by kid.

The till key and each callback secret are vault fields of the till's shop
(`till:<till_id>:key`, `till:<till_id>:callback:<kid>`); several kids stay valid at once so
the relay can rotate the secret while callbacks signed with the old one are still on the way.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.mpesa.callback_path import BANNED_URL_WORDS, decode_secret
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.credentials import Credentials
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import InputError, NotFoundError
from smartduka_tui.store.records import (
    ID_PATTERN,
    KID_PATTERN,
    Enrolment,
    Till,
    TillCredentials,
    row_reader,
)
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.shops import validate_shop_id

_TILL_KEY = re.compile(r"^[\x21-\x7e]{16,512}$")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_till = row_reader(Till, later=("callback_kids",))


def till_key_field(till_id: str) -> str:
    return f"till:{till_id}:key"


def till_routing_field(till_id: str) -> str:
    return f"till:{till_id}:routing"


def callback_secret_prefix(till_id: str) -> str:
    return f"till:{till_id}:callback:"


def validate_relay_url(url: str) -> str:
    """An http(s) base URL without credentials, query or fragment; trailing '/' dropped."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("relay_url", "must be an http:// or https:// URL with a host name")
    if parts.username or parts.password:
        raise InputError("relay_url", "must not contain a user name or password")
    if parts.query or parts.fragment:
        raise InputError("relay_url", "must not have a query string or fragment")
    return url.strip().rstrip("/")


def validate_callback_secret(kid: str, secret: Secret) -> None:
    """InputError unless `kid` is a valid kid and `secret` base64url text of 128 bits or more."""
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise InputError("kid", "must be 1 to 16 letters, digits, '-' or '_'")
    if not _BASE64URL.fullmatch(secret.reveal()):
        raise InputError("callback_secret", "must be base64url text (as the relay printed it)")
    try:
        decode_secret(secret.reveal())
    except ValueError as error:
        raise InputError("callback_secret", f"{error} (use the value the relay printed)") from None


def validate_enrolment(enrolment: Enrolment) -> Enrolment:
    """The enrolment with its URL normalised, or InputError naming the first bad field."""
    try:
        validate_shop_id(enrolment.shop_id)
    except InputError as error:
        raise InputError("shop_id", error.message) from None
    if not isinstance(enrolment.till_id, str) or not ID_PATTERN.fullmatch(enrolment.till_id):
        raise InputError("till_id", "must be 1 to 64 letters, digits, '-' or '_'")
    if any(word in enrolment.till_id.lower() for word in BANNED_URL_WORDS):
        raise InputError("till_id", "contains a word Safaricom rejects in callback URLs")
    validate_callback_secret(enrolment.callback_kid, enrolment.callback_secret)
    if not _TILL_KEY.fullmatch(enrolment.till_key.reveal()):
        raise InputError(
            "till_key",
            "must be 16 to 512 printable characters without spaces (as the relay printed it)",
        )
    return replace(enrolment, relay_url=validate_relay_url(enrolment.relay_url))


class Tills:
    def __init__(self, db: Database, credentials: Credentials, audit: AuditLog) -> None:
        self._db = db
        self._credentials = credentials
        self._audit = audit

    async def _to_till(self, row: Any, reader: Reader) -> Till:
        prefix = callback_secret_prefix(row["id"])
        kids = await self._credentials.fields(row["shop_id"], prefix=prefix, tx=reader)
        return _till(row, callback_kids=tuple(name[len(prefix) :] for name in kids))

    async def get(self, shop_id: str, till_id: str, *, tx: Reader | None = None) -> Till | None:
        reader = tx or self._db
        row = await reader.fetchone(
            "SELECT * FROM tills WHERE shop_id = ? AND id = ?", (shop_id, till_id)
        )
        return None if row is None else await self._to_till(row, reader)

    async def for_shop(self, shop_id: str) -> list[Till]:
        rows = await self._db.fetchall(
            "SELECT * FROM tills WHERE shop_id = ? ORDER BY id", (shop_id,)
        )
        return [await self._to_till(row, self._db) for row in rows]

    async def enrol(
        self,
        tx: WriteTx,
        enrolment: Enrolment,
        *,
        replace_secret: bool = False,
        actor: Actor = Actor.MANAGER,
    ) -> Till:
        """Store an enrolment: the till, its key and the callback secret under its kid, which
        becomes the active one. Enrolling again (a new kid after the relay rotated the secret,
        a new till key or relay URL) updates the till; a known kid with a different secret is
        refused unless `replace_secret`."""
        enrolment = validate_enrolment(enrolment)
        shop_id, till_id, kid = enrolment.shop_id, enrolment.till_id, enrolment.callback_kid
        if await tx.fetchone("SELECT 1 FROM shops WHERE id = ?", (shop_id,)) is None:
            raise NotFoundError(f"there is no shop {shop_id!r} on this till: add it first")
        owner = await tx.fetchone("SELECT shop_id FROM tills WHERE id = ?", (till_id,))
        if owner is not None and owner["shop_id"] != shop_id:
            raise InputError("till_id", "is already enrolled here for another shop")
        secret_field = await self._kid_field(
            tx, shop_id, till_id, kid, enrolment.callback_secret, replace_secret
        )
        now = tx.now_ms()
        await tx.execute(
            "INSERT INTO tills (id, shop_id, relay_url, active_callback_kid, enrolled_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " relay_url = excluded.relay_url, active_callback_kid = excluded.active_callback_kid,"
            " updated_at = excluded.updated_at",
            (till_id, shop_id, enrolment.relay_url, kid, now, now),
        )
        await self._credentials.put(tx, shop_id, till_key_field(till_id), enrolment.till_key)
        await self._credentials.put(tx, shop_id, secret_field, enrolment.callback_secret)
        await self._credentials.seal_routing(
            tx,
            shop_id,
            till_routing_field(till_id),
            _routing(shop_id, till_id, enrolment.relay_url),
        )
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.TILL_ENROLLED if owner is None else AuditAction.TILL_RE_ENROLLED,
            shop_id=shop_id,
            detail={"till_id": till_id, "relay_url": enrolment.relay_url, "callback_kid": kid},
        )
        till = await self.get(shop_id, till_id, tx=tx)
        if till is None:
            raise RuntimeError("the till just written is not there")
        return till

    async def _kid_field(
        self, tx: WriteTx, shop_id: str, till_id: str, kid: str, secret: Secret, replace: bool
    ) -> str:
        """The vault field for `kid`; InputError if it already holds another secret."""
        secret_field = callback_secret_prefix(till_id) + kid
        known = await self._credentials.get(shop_id, secret_field, tx=tx)
        if known is not None and known != secret and not replace:
            raise InputError(
                "kid",
                f"callback kid {kid!r} is already stored with a different secret; the relay "
                "gives a new kid when it rotates the secret (replace it only if you are sure)",
            )
        return secret_field

    async def add_callback_secret(
        self,
        tx: WriteTx,
        shop_id: str,
        till_id: str,
        kid: str,
        secret: Secret,
        *,
        replace_secret: bool = False,
        actor: Actor = Actor.MANAGER,
    ) -> Till:
        """Store a callback secret the relay issued when it rotated the shop's secret, and make
        its kid the active one (older kids stay valid until the relay retires them)."""
        validate_callback_secret(kid, secret)
        if await self.get(shop_id, till_id, tx=tx) is None:
            raise NotFoundError(f"till {till_id!r} is not enrolled for shop {shop_id!r}")
        secret_field = await self._kid_field(tx, shop_id, till_id, kid, secret, replace_secret)
        await self._credentials.put(tx, shop_id, secret_field, secret)
        await tx.execute(
            "UPDATE tills SET active_callback_kid = ?, updated_at = ? WHERE shop_id = ? AND id = ?",
            (kid, tx.now_ms(), shop_id, till_id),
        )
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.TILL_CALLBACK_SECRET_ADDED,
            shop_id=shop_id,
            detail={"till_id": till_id, "callback_kid": kid},
        )
        till = await self.get(shop_id, till_id, tx=tx)
        if till is None:
            raise RuntimeError("the till just written is not there")
        return till

    async def credentials(self, shop_id: str, till_id: str) -> TillCredentials:
        """The till key and callback secrets, opened from the vault."""
        till = await self.get(shop_id, till_id)
        if till is None:
            raise NotFoundError(f"till {till_id!r} is not enrolled for shop {shop_id!r}")
        await self._credentials.check_routing(
            shop_id,
            till_routing_field(till_id),
            _routing(shop_id, till_id, till.relay_url),
            f"till {till_id!r} of shop {shop_id!r}",
        )
        till_key = await self._credentials.get(shop_id, till_key_field(till_id))
        if till_key is None:
            raise NotFoundError(f"till {till_id!r} has no till key: enrol it again")
        secrets: dict[str, Secret] = {}
        for kid in till.callback_kids:
            secret = await self._credentials.get(shop_id, callback_secret_prefix(till_id) + kid)
            if secret is not None:
                secrets[kid] = secret
        if till.active_callback_kid not in secrets:
            raise NotFoundError(
                f"till {till_id!r} has no callback secret for its active kid: enrol it again"
            )
        return TillCredentials(
            shop_id=shop_id,
            till_id=till_id,
            relay_url=till.relay_url,
            till_key=till_key,
            active_callback_kid=till.active_callback_kid,
            callback_secrets=secrets,
        )


def _routing(shop_id: str, till_id: str, relay_url: str) -> dict[str, Any]:
    """Where the till key goes: sealed with the key at enrolment."""
    return {"shop_id": shop_id, "till_id": till_id, "relay_url": relay_url}
