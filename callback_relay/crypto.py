"""Callback secrets at rest: AES-256-GCM under the relay key.

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
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smartduka_tui.mpesa.callback_path import decode_secret

_VERSION = b"\x01"
_NONCE_BYTES = 12
_KEY_CHECK_PLAINTEXT = b"smartduka-relay key check v1"
_KEY_CHECK_AAD = b"smartduka-relay/key-check"


class RelayKeyError(RuntimeError):
    """The relay key is missing, malformed or wrong; the message says which and how to fix it."""


class SecretDecryptError(RuntimeError):
    """A stored secret did not decrypt under the right key: the row was tampered with or moved."""


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


class SecretBox:
    """AES-256-GCM with a random 12-byte nonce per message. Never shows its key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise RelayKeyError("the relay key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key redacted>)"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
            raise SecretDecryptError("stored secret has an unknown format")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE_BYTES :], aad)
        except InvalidTag:
            raise SecretDecryptError(
                "stored secret failed its integrity check (tampered with or moved)"
            ) from None

    def key_check(self) -> bytes:
        """A value stored once so that a later start can tell whether it holds the same key."""
        return self.encrypt(_KEY_CHECK_PLAINTEXT, _KEY_CHECK_AAD)

    def matches(self, key_check: bytes) -> bool:
        try:
            return self.decrypt(key_check, _KEY_CHECK_AAD) == _KEY_CHECK_PLAINTEXT
        except SecretDecryptError:
            return False


def key_file_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".key")


def _parse_hex(text: str, where: str) -> bytes:
    cleaned = text.strip()
    if len(cleaned) != 64:
        raise RelayKeyError(f"{where} must hold 64 hexadecimal characters (a 256-bit key)")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise RelayKeyError(
            f"{where} must hold 64 hexadecimal characters (a 256-bit key)"
        ) from None


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
