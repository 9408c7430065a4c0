"""Sealed secrets in the database, one row per (shop, field), and the key checks.

The repositories for shops and tills keep their secrets here; nothing else reads the `secrets`
table. Plaintext exists only in `Secret` objects in memory.
"""

from __future__ import annotations

import json
import re
from typing import Any

from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import KeyMissingError, TamperedRoutingError
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.vault import Keyring, Vault

_FIELD = re.compile(r"^[a-z_]+(:[A-Za-z0-9_-]{1,64})*$")


def _no_key() -> KeyMissingError:
    return KeyMissingError(
        "this needs the encryption key, and the store was opened without one. Create a "
        "keyring with `smartduka keys init`, or set SMARTDUKA_ENCRYPTION_KEY."
    )


def _routing_text(routing: dict[str, Any]) -> str:
    return json.dumps(routing, sort_keys=True, separators=(",", ":"))


def _check_field(field_name: str) -> None:
    if not _FIELD.fullmatch(field_name):
        raise ValueError(f"not a vault field name: {field_name!r}")


class Credentials:
    """The vault's rows: seal on write, open on read, always by shop id."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._vault: Vault | None = None
        self._derived: dict[tuple[str, str], bytes] = {}

    @property
    def keyring(self) -> Keyring | None:
        return None if self._vault is None else self._vault.keyring

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            raise _no_key()
        return self._vault

    @property
    def active_kid(self) -> str | None:
        """The kid new secrets and audit entries are keyed with; None without a keyring."""
        return None if self._vault is None else self._vault.keyring.active_kid

    def derived_key(self, kid: str, purpose: str) -> bytes:
        """`purpose`'s key derived from vault key `kid` (KeyMissingError without it)."""
        cached = self._derived.get((kid, purpose))
        if cached is None:
            cached = self._derived[(kid, purpose)] = self.vault.derive(kid, purpose)
        return cached

    def require_keys(self) -> None:
        """KeyMissingError now, before anything is written, if secrets cannot be sealed."""
        if self._vault is None:
            raise _no_key()

    async def use_keyring(self, keyring: Keyring) -> None:
        """Check `keyring` against the database, then use it.

        WrongKeyError if a kid's key differs from the one its key check was made with;
        KeyMissingError if stored secrets use a kid the keyring lacks. The active kid gets its
        key check stored the first time it is seen.
        """
        vault = Vault(keyring)
        checks = {
            row["kid"]: bytes(row["check_blob"])
            for row in await self._db.fetchall("SELECT kid, check_blob FROM key_checks")
        }
        missing = vault.missing_kids(checks.items(), await self.usage_by_kid())
        if missing:
            raise KeyMissingError(
                f"stored secrets are sealed with key(s) {', '.join(missing)}, which "
                f"{keyring.source} does not have. Restore the keyring that holds "
                f"{'them' if len(missing) > 1 else 'it'} (from your backup of it)."
            )
        if keyring.active_kid not in checks:
            async with self._db.write() as tx:
                await self._ensure_key_check(tx, vault, keyring.active_kid)
        self._vault = vault
        self._derived.clear()

    async def _ensure_key_check(self, tx: WriteTx, vault: Vault, kid: str) -> None:
        row = await tx.fetchone("SELECT check_blob FROM key_checks WHERE kid = ?", (kid,))
        if row is None:
            await tx.execute(
                "INSERT INTO key_checks (kid, check_blob, created_at) VALUES (?, ?, ?)",
                (kid, vault.key_check(kid), tx.now_ms()),
            )
        else:
            vault.verify_key_check(kid, bytes(row["check_blob"]))

    async def put(self, tx: WriteTx, shop_id: str, field_name: str, secret: Secret) -> None:
        """Seal `secret` under the active key and store it (replacing any earlier value)."""
        _check_field(field_name)
        vault = self.vault
        kid, blob = vault.seal(shop_id, field_name, secret)
        await self._ensure_key_check(tx, vault, kid)
        await tx.execute(
            "INSERT INTO secrets (shop_id, field, kid, blob, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (shop_id, field) DO UPDATE SET"
            " kid = excluded.kid, blob = excluded.blob, updated_at = excluded.updated_at",
            (shop_id, field_name, kid, blob, tx.now_ms()),
        )

    async def get(
        self, shop_id: str, field_name: str, *, tx: Reader | None = None
    ) -> Secret | None:
        _check_field(field_name)
        row = await (tx or self._db).fetchone(
            "SELECT kid, blob FROM secrets WHERE shop_id = ? AND field = ?", (shop_id, field_name)
        )
        if row is None:
            return None
        return self.vault.open(shop_id, field_name, row["kid"], bytes(row["blob"]))

    async def delete(self, tx: WriteTx, shop_id: str, field_name: str) -> bool:
        _check_field(field_name)
        deleted = await tx.fetchall(
            "DELETE FROM secrets WHERE shop_id = ? AND field = ? RETURNING field",
            (shop_id, field_name),
        )
        return bool(deleted)

    async def seal_routing(
        self, tx: WriteTx, shop_id: str, field_name: str, routing: dict[str, Any]
    ) -> None:
        """Keep a sealed copy of the plain routing fields (shortcode, relay URL) beside the
        secrets they send: `check_routing` then refuses a row edited in the database. Without a
        key, refuses when the shop already has sealed secrets (the copy would go stale)."""
        if self._vault is None:
            if await self.fields(shop_id, tx=tx):
                raise _no_key()
            return
        await self.put(tx, shop_id, field_name, Secret(_routing_text(routing)))

    async def check_routing(
        self, shop_id: str, field_name: str, routing: dict[str, Any], what: str
    ) -> None:
        """TamperedRoutingError unless `routing` is what was sealed (or nothing is sealed for a
        shop without secrets). Called before secrets leave the till."""
        sealed = await self.get(shop_id, field_name)
        if sealed is None:
            if not await self.fields(shop_id):
                return
            raise TamperedRoutingError(
                f"{what} has credentials but no sealed copy of its routing fields: the database "
                "was edited (or written by a version before the seal). Nothing was sent. Set "
                "its configuration again (smartduka shop set / smartduka enrol) after checking "
                "it, or restore the database from a backup."
            )
        kept = json.loads(sealed.reveal())
        changed = sorted(
            name for name in set(kept) | set(routing) if kept.get(name) != routing.get(name)
        )
        if changed:
            raise TamperedRoutingError(
                f"{what}: {', '.join(name.replace('_', ' ') for name in changed)} in the database "
                "differ from the copy sealed with the encryption key, so the database was edited "
                "to send the credentials or the money elsewhere. Nothing was sent. Check the "
                "configuration, set it again (smartduka shop set / smartduka enrol) if the change "
                "was yours, or restore the database from a backup."
            )

    async def fields(
        self, shop_id: str, *, prefix: str = "", tx: Reader | None = None
    ) -> list[str]:
        """Names of the secrets a shop has (values stay sealed), optionally by name prefix."""
        rows = await (tx or self._db).fetchall(
            "SELECT field FROM secrets WHERE shop_id = ? AND substr(field, 1, ?) = ?"
            " ORDER BY field",
            (shop_id, len(prefix), prefix),
        )
        return [row["field"] for row in rows]

    async def usage_by_kid(self) -> dict[str, int]:
        """How many secrets each kid seals (counts only: for rotation and `keys status`)."""
        rows = await self._db.fetchall("SELECT kid, count(*) AS n FROM secrets GROUP BY kid")
        return {row["kid"]: int(row["n"]) for row in rows}

    async def reseal_batch(self, tx: WriteTx, shop_id: str, limit: int) -> int:
        """Re-seal up to `limit` of a shop's secrets that are not under the active key; returns
        how many. Rotation calls it until it returns 0."""
        vault = self.vault
        active = vault.keyring.active_kid
        rows = await tx.fetchall(
            "SELECT field, kid, blob FROM secrets WHERE shop_id = ? AND kid != ?"
            " ORDER BY field LIMIT ?",
            (shop_id, active, limit),
        )
        await self._ensure_key_check(tx, vault, active)
        for row in rows:
            secret = vault.open(shop_id, row["field"], row["kid"], bytes(row["blob"]))
            kid, blob = vault.seal(shop_id, row["field"], secret)
            await tx.execute(
                "UPDATE secrets SET kid = ?, blob = ?, updated_at = ?"
                " WHERE shop_id = ? AND field = ?",
                (kid, blob, tx.now_ms(), shop_id, row["field"]),
            )
        return len(rows)
