"""The shared secret box: sealing bound to its associated data and kid, key checks, derived
keys, and errors and reprs that never show a key."""

from __future__ import annotations

import pytest

from smartduka_tui.secretbox import SealBrokenError, SecretBox, UnknownKidError

KEY_1, KEY_2 = bytes(range(32)), bytes(range(32, 64))


def test_a_value_opens_only_under_its_kid_and_associated_data() -> None:
    box = SecretBox({"k1": KEY_1, "k2": KEY_2}, "k2")
    blob = box.encrypt(b"value", b"here")
    assert box.decrypt(blob, b"here") == box.decrypt(blob, b"here", kid="k2") == b"value"
    with pytest.raises(SealBrokenError, match="tampered with or moved"):
        box.decrypt(blob, b"there")
    with pytest.raises(SealBrokenError, match="tampered with or moved"):
        box.decrypt(blob, b"here", kid="k1")
    with pytest.raises(SealBrokenError, match="unknown format"):
        box.decrypt(b"\x02" + blob[1:], b"here")
    with pytest.raises(SealBrokenError, match="unknown format"):
        box.decrypt(blob[:20], b"here")
    with pytest.raises(UnknownKidError) as missing:
        box.decrypt(blob, b"here", kid="k9")
    assert missing.value.kid == "k9"


def test_key_checks_tell_the_key_and_derived_keys_differ_by_purpose() -> None:
    box = SecretBox({"k1": KEY_1, "k2": KEY_2}, "k1")
    check = box.key_check()
    assert box.matches(check) and not box.matches(check, "k2")
    assert not box.matches(check[:10])
    assert box.derive(b"audit") != box.derive(b"pin") != box.derive(b"audit", "k2")
    assert box.derive(b"audit") == SecretBox({"k1": KEY_1}, "k1").derive(b"audit")


def test_no_key_shows_in_a_repr_or_an_error() -> None:
    box = SecretBox({"k1": KEY_1}, "k1")
    assert repr(box) == "SecretBox(kids=['k1'], active_kid='k1')"
    with pytest.raises(ValueError, match="must be 32 bytes") as short:
        SecretBox({"k1": KEY_1[:31]}, "k1")
    assert KEY_1[:31].hex() not in str(short.value)
    with pytest.raises(ValueError, match="active kid must be one of the keys"):
        SecretBox({"k1": KEY_1}, "k2")
