"""Signed per-attempt callback paths: sign, parse, verify, rotate, redact."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smartduka_tui.mpesa.callback_path import (
    BANNED_URL_WORDS,
    CallbackPathError,
    compute_tag,
    decode_secret,
    new_callback_secret,
    parse,
    redact_path,
    sign,
    sign_new_attempt,
    verify,
)

SECRET = new_callback_secret()
OTHER = new_callback_secret()


def test_a_signed_path_parses_and_verifies() -> None:
    signed = sign_new_attempt(SECRET, "shop1", "till1", "k1")
    path = signed.path()
    assert path.startswith("/hooks/stk/shop1/till1/")
    parsed = parse(path)
    assert parsed == signed
    assert verify(parsed, {"k1": SECRET})


def test_wrong_secret_missing_kid_and_any_edited_part_fail() -> None:
    signed = sign(SECRET, "shop1", "till1", "attempt1", "k1")
    assert not verify(signed, {"k1": OTHER})
    assert not verify(signed, {"k2": SECRET})
    forgeries = [
        replace(signed, shop_id="shop2"),
        replace(signed, till_id="till2"),
        replace(signed, attempt_ref="attempt2"),
        replace(signed, tag=signed.tag[:-1] + ("A" if signed.tag[-1] != "A" else "B")),
    ]
    for forged in forgeries:
        assert not verify(forged, {"k1": SECRET})


def test_the_tag_is_the_truncated_hmac_of_the_path_under_each_secret() -> None:
    # The keyed HMAC is reused across calls: interleaved secrets must never borrow each other's.
    for secret in (SECRET, OTHER, SECRET, OTHER):
        expected = hmac.digest(decode_secret(secret), b"shop1/till1/attempt1/k1", hashlib.sha256)
        tag = compute_tag(secret, "shop1", "till1", "attempt1", "k1")
        assert tag == base64.urlsafe_b64encode(expected[:16]).rstrip(b"=").decode()
    assert compute_tag(SECRET, "shop1", "till1", "attempt2", "k1") != compute_tag(
        SECRET, "shop1", "till1", "attempt1", "k1"
    )


def test_rotation_keeps_old_kids_valid() -> None:
    old = sign(SECRET, "shop1", "till1", "a1", "k1")
    new = sign(OTHER, "shop1", "till1", "a2", "k2")
    both = {"k1": SECRET, "k2": OTHER}
    assert verify(old, both) and verify(new, both)


@given(st.integers(min_value=0, max_value=50))
def test_fresh_paths_avoid_words_safaricom_rejects(seed: int) -> None:
    path = sign_new_attempt(SECRET, f"shop{seed}", "till1", "k1").path().lower()
    assert not any(word in path for word in BANNED_URL_WORDS)


def test_ids_with_a_banned_word_cannot_be_signed_safely() -> None:
    with pytest.raises(CallbackPathError, match="rejects in URLs"):
        sign_new_attempt(SECRET, "mpesa", "till1", "k1")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/other/x", "not a callback path"),
        ("/hooks/stk/a/b/c", "wrong number of segments"),
        ("/hooks/stk/a/b/c/k1", "no valid tag"),
        ("/hooks/stk/a/b/c/k1.short", "no valid tag"),
        ("/hooks/stk/a b/b/c/k1." + "A" * 22, "shop id must be"),
        ("/hooks/stk/a/b/c/" + "k" * 17 + "." + "A" * 22, "kid must be"),
    ],
)
def test_malformed_paths_are_refused_without_echoing_them(path: str, message: str) -> None:
    with pytest.raises(CallbackPathError, match=message) as caught:
        parse(path)
    assert path not in str(caught.value)


def test_redaction_keeps_only_the_shop() -> None:
    path = sign(SECRET, "shop1", "till1", "a1", "k1").path()
    assert redact_path(path) == "/hooks/stk/shop1/<redacted>"
    assert "a1" not in redact_path(path) and "till1" not in redact_path(path)
    assert redact_path("/healthz") == "/healthz"
    assert "tag=<redacted>" in repr(parse(path))


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("AAAAA", "not base64url"),
        ("sécret", "not base64url"),
        ("abc!!def" + "A" * 24, "not base64url"),
        (base64.urlsafe_b64encode(b"short").decode().rstrip("="), "shorter than 128 bits"),
    ],
)
def test_bad_secrets_are_refused(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign(secret, "shop1", "till1", "a1", "k1")


def _shape_by_rules(path: str) -> tuple[str, ...] | None:
    """The documented shape, checked part by part without regular expressions: the oracle for
    `parse`'s one-pattern fast path."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    if not path.startswith("/hooks/stk/"):
        return None
    parts = path[len("/hooks/stk/") :].split("/")
    if len(parts) != 4:
        return None
    kid, dot, tag = parts[3].partition(".")
    fields = (*parts[:3], kid, tag)
    limits = (64, 64, 64, 16)
    if not dot or len(tag) != 22 or not set(tag) <= safe:
        return None
    if not all(1 <= len(f) <= n and set(f) <= safe for f, n in zip(fields, limits, strict=False)):
        return None
    return fields


_PATH_PIECES = st.lists(
    st.sampled_from(["a", "Z", "9", "_", "-", "/", ".", "!", " ", "\n", "k1", "A" * 22, "s" * 64]),
    max_size=14,
)


_GOOD = ["s" * 64, "/", "a", "/", "Z9_-", "/", "k1", ".", "A" * 22]


@given(_PATH_PIECES)
@example(_GOOD)
@example([*_GOOD, "\n"])
@example([*_GOOD[:6], "k1", ".", "A" * 22, "."])
@example([*_GOOD[:6], "k1.k2", ".", "A" * 22])
@example(["s" * 64, "a", *_GOOD[1:]])
@example([*_GOOD[:6], "k" * 16, ".", "A" * 22])
def test_parse_accepts_exactly_the_documented_shape(pieces: list[str]) -> None:
    path = "/hooks/stk/" + "".join(pieces)
    expected = _shape_by_rules(path)
    if expected is None:
        with pytest.raises(CallbackPathError):
            parse(path)
    else:
        parsed = parse(path)
        assert (parsed.shop_id, parsed.till_id, parsed.attempt_ref, parsed.kid, parsed.tag) == (
            expected
        )
        assert parsed.path() == path
