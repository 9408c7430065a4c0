"""Shops, tills and callback secrets: enrolment, rotation and revocation.

Used by the CLI (`shop add`, `till add`, ...) and, through `SecretCache`, by the callback route.
Callback secrets are encrypted at rest (see `crypto`); till keys are kept only as SHA-256.

Per-till callback keys: a shop's secrets never leave the relay. Each till gets its own secret
derived from the newest shop secret, its till id and its key revision (`derive_till_secret`),
under a till kid `k<N>-r<revision>`; it signs only for itself, so revoking a till ends its power
to sign for anyone, and `till rekey` moves a till to the next revision (the old secret and till
key stop working). Tills enrolled before this (revision 0) still sign with the shop secret under
`k<N>` until they are rekeyed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from callback_relay import ids
from callback_relay.crypto import (
    RelayKeyError,
    derive_till_secret,
    key_matches,
    load_key,
    relay_box,
    secret_aad,
)
from callback_relay.store import RelayStore, SecretRecord, ShopRecord, TillRecord
from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.mpesa.callback_path import new_callback_secret
from smartduka_tui.mpesa.enrolment import ENROLMENT_FORMAT, Enrolment
from smartduka_tui.secretbox import SecretBox

KEY_CHECK = "key_check"
_KID = re.compile(r"^k([1-9][0-9]{0,5})$")
# New tills start at revision 1; 0 is a till enrolled before per-till keys.
FIRST_REVISION = 1
_NAME_MAX = 64


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says why. Nothing was changed."""


def now_ms(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1000)


@dataclass(frozen=True)
class NewSecret:
    """A shop's new secret kid. The secret stays at the relay; tills move by `till rekey`."""

    shop_id: str
    kid: str


def till_kid(shop_kid: str, revision: int) -> str:
    """The kid a till signs with: the shop kid its secret derives from, and its revision."""
    return f"{shop_kid}-r{revision}"


def till_secrets(shop_id: str, till: TillRecord, shop_secrets: dict[str, str]) -> dict[str, str]:
    """The secrets a till's callbacks are checked with, by kid: its own derived secret under
    each live shop kid, or (revision 0, enrolled before per-till keys) the shop secrets."""
    if till.revoked_at is not None:
        return {}
    if till.key_revision == 0:
        return dict(shop_secrets)
    return {
        till_kid(kid, till.key_revision): derive_till_secret(
            secret, shop_id, till.till_id, till.key_revision
        )
        for kid, secret in shop_secrets.items()
    }


def check_shop_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise RegistryError("shop name must not be empty")
    if len(cleaned) > _NAME_MAX:
        raise RegistryError(f"shop name must be at most {_NAME_MAX} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise RegistryError("shop name must not contain control characters")
    return cleaned


async def open_box(
    store: RelayStore, db_path: Path, env_key: str | None, *, create: bool
) -> SecretBox | None:
    """The relay's SecretBox, checked against the database's key-check value.

    With `create`, a missing key file is made (first `shop add`). Raises RelayKeyError when the
    key is wrong, or missing while the database holds encrypted secrets.
    """
    key = load_key(db_path, env_key, create=create)
    stored_check = await store.get_meta(KEY_CHECK)
    if key is None:
        if stored_check is not None:
            raise RelayKeyError(
                "the database holds encrypted callback secrets but no relay key was found: "
                "set SMARTDUKA_RELAY_ENCRYPTION_KEY or restore the key file "
                f"{db_path.name}.key next to the database"
            )
        return None
    box = relay_box(key)
    if stored_check is None:
        stored_check = await store.set_meta_if_absent(KEY_CHECK, box.key_check())
    if not key_matches(box, stored_check):
        raise RelayKeyError(
            "the relay key does not match the one this database was created with: check "
            "SMARTDUKA_RELAY_ENCRYPTION_KEY or the key file next to the database"
        )
    return box


class Registry:
    """Enrolment and key management over a store."""

    def __init__(
        self, store: RelayStore, box: SecretBox, clock: Clock, relay_url: str | None = None
    ) -> None:
        self._store = store
        self._box = box
        self._clock = clock
        self._relay_url = relay_url

    @property
    def store(self) -> RelayStore:
        return self._store

    async def _shop(self, shop_id: str) -> ShopRecord:
        shop = await self._store.get_shop(shop_id) if ids.is_id(shop_id) else None
        if shop is None:
            raise RegistryError(f"no shop with id {shop_id[:32]!r}")
        return shop

    def _seal(self, shop_id: str, kid: str, secret: str, created_at: int) -> SecretRecord:
        ciphertext = self._box.encrypt(secret.encode("ascii"), secret_aad(shop_id, kid))
        return SecretRecord(shop_id, kid, ciphertext, created_at)

    def _open(self, record: SecretRecord) -> str:
        plain = self._box.decrypt(record.ciphertext, secret_aad(record.shop_id, record.kid))
        return plain.decode("ascii")

    def _new_till(self, shop_id: str, created_at: int) -> tuple[TillRecord, str]:
        till_id = ids.new_till_id()
        key = ids.new_till_key(till_id)
        record = TillRecord(
            till_id, shop_id, ids.hash_key(key), created_at, key_revision=FIRST_REVISION
        )
        return record, key

    def _enrolment(
        self, shop: ShopRecord, till: TillRecord, key: str, shop_kid: str, shop_secret: str
    ) -> Enrolment:
        """What the till is given: its own derived secret, never the shop's."""
        return Enrolment(
            format=ENROLMENT_FORMAT,
            shop_id=shop.shop_id,
            shop_name=shop.name,
            till_id=till.till_id,
            till_key=key,
            callback_secret=derive_till_secret(
                shop_secret, shop.shop_id, till.till_id, till.key_revision
            ),
            callback_kid=till_kid(shop_kid, till.key_revision),
            relay_url=self._relay_url,
        )

    async def add_shop(self, name: str) -> Enrolment:
        shop_name = check_shop_name(name)
        created = now_ms(self._clock)
        shop = ShopRecord(ids.new_shop_id(), shop_name, created)
        secret = new_callback_secret()
        record = self._seal(shop.shop_id, "k1", secret, created)
        till, key = self._new_till(shop.shop_id, created)
        await self._store.add_shop(shop, record, till)
        return self._enrolment(shop, till, key, "k1", secret)

    async def _newest_secret(self, shop_id: str) -> SecretRecord:
        live = [s for s in await self._store.list_secrets(shop_id) if s.retired_at is None]
        if not live:
            raise RegistryError(f"shop {shop_id} has no active callback secret; rotate first")
        return max(live, key=lambda s: _kid_number(s.kid))

    async def add_till(self, shop_id: str) -> Enrolment:
        shop = await self._shop(shop_id)
        newest = await self._newest_secret(shop.shop_id)
        till, key = self._new_till(shop.shop_id, now_ms(self._clock))
        await self._store.add_till(till)
        return self._enrolment(shop, till, key, newest.kid, self._open(newest))

    async def _till(self, till_id: str, *, revoked: str = "is revoked") -> TillRecord:
        """The live till `till_id`, or RegistryError: no such till, or it `revoked`."""
        till = await self._store.get_till(till_id) if ids.is_id(till_id) else None
        if till is None:
            raise RegistryError(f"no till with id {till_id[:32]!r}")
        if till.revoked_at is not None:
            raise RegistryError(f"till {till_id} {revoked}")
        return till

    async def revoke_till(self, till_id: str) -> None:
        await self._till(till_id, revoked="is already revoked")
        await self._store.revoke_till(till_id, now_ms(self._clock))

    async def rekey_till(self, till_id: str) -> Enrolment:
        """The same till with a new till key and the next callback-key revision, derived from
        the shop's newest secret: its previous key and callback secret are refused from now."""
        till = await self._till(till_id)
        shop = await self._shop(till.shop_id)
        newest = await self._newest_secret(shop.shop_id)
        key = ids.new_till_key(till.till_id)
        revision = till.key_revision + 1
        if not await self._store.rekey_till(till.till_id, ids.hash_key(key), revision):
            raise RegistryError(f"till {till_id} changed meanwhile (revoked or rekeyed); try again")
        rekeyed = TillRecord(
            till.till_id, shop.shop_id, ids.hash_key(key), till.created_at, None, revision
        )
        return self._enrolment(shop, rekeyed, key, newest.kid, self._open(newest))

    async def rotate_secret(self, shop_id: str) -> NewSecret:
        shop = await self._shop(shop_id)
        existing = await self._store.list_secrets(shop.shop_id)
        number = max((_kid_number(s.kid) for s in existing), default=0) + 1
        kid = f"k{number}"
        secret = new_callback_secret()
        await self._store.add_secret(self._seal(shop.shop_id, kid, secret, now_ms(self._clock)))
        return NewSecret(shop.shop_id, kid)

    async def retire_kid(self, shop_id: str, kid: str) -> None:
        shop = await self._shop(shop_id)
        secrets_ = await self._store.list_secrets(shop.shop_id)
        target = next((s for s in secrets_ if s.kid == kid), None)
        if target is None:
            raise RegistryError(f"shop {shop.shop_id} has no kid {kid[:16]!r}")
        if target.retired_at is not None:
            raise RegistryError(f"kid {kid} of shop {shop.shop_id} is already retired")
        if sum(1 for s in secrets_ if s.retired_at is None) == 1:
            raise RegistryError(
                f"kid {kid} is the shop's only active secret; run `shop rotate-secret "
                f"{shop.shop_id}` first"
            )
        await self._store.retire_secret(shop.shop_id, kid, now_ms(self._clock))


def _kid_number(kid: str) -> int:
    match = _KID.fullmatch(kid)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True, slots=True)
class ShopEntry:
    """What the callback route needs about a shop: live shop secrets by kid, its tills, and
    each live till's own callback secrets by kid (`till_secrets`)."""

    secrets_by_kid: dict[str, str] = field(repr=False)
    tills: frozenset[str]
    secrets_by_till: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def till_secrets(self, till_id: str) -> dict[str, str]:
        """What a callback for `till_id` may be signed with; empty for a revoked or unknown till."""
        return self.secrets_by_till.get(till_id, {})


class SecretCache:
    """Decrypted live callback secrets, refreshed when the registry version moves.

    The callback route must not touch the database per request, so it reads this cache. A
    periodic `refresh_if_changed` (every `registry_refresh_s`, run by the app) picks up changes
    made by the CLI in another process; a miss (unknown shop, kid or till) may `recheck` at once,
    at most every `miss_check_s`, so random ids cannot turn into a database load.

    `pacing` times that throttle: the real clock, since it bounds database reads per real
    second (a property of the machine, not of the business timeline the relay's injectable
    clock models). A test may swap in a ManualClock to hold a recheck's wait open.
    """

    def __init__(
        self,
        store: RelayStore,
        open_box: Callable[[], Awaitable[SecretBox | None]],
        *,
        miss_check_s: float = 0.1,
        pacing: Clock | None = None,
    ) -> None:
        self._store = store
        self.pacing: Clock = pacing or SystemClock()
        self._open_box = open_box
        self._box: SecretBox | None = None
        self._miss_check_s = miss_check_s
        self._version = -1
        self._shops: dict[str, ShopEntry] = {}
        self._recheck: asyncio.Future[bool] | None = None
        self._loading = asyncio.Lock()
        self._miss_checked_at = float("-inf")
        # Derived till secrets kept across reloads: a reload re-derives only what changed.
        self._derived: dict[tuple[str, str, int, str], dict[str, str]] = {}
        self._derived_used: set[tuple[str, str, int, str]] = set()

    def __repr__(self) -> str:
        return f"SecretCache(shops={len(self._shops)}, version={self._version})"

    async def load(self) -> None:
        snapshot = await self._store.load_registry()
        if snapshot.secrets and self._box is None:
            self._box = await self._open_box()
            if self._box is None:
                raise RelayKeyError("callback secrets exist but no relay key was found")
        secrets_by_shop: dict[str, dict[str, str]] = {s.shop_id: {} for s in snapshot.shops}
        for record in snapshot.secrets:
            assert self._box is not None
            plain = self._box.decrypt(record.ciphertext, secret_aad(record.shop_id, record.kid))
            secrets_by_shop.setdefault(record.shop_id, {})[record.kid] = plain.decode("ascii")
        tills_by_shop: dict[str, set[str]] = {}
        keys_by_shop: dict[str, dict[str, dict[str, str]]] = {}
        for till in snapshot.tills:
            tills_by_shop.setdefault(till.shop_id, set()).add(till.till_id)
            by_kid = secrets_by_shop.get(till.shop_id, {})
            keys_by_shop.setdefault(till.shop_id, {})[till.till_id] = self._till_keys(till, by_kid)
        self._shops = {
            shop_id: ShopEntry(
                by_kid, frozenset(tills_by_shop.get(shop_id, ())), keys_by_shop.get(shop_id, {})
            )
            for shop_id, by_kid in secrets_by_shop.items()
        }
        self._derived = {
            key: value for key, value in self._derived.items() if key in self._derived_used
        }
        self._derived_used = set()
        self._version = snapshot.version

    def _till_keys(self, till: TillRecord, shop_secrets: dict[str, str]) -> dict[str, str]:
        if till.revoked_at is not None:
            return {}
        # A kid's secret never changes, so the live kids name what the derivation used.
        memo = (till.shop_id, till.till_id, till.key_revision, ",".join(sorted(shop_secrets)))
        self._derived_used.add(memo)
        keys = self._derived.get(memo)
        if keys is None:
            keys = self._derived[memo] = till_secrets(till.shop_id, till, shop_secrets)
        return keys

    async def refresh_if_changed(self) -> bool:
        """Reload when the registry changed since the last load; True if it did. One at a
        time: the periodic refresh and a miss's recheck could otherwise overlap, and the one
        that read the older registry could finish last and put it back."""
        async with self._loading:
            if await self._store.registry_version() == self._version:
                return False
            await self.load()
            return True

    def entry(self, shop_id: str) -> ShopEntry | None:
        return self._shops.get(shop_id)

    async def fresh_entry(self, shop_id: str, till_id: str, kid: str) -> ShopEntry | None:
        """The shop's entry for a signed path of (shop, till, kid), read again after one
        recheck when it lacks any of the three (a shop or till enrolled a moment ago).

        The cache is read again whatever the recheck itself found: the periodic refresh may
        have loaded the change in the meantime, and a callback refused then is a payment
        Safaricom never sends again.
        """
        entry = self.entry(shop_id)
        if entry is None or till_id not in entry.tills or kid not in entry.till_secrets(till_id):
            await self.recheck()
            entry = self.entry(shop_id) or entry
        return entry

    async def recheck(self) -> bool:
        """After a miss: check the registry version, at most once per `miss_check_s`.

        A miss inside the window waits for the window's end rather than being refused, so a
        shop enrolled a moment ago is found; concurrent misses share one check, so random ids
        cannot turn into a database load (they only wait a little longer for their 404).
        """
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.ensure_future(self._throttled_refresh())
        return await asyncio.shield(self._recheck)

    async def _throttled_refresh(self) -> bool:
        remaining = self._miss_check_s - (self.pacing.monotonic() - self._miss_checked_at)
        if remaining > 0:
            await self.pacing.sleep(remaining)
        self._miss_checked_at = self.pacing.monotonic()
        return await self.refresh_if_changed()
