"""Signed per-attempt callback paths (DESIGN.md section 4).

Daraja callbacks carry no signature, so the till hands Daraja a callback URL that is itself the
signature: `/hooks/stk/{shop_id}/{till_id}/{attempt_ref}/{kid}.{tag}`, where the tag is a
128-bit truncated HMAC-SHA256 (base64url, unpadded) of `shop_id/till_id/attempt_ref/kid` under
the shop's callback secret `kid`. The relay checks it in constant time without a database
look-up. The whole path is a capability: never log it (use `redact_path`).
"""

from __future__ import annotations

import base64
import functools
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "/hooks/stk/"
TAG_BYTES = 16
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_TAG = re.compile(r"^[A-Za-z0-9_-]{22}$")
_REF_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
# The whole shape in one pattern, the same language as the checks in `parse`: the relay's hot
# path matches it once instead of five patterns and two splits.
_WELL_FORMED = re.compile(
    re.escape(PREFIX)
    + r"([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})"
    + r"/([A-Za-z0-9_-]{1,16})\.([A-Za-z0-9_-]{22})"
)

# Words Safaricom rejects in callback URLs (REFERENCE.md section 2, C2B URL rules). Checked
# case-insensitively over the whole path, the tag included.
BANNED_URL_WORDS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")


class CallbackPathError(ValueError):
    """A callback path that is not of our shape. The message never repeats the path."""


@dataclass(frozen=True, slots=True)
class CallbackPath:
    """The parts of a signed callback path."""

    shop_id: str
    till_id: str
    attempt_ref: str
    kid: str
    tag: str

    def path(self) -> str:
        return f"{PREFIX}{self.shop_id}/{self.till_id}/{self.attempt_ref}/{self.kid}.{self.tag}"

    def __repr__(self) -> str:
        return (
            f"CallbackPath(shop_id={self.shop_id!r}, till_id={self.till_id!r}, "
            f"attempt_ref={self.attempt_ref!r}, kid={self.kid!r}, tag=<redacted>)"
        )


def decode_secret(secret: str) -> bytes:
    """Callback secrets travel as unpadded base64url text; HMAC uses the raw bytes."""
    padded = secret + "=" * (-len(secret) % 4)
    try:
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("callback secret is not base64url text") from exc
    if len(raw) < 16:
        raise ValueError("callback secret is shorter than 128 bits")
    return raw


def new_callback_secret() -> str:
    """A fresh 256-bit callback secret as unpadded base64url text."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC already keyed with `secret`: the relay checks every callback of a till under the
    same few secrets, and decoding and keying each time cost more than the hash itself."""
    return hmac.new(decode_secret(secret), digestmod="sha256")


def compute_tag(secret: str, shop_id: str, till_id: str, attempt_ref: str, kid: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{shop_id}/{till_id}/{attempt_ref}/{kid}".encode())
    return tag_text(mac.digest())


def tag_text(digest: bytes) -> str:
    """A full HMAC-SHA256 digest as a path's tag: its first TAG_BYTES, unpadded URL-safe base64
    (the result paths' tags are written the same way)."""
    return base64.urlsafe_b64encode(digest[:TAG_BYTES]).rstrip(b"=").decode("ascii")


def check_segments(
    shop_id: str, till_id: str, ref: str, kid: str, *, ref_name: str = "attempt ref"
) -> None:
    """Raise `CallbackPathError` unless every part of a signed path (an STK callback's, or a
    result's, whose ref is named "request ref") is one the relay's routes can carry."""
    for name, value in (("shop id", shop_id), ("till id", till_id), (ref_name, ref)):
        if not _SEGMENT.fullmatch(value):
            raise CallbackPathError(f"{name} must be 1-64 letters, digits, '-' or '_'")
    if not _KID.fullmatch(kid):
        raise CallbackPathError("kid must be 1-16 letters, digits, '-' or '_'")


def is_url_safe(path: str) -> bool:
    lowered = path.lower()
    return not any(word in lowered for word in BANNED_URL_WORDS)


def sign(secret: str, shop_id: str, till_id: str, attempt_ref: str, kid: str) -> CallbackPath:
    """Sign one attempt's path. Raises CallbackPathError if a part is malformed."""
    check_segments(shop_id, till_id, attempt_ref, kid)
    tag = compute_tag(secret, shop_id, till_id, attempt_ref, kid)
    return CallbackPath(shop_id, till_id, attempt_ref, kid, tag)


def new_attempt_ref() -> str:
    """A random attempt reference (20 characters, about 100 bits)."""
    return "".join(secrets.choice(_REF_ALPHABET) for _ in range(20))


def sign_new_attempt(secret: str, shop_id: str, till_id: str, kid: str) -> CallbackPath:
    """A fresh attempt ref and its signed path, free of words Safaricom rejects in URLs."""
    for _ in range(1000):
        signed = sign(secret, shop_id, till_id, new_attempt_ref(), kid)
        if is_url_safe(signed.path()):
            return signed
    raise CallbackPathError("shop id, till id or kid contains a word Safaricom rejects in URLs")


def parse(path: str) -> CallbackPath:
    """Split a request path into its parts; raises CallbackPathError without echoing it."""
    well_formed = _WELL_FORMED.fullmatch(path)
    if well_formed is not None:
        return CallbackPath(*well_formed.groups())
    # Not of our shape: the step-by-step checks below say which part is wrong.
    if not path.startswith(PREFIX):
        raise CallbackPathError("not a callback path")
    return CallbackPath(*split_signed(path[len(PREFIX) :], "callback"))


def split_signed(
    rest: str, what: str, *, ref_name: str = "attempt ref"
) -> tuple[str, str, str, str, str]:
    """`shop/till/ref/kid.tag`, what follows a signed path's prefix, as its five parts, each
    checked; CallbackPathError says which is wrong (`what`: "callback" or "result")."""
    parts = rest.split("/")
    if len(parts) != 4:
        raise CallbackPathError(f"{what} path has the wrong number of segments")
    shop_id, till_id, ref, last = parts
    kid, dot, tag = last.partition(".")
    if not dot or not _TAG.fullmatch(tag):
        raise CallbackPathError(f"{what} path has no valid tag")
    check_segments(shop_id, till_id, ref, kid, ref_name=ref_name)
    return shop_id, till_id, ref, kid, tag


def tag_matches(tag: str, expected: str | None) -> bool:
    """Constant-time check of a signed path's tag; `expected` is None when the path's kid has
    no secret, which is compared against a throwaway tag anyway so that it costs the same time."""
    return hmac.compare_digest(tag, expected or "A" * 22) and expected is not None


def verify(parsed: CallbackPath, secrets_by_kid: dict[str, str]) -> bool:
    """True when the tag is right under the named kid's secret (constant-time compare)."""
    secret = secrets_by_kid.get(parsed.kid)
    expected = None if secret is None else compute_tag(secret, *_signed_parts(parsed))
    return tag_matches(parsed.tag, expected)


def _signed_parts(parsed: CallbackPath) -> tuple[str, str, str, str]:
    return parsed.shop_id, parsed.till_id, parsed.attempt_ref, parsed.kid


def redact_under(prefix: str, path: str) -> str | None:
    """`path` without everything after its shop id when it starts with `prefix`, else None."""
    if not path.startswith(prefix):
        return None
    return f"{prefix}{path[len(prefix) :].split('/', 1)[0]}/<redacted>"


def redact_path(path: str) -> str:
    """A loggable form of a request path: callback paths lose everything after the shop id."""
    return redact_under(PREFIX, path) or path
