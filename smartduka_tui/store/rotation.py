"""Key rotation: a new key in the keyring, then every secret re-sealed under it in batches.

The keyring is written (atomically, synced) before any secret is sealed with the new key, so a
crash never leaves a secret under a key that is not on disk. Each batch is one transaction. If
the process dies half way, running rotation again finds secrets not under the active key and
finishes them instead of starting another rotation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartduka_tui.faults import ROTATE_AFTER_BATCH, ROTATE_AFTER_KEYRING, fault_point
from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.store.errors import KeyMissingError, TamperedPinError
from smartduka_tui.store.pin import pin_record_kid
from smartduka_tui.store.store import Store
from smartduka_tui.store.vault import Keyring, add_new_key


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """Which kids the keyring holds, which is active and how many secrets each seals."""

    active_kid: str
    kids: tuple[str, ...]
    secrets_by_kid: dict[str, int]
    keying_log: frozenset[str] = frozenset()
    """Kids that key audit entries or the manager PIN: neither can be re-keyed (the log is
    append-only, the PIN is not known), so verify chain and the PIN need them for good."""

    @property
    def removable(self) -> tuple[str, ...]:
        """Kids nothing uses any more (keep them while backups that need them exist)."""
        return tuple(
            kid
            for kid in self.kids
            if kid != self.active_kid
            and not self.secrets_by_kid.get(kid)
            and kid not in self.keying_log
        )

    @property
    def pending(self) -> int:
        """Secrets not yet under the active kid."""
        return sum(n for kid, n in self.secrets_by_kid.items() if kid != self.active_kid)


@dataclass(frozen=True, slots=True)
class RotationReport:
    resumed: bool
    resealed: int
    keyring_path: Path
    usage: KeyUsage


def _keyring(store: Store) -> Keyring:
    if store.keyring is None:
        raise KeyMissingError("this needs the current keys, and none were loaded")
    return store.keyring


async def key_usage(store: Store) -> KeyUsage:
    keyring = _keyring(store)
    rows = await store.db.fetchall("SELECT DISTINCT kid FROM audit_log WHERE kid IS NOT NULL")
    keying = {str(row["kid"]) for row in rows}
    pin = await store.db.fetchone("SELECT pin_hash FROM manager_pin")
    if pin is not None:
        with contextlib.suppress(TamperedPinError):
            keying.add(pin_record_kid(str(pin["pin_hash"])))
    return KeyUsage(
        active_kid=keyring.active_kid,
        kids=keyring.kids,
        secrets_by_kid=await store.credentials.usage_by_kid(),
        keying_log=frozenset(keying),
    )


async def rotate_keys(
    store: Store,
    keyring_file: Path,
    *,
    batch_size: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Rotate to a new key (or finish an interrupted rotation) and re-seal every secret.

    `keyring_file` is where the keyring is written when the keys came from the environment.
    `progress(done, left)` is called after each batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    keyring = _keyring(store)
    usage = await key_usage(store)
    resumed = usage.pending > 0
    if not resumed:
        target = keyring.path or keyring_file
        new_keyring = add_new_key(keyring, target)
        fault_point(ROTATE_AFTER_KEYRING)
        await store.credentials.use_keyring(new_keyring)
        usage = await key_usage(store)
    async with store.write() as tx:
        await store.audit.append(
            tx,
            actor=Actor.MANAGER,
            action=AuditAction.KEYS_ROTATION_STARTED,
            detail={"active_kid": usage.active_kid, "resumed": resumed, "pending": usage.pending},
        )
    done = 0
    left = usage.pending
    for shop_id in await store.shops.list_ids():
        while True:
            async with store.write() as tx:
                count = await store.credentials.reseal_batch(tx, shop_id, batch_size)
            if count == 0:
                break
            done += count
            left -= count
            fault_point(ROTATE_AFTER_BATCH)
            if progress is not None:
                progress(done, left)
    final = await key_usage(store)
    async with store.write() as tx:
        await store.audit.append(
            tx,
            actor=Actor.MANAGER,
            action=AuditAction.KEYS_ROTATION_FINISHED,
            detail={
                "active_kid": final.active_kid,
                "resealed": done,
                "removable_kids": list(final.removable),
            },
        )
    return RotationReport(
        resumed=resumed,
        resealed=done,
        keyring_path=_keyring(store).path or keyring_file,
        usage=final,
    )
