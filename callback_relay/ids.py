"""Identifiers and till keys.

Shop and till ids appear in callback URLs, so they are short, lowercase, URL-safe and never
contain a word Safaricom rejects in URLs. A till key is `<till id>.<256 random bits>`: the id
lets the relay find the till's row, the random part is checked against its stored SHA-256 in
constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from smartduka_tui.mpesa.callback_path import BANNED_URL_WORDS

_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_ID_LENGTH = 12
_ID = re.compile(r"^[st][a-z2-9]{12}$")
_KEY_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _random_id(prefix: str) -> str:
    while True:
        candidate = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(_ID_LENGTH))
        if not any(word in candidate for word in BANNED_URL_WORDS):
            return candidate


def new_shop_id() -> str:
    return _random_id("s")


def new_till_id() -> str:
    return _random_id("t")


def is_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def new_till_key(till_id: str) -> str:
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return f"{till_id}.{raw}"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def split_till_key(key: str) -> str | None:
    """The till id a key names, or None if the key is not of our shape."""
    till_id, dot, secret = key.partition(".")
    if not dot or not is_id(till_id) or not till_id.startswith("t"):
        return None
    if not _KEY_SECRET.fullmatch(secret):
        return None
    return till_id


def key_matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
