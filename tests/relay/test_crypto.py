"""The relay's secret box (callback_relay/crypto.py): bound to its associated data, its key
hidden."""

from __future__ import annotations

import pytest

from callback_relay.crypto import relay_box, secret_aad
from smartduka_tui.secretbox import SealBrokenError


def test_secret_box_binds_its_associated_data_and_hides_its_key() -> None:
    box = relay_box(bytes(range(32)))
    blob = box.encrypt(b"secret", secret_aad("s1", "k1"))
    assert len(blob) == 1 + 12 + len(b"secret") + 16
    assert box.decrypt(blob, secret_aad("s1", "k1")) == b"secret"
    with pytest.raises(SealBrokenError, match="tampered with or moved"):
        box.decrypt(blob, secret_aad("s2", "k1"))
    with pytest.raises(SealBrokenError):
        box.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), secret_aad("s1", "k1"))
    assert box.encrypt(b"x", b"") != box.encrypt(b"x", b"")  # fresh nonce each time
    assert bytes(range(32)).hex() not in repr(box)
    assert not relay_box(bytes(32)).matches(box.key_check())
