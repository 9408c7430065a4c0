"""One AES-256-GCM secret box over a keyring, shared by the till's vault (`store.vault`) and the
relay's stored secrets (`callback_relay.crypto`).

A sealed value is `version byte (1) | 12-byte random nonce | ciphertext+tag`, its associated
data given by the caller to bind it to its place (shop, field, kid), so a value copied to
another place fails to open. A key check is `12-byte nonce | ciphertext+tag` of a fixed text
under a kid's key, stored beside the data to tell a wrong key from altered data later.

The hierarchy (no message names a key or a plaintext; callers add what was being opened):

* BoxError (Exception)
  * UnknownKidError
  * SealBrokenError
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
SEAL_VERSION = 1
_TAG_BYTES = 16
_KEY_CHECK_TEXT = b"smartduka vault key check"


class BoxError(Exception):
    """A secret box could not do what was asked."""


class UnknownKidError(BoxError):
    """The keyring holds no key for `kid`."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"no key for kid {kid!r}")
        self.kid = kid


class SealBrokenError(BoxError):
    """A value is not sealed in this format, or fails authentication (altered or moved)."""


class SecretBox:
    """Seals and opens values with the keys of a keyring; new values under `active_kid`.
    Never shows a key."""

    __slots__ = ("_keys", "active_kid")

    def __init__(self, keys: Mapping[str, bytes], active_kid: str) -> None:
        if any(len(key) != KEY_BYTES for key in keys.values()):
            raise ValueError(f"every key must be {KEY_BYTES} bytes (64 hex characters)")
        if active_kid not in keys:
            raise ValueError("the active kid must be one of the keys")
        self._keys = dict(keys)
        self.active_kid = active_kid

    def __repr__(self) -> str:
        return f"SecretBox(kids={list(self._keys)!r}, active_kid={self.active_kid!r})"

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def _key(self, kid: str | None) -> bytes:
        kid = self.active_kid if kid is None else kid
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKidError(kid)
        return key

    def encrypt(self, plaintext: bytes, aad: bytes, *, kid: str | None = None) -> bytes:
        """`plaintext` sealed under `kid`'s key (the active one by default)."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes([SEAL_VERSION]) + nonce + AESGCM(self._key(kid)).encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes, *, kid: str | None = None) -> bytes:
        """The plaintext sealed in `blob` under `kid`'s key with the same `aad`."""
        aead = AESGCM(self._key(kid))
        if len(blob) < 1 + NONCE_BYTES + _TAG_BYTES or blob[0] != SEAL_VERSION:
            raise SealBrokenError("stored secret has an unknown format")
        try:
            return aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
        except InvalidTag:
            raise SealBrokenError(
                "stored secret failed its integrity check (tampered with or moved)"
            ) from None

    def key_check(self, kid: str | None = None) -> bytes:
        """A value to store beside the data that proves, later, which key `kid` stood for."""
        kid = self.active_kid if kid is None else kid
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._key(kid)).encrypt(nonce, _KEY_CHECK_TEXT, _check_aad(kid))

    def matches(self, check: bytes, kid: str | None = None) -> bool:
        """Whether `kid`'s key is the one `check` (from `key_check`) was made with."""
        kid = self.active_kid if kid is None else kid
        aead = AESGCM(self._key(kid))
        if len(check) < NONCE_BYTES + _TAG_BYTES:
            return False
        try:
            text = aead.decrypt(check[:NONCE_BYTES], check[NONCE_BYTES:], _check_aad(kid))
        except InvalidTag:
            return False
        return text == _KEY_CHECK_TEXT

    def derive(self, info: bytes, kid: str | None = None) -> bytes:
        """A 256-bit key for the one purpose `info` names, derived from `kid`'s key with
        HKDF-SHA256 (no salt): one key never serves two purposes."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info)
        return hkdf.derive(self._key(kid))


def _check_aad(kid: str) -> bytes:
    return json.dumps(["smartduka-key-check", SEAL_VERSION, kid]).encode()
