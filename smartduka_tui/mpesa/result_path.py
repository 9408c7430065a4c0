"""Signed per-request paths for the initiator APIs' asynchronous results (Transaction Status,
Reversal): a ResultURL and a QueueTimeOutURL that only this till, for this request, could give.

`/hooks/res/{shop_id}/{till_id}/{request_ref}/{kid}.{tag}` for the result and
`/hooks/qto/...` for the queue timeout notice. The tag is a 128-bit truncated HMAC-SHA256 of
`{purpose}:{shop_id}/{till_id}/{request_ref}/{kid}` under the shop's callback secret `kid`: the
purpose is signed too, so a result URL's tag does not open the timeout route (or an STK
callback's path) and the other way round. Like STK callback paths, a whole path is a capability:
never log it (`callback_path.redact_path` style: `redact`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from smartduka_tui.mpesa.callback_path import (
    CallbackPathError,
    check_segments,
    decode_secret,
    is_url_safe,
    new_attempt_ref,
    redact_under,
    split_signed,
    tag_matches,
    tag_text,
)


class ResultPurpose(StrEnum):
    """Which of a request's two URLs a path is."""

    RESULT = "res"
    QUEUE_TIMEOUT = "qto"

    @property
    def prefix(self) -> str:
        return f"/hooks/{self.value}/"


@dataclass(frozen=True, slots=True)
class ResultPath:
    """The parts of a signed result path."""

    purpose: ResultPurpose
    shop_id: str
    till_id: str
    request_ref: str
    kid: str
    tag: str

    def path(self) -> str:
        return (
            f"{self.purpose.prefix}{self.shop_id}/{self.till_id}/{self.request_ref}/"
            f"{self.kid}.{self.tag}"
        )

    def __repr__(self) -> str:
        return (
            f"ResultPath(purpose={self.purpose.value!r}, shop_id={self.shop_id!r}, "
            f"till_id={self.till_id!r}, request_ref={self.request_ref!r}, kid={self.kid!r}, "
            "tag=<redacted>)"
        )


def _tag(
    secret: str, purpose: ResultPurpose, shop_id: str, till_id: str, ref: str, kid: str
) -> str:
    message = f"{purpose.value}:{shop_id}/{till_id}/{ref}/{kid}".encode()
    return tag_text(hmac.digest(decode_secret(secret), message, hashlib.sha256))


def sign(
    secret: str, purpose: ResultPurpose, shop_id: str, till_id: str, request_ref: str, kid: str
) -> ResultPath:
    check_segments(shop_id, till_id, request_ref, kid, ref_name="request ref")
    tag = _tag(secret, purpose, shop_id, till_id, request_ref, kid)
    return ResultPath(purpose, shop_id, till_id, request_ref, kid, tag)


def sign_new_request(
    secret: str, shop_id: str, till_id: str, kid: str
) -> tuple[ResultPath, ResultPath]:
    """A fresh request ref and its (result, queue timeout) paths, free of words Safaricom
    rejects in URLs."""
    for _ in range(1000):
        ref = new_attempt_ref()
        pair = (
            sign(secret, ResultPurpose.RESULT, shop_id, till_id, ref, kid),
            sign(secret, ResultPurpose.QUEUE_TIMEOUT, shop_id, till_id, ref, kid),
        )
        if all(is_url_safe(p.path()) for p in pair):
            return pair
    raise CallbackPathError("shop id, till id or kid contains a word Safaricom rejects in URLs")


def parse(path: str) -> ResultPath:
    """Split a request path; CallbackPathError (never echoing it) if it is not ours."""
    for purpose in ResultPurpose:
        if path.startswith(purpose.prefix):
            break
    else:
        raise CallbackPathError("not a result path")
    rest = path[len(purpose.prefix) :]
    return ResultPath(purpose, *split_signed(rest, "result", ref_name="request ref"))


def verify(parsed: ResultPath, secrets_by_kid: dict[str, str]) -> bool:
    """True when the tag is right for its purpose under the named kid (constant time)."""
    secret = secrets_by_kid.get(parsed.kid)
    parts = (parsed.purpose, parsed.shop_id, parsed.till_id, parsed.request_ref, parsed.kid)
    return tag_matches(parsed.tag, None if secret is None else _tag(secret, *parts))


def redact(path: str) -> str:
    """A loggable form of a request path: result paths lose everything after the shop id."""
    redacted = (redact_under(purpose.prefix, path) for purpose in ResultPurpose)
    return next((found for found in redacted if found is not None), path)
