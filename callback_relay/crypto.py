"""Callback secrets at rest: AES-256-GCM under the relay key, in the secret box the till's vault
uses too (`smartduka_tui.secretbox`).

Callback secrets are symmetric (the relay recomputes each tag), so they cannot be hashed; they are
encrypted instead. Each ciphertext is `version || 12-byte random nonce || ciphertext+tag`, and its
associated data binds the shop and kid, so a ciphertext copied to another row fails to decrypt.

The relay key comes from `SMARTDUKA_RELAY_ENCRYPTION_KEY` (64 hex characters) or from the key
file `<db>.key` (mode 0600), created on the first `shop add`. A key-check value stored in the
database tells a wrong key from a tampered row. Threat model: this protects copies of the
database (backups, a disk image without the key file), not a host where the key is readable.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smartduka_tui.mpesa.callback_path import decode_secret
from smartduka_tui.secretbox import KEY_BYTES, SealBrokenError, SecretBox


class RelayKeyError(RuntimeError):
    """The relay key is missing, malformed or wrong; the message says which and how to fix it."""


def secret_aad(shop_id: str, kid: str) -> bytes:
    return f"smartduka-relay/callback-secret/{shop_id}/{kid}".encode()


_TILL_KEY_SALT = b"smartduka-relay/till-callback-key/v1"


def derive_till_secret(shop_secret: str, shop_id: str, till_id: str, revision: int) -> str:
    """A till's own callback secret: HKDF-SHA256 of the shop secret, the till and its revision.

    Each till signs only with its own derived secret, so a till's secret (leaked, or held by a
    revoked till) signs for no sibling; a new revision (`till rekey`) gives the same till a new
    secret. The shop secret itself never leaves the relay.
    """
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_TILL_KEY_SALT,
        info=f"{shop_id}/{till_id}/{revision}".encode(),
    )
    derived = hkdf.derive(decode_secret(shop_secret))
    return base64.urlsafe_b64encode(derived).rstrip(b"=").decode("ascii")


RELAY_KID = "relay"
"""The relay's one key goes by this kid in the shared box's keyring."""
_LEGACY_CHECK_TEXT = b"smartduka-relay key check v1"
_LEGACY_CHECK_AAD = b"smartduka-relay/key-check"


def relay_box(key: bytes) -> SecretBox:
    """The shared secret box (`smartduka_tui.secretbox`) over the relay key."""
    if len(key) != KEY_BYTES:
        raise RelayKeyError("the relay key must be 32 bytes (64 hex characters)")
    return SecretBox({RELAY_KID: key}, RELAY_KID)


def key_matches(box: SecretBox, stored_check: bytes) -> bool:
    """Whether `box` holds the key the database's key check was made with: the shared box's
    check, or the sealed text that relays wrote before it (read as it is, so a database made
    then opens unchanged; its sealed secrets have the box's format already)."""
    if box.matches(stored_check):
        return True
    try:
        return box.decrypt(stored_check, _LEGACY_CHECK_AAD) == _LEGACY_CHECK_TEXT
    except SealBrokenError:
        return False


def key_file_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".key")


def _parse_hex(text: str, where: str) -> bytes:
    cleaned = text.strip()
    with contextlib.suppress(ValueError):
        if len(cleaned) == 64:
            return bytes.fromhex(cleaned)
    raise RelayKeyError(f"{where} must hold 64 hexadecimal characters (a 256-bit key)")


def load_key(db_path: Path, env_key: str | None, *, create: bool) -> bytes | None:
    """The relay key: from the environment if set, else the key file; created when asked.

    Returns None when there is no key and `create` is False (a relay with no shops yet).
    """
    if env_key:
        return _parse_hex(env_key, "SMARTDUKA_RELAY_ENCRYPTION_KEY")
    path = key_file_for(db_path)
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise RelayKeyError(
                f"key file {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
            )
        return _parse_hex(path.read_text(), f"key file {path}")
    if not create:
        return None
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key
