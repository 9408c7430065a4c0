"""The credential vault: sealing, binding to shop and field, tampering, wrong and missing
keys, keyring files and environment keys, and the masked Secret type."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.secretbox import NONCE_BYTES
from smartduka_tui.store import (
    KeyMalformedError,
    KeyMissingError,
    KeyringPermissionError,
    Secret,
    ShopSecrets,
    Store,
    TamperedSecretError,
    WrongKeyError,
    create_keyring,
    generate_key_hex,
    load_keyring,
)
from smartduka_tui.store.vault import Keyring, Vault, write_keyring
from tests.store.canaries import new_canary
from tests.store.helpers import canary_secrets, make_shop, paybill_config, unique_id

KEY_A = "a" * 64
KEY_B = "b" * 64


def test_secret_never_shows_itself() -> None:
    value = new_canary()
    secret = Secret(value)
    for shown in (
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>40}",
        repr([secret]),
        repr({"k": secret}),
    ):
        assert value not in shown
    assert secret.masked() == "****" + value[-4:]
    assert Secret("short").masked() == "****"
    assert secret.reveal() == value
    assert secret == Secret(value) and secret != Secret(value + "x")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)


async def test_round_trip_and_fresh_nonces(store: Store) -> None:
    shop_id, _ = await make_shop(store)
    value = new_canary()
    async with store.write() as tx:
        await store.credentials.put(tx, shop_id, "passkey", Secret(value))
    got = await store.credentials.get(shop_id, "passkey")
    assert got is not None and got.reveal() == value

    row = await store.db.fetchone(
        "SELECT kid, blob FROM secrets WHERE shop_id = ? AND field = 'passkey'", (shop_id,)
    )
    assert row is not None
    blob = bytes(row["blob"])
    assert row["kid"] == "k1"
    assert len(blob) == 1 + NONCE_BYTES + len(value) + 16
    async with store.write() as tx:
        await store.credentials.put(tx, shop_id, "passkey", Secret(value))
    again = await store.db.fetchone(
        "SELECT blob FROM secrets WHERE shop_id = ? AND field = 'passkey'", (shop_id,)
    )
    assert again is not None and bytes(again["blob"])[1:13] != blob[1:13]


OLD_VAULT = Path(__file__).parents[1] / "data" / "vault" / "old_vault.json"


def test_secrets_sealed_before_the_shared_box_still_open() -> None:
    written = json.loads(OLD_VAULT.read_text(encoding="utf-8"))
    keys = {kid: bytes.fromhex(key) for kid, key in written["keyring"].items()}
    vault = Vault(Keyring(keys, written["active_kid"], "the stored fixture", None))
    for item in written["sealed"]:
        blob = bytes.fromhex(item["blob"])
        opened = vault.open(item["shop_id"], item["field"], item["kid"], blob)
        assert opened.reveal() == item["value"]
        with pytest.raises(TamperedSecretError):
            vault.open(item["shop_id"] + "x", item["field"], item["kid"], blob)
    for kid, check in written["key_checks"].items():
        vault.verify_key_check(kid, bytes.fromhex(check))
        other = "k1" if kid == "k2" else "k2"
        with pytest.raises(WrongKeyError):
            vault.verify_key_check(other, bytes.fromhex(check))
    for name, derived in written["derived"].items():
        kid, purpose = name.split("/")
        assert vault.derive(kid, purpose).hex() == derived
    # And the other way: what the vault seals now has the old layout (kid, version, nonce).
    kid, blob = vault.seal("duka1", "passkey", Secret("new"))
    assert kid == written["active_kid"] and blob[0] == 1 and len(blob) == 1 + 12 + 3 + 16


async def _blob(store: Store, shop_id: str, field: str) -> bytes:
    row = await store.db.fetchone(
        "SELECT blob FROM secrets WHERE shop_id = ? AND field = ?", (shop_id, field)
    )
    assert row is not None
    return bytes(row["blob"])


async def _set_blob(store: Store, shop_id: str, field: str, blob: bytes) -> None:
    async with store.write() as tx:
        await tx.execute(
            "UPDATE secrets SET blob = ? WHERE shop_id = ? AND field = ?", (blob, shop_id, field)
        )


@pytest.mark.parametrize("bit", [8, 8 * 5 + 3, -1])
async def test_one_flipped_bit_is_caught_as_tampering(store: Store, bit: int) -> None:
    shop_id, _ = await make_shop(store)
    blob = bytearray(await _blob(store, shop_id, "consumer_secret"))
    position = bit if bit >= 0 else len(blob) * 8 - 1  # nonce, ciphertext, last tag bit
    blob[position // 8] ^= 1 << (position % 8)
    await _set_blob(store, shop_id, "consumer_secret", bytes(blob))
    with pytest.raises(TamperedSecretError) as caught:
        await store.credentials.get(shop_id, "consumer_secret")
    assert "fails authentication although the key is right" in str(caught.value)
    assert shop_id in str(caught.value)


async def test_ciphertext_moved_to_another_shop_or_field_does_not_open(store: Store) -> None:
    shop_a, _ = await make_shop(store)
    shop_b, _ = await make_shop(store)
    await _set_blob(store, shop_b, "consumer_secret", await _blob(store, shop_a, "consumer_secret"))
    with pytest.raises(TamperedSecretError):
        await store.credentials.get(shop_b, "consumer_secret")
    await _set_blob(store, shop_a, "passkey", await _blob(store, shop_a, "consumer_key"))
    with pytest.raises(TamperedSecretError):
        await store.credentials.get(shop_a, "passkey")
    # The untouched ones still open.
    assert await store.credentials.get(shop_a, "consumer_secret") is not None


async def test_relabelled_kid_does_not_open(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "keyring"
    write_keyring(path, {"k1": bytes.fromhex(KEY_A), "k2": bytes.fromhex(KEY_B)}, "k1")
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=load_keyring(path))
    try:
        shop_id, _ = await make_shop(store)
        await store.credentials.use_keyring(load_keyring(path))
        async with store.write() as tx:
            await tx.execute(
                "INSERT OR IGNORE INTO key_checks VALUES ('k2', ?, 0)",
                (Vault(load_keyring(path)).key_check("k2"),),
            )
            await tx.execute("UPDATE secrets SET kid = 'k2' WHERE shop_id = ?", (shop_id,))
        with pytest.raises(TamperedSecretError):
            await store.credentials.get(shop_id, "passkey")
    finally:
        await store.close()


async def test_wrong_key_is_told_apart_from_tampering(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "till.db"
    right = tmp_path / "right" / "keyring"
    write_keyring(right, {"k1": bytes.fromhex(KEY_A)}, "k1")
    store = await Store.open(db, clock=clock, keyring=load_keyring(right))
    shop_id, _ = await make_shop(store)
    await store.close()

    wrong = tmp_path / "wrong" / "keyring"
    write_keyring(wrong, {"k1": bytes.fromhex(KEY_B)}, "k1")
    with pytest.raises(WrongKeyError) as caught:
        await Store.open(db, clock=clock, keyring=load_keyring(wrong))
    message = str(caught.value)
    assert "kid 'k1'" in message and str(wrong) in message
    assert "not the key this database's secrets were sealed with" in message
    assert KEY_B not in message and KEY_A not in message

    store = await Store.open(db, clock=clock, keyring=load_keyring(right))
    try:
        blob = bytearray(await _blob(store, shop_id, "passkey"))
        blob[20] ^= 0x40
        await _set_blob(store, shop_id, "passkey", bytes(blob))
        with pytest.raises(TamperedSecretError):
            await store.credentials.get(shop_id, "passkey")
    finally:
        await store.close()


async def test_env_key_that_changed_is_a_wrong_key(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "till.db"
    nowhere = tmp_path / "no-keyring"
    first = load_keyring(nowhere, {"SMARTDUKA_ENCRYPTION_KEY": KEY_A})
    assert first.active_kid == "env"
    store = await Store.open(db, clock=clock, keyring=first)
    await make_shop(store)
    await store.close()
    with pytest.raises(WrongKeyError, match="SMARTDUKA_ENCRYPTION_KEY"):
        await Store.open(
            db, clock=clock, keyring=load_keyring(nowhere, {"SMARTDUKA_ENCRYPTION_KEY": KEY_B})
        )


async def test_secrets_under_a_kid_the_keyring_lacks(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "till.db"
    old = tmp_path / "old" / "keyring"
    write_keyring(old, {"k1": bytes.fromhex(KEY_A)}, "k1")
    store = await Store.open(db, clock=clock, keyring=load_keyring(old))
    await make_shop(store)
    await store.close()
    new = tmp_path / "new" / "keyring"
    write_keyring(new, {"k7": bytes.fromhex(KEY_B)}, "k7")
    with pytest.raises(KeyMissingError) as caught:
        await Store.open(db, clock=clock, keyring=load_keyring(new))
    assert "sealed with key(s) k1" in str(caught.value)
    assert "Restore the keyring" in str(caught.value)


async def test_no_plaintext_fallback_without_a_key(tmp_path: Path, clock: ManualClock) -> None:
    store = await Store.open(tmp_path / "till.db", clock=clock)
    try:
        shop_id = unique_id("shop")
        with pytest.raises(KeyMissingError, match="keys init"):
            async with store.write() as tx:
                await store.shops.add(tx, paybill_config(shop_id), canary_secrets())
        assert await store.shops.get(shop_id) is None
        assert tuple(await store.db.fetchone("SELECT count(*) FROM secrets") or ()) == (0,)
        # A shop without secrets needs no key.
        async with store.write() as tx:
            await store.shops.add(tx, paybill_config(shop_id, enabled=False), ShopSecrets())
    finally:
        await store.close()


def test_keyring_must_be_private(tmp_path: Path) -> None:
    keyring = create_keyring(tmp_path / "keyring")
    assert keyring.path is not None
    assert (keyring.path.stat().st_mode & 0o777) == 0o600
    keyring.path.chmod(0o644)
    with pytest.raises(KeyringPermissionError) as caught:
        load_keyring(keyring.path, {})
    assert f"chmod 600 {keyring.path}" in str(caught.value)
    assert "0644" in str(caught.value)


def test_create_keyring_refuses_to_overwrite(tmp_path: Path) -> None:
    first = create_keyring(tmp_path / "keyring")
    with pytest.raises(KeyMalformedError, match="already exists"):
        create_keyring(tmp_path / "keyring")
    assert load_keyring(tmp_path / "keyring", {}).keys == first.keys


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1=abc\n", "line 1 (kid 'k1') must be 64 hexadecimal characters"),
        (f"k1={KEY_A}zz\n", "66 characters"),
        (f"k1={KEY_A}\nk2={KEY_B}\n", "no `active=<kid>` line"),
        (f"k1={KEY_A}\nactive=k9\n", "active kid 'k9' has no key"),
        (f"k1={KEY_A}\nk1={KEY_B}\nactive=k1\n", "kid 'k1' appears twice"),
        (f"bad kid!={KEY_A}\n", "a kid must be 1 to 16"),
        ("# only a comment\n", "holds no keys"),
        (f"{KEY_A}\n", "is not `kid=<64 hex>`"),
        (f"k1={KEY_A}\nactive=k1\nactive=k1\n", "a second time"),
    ],
)
def test_malformed_keyring_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keyring"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(KeyMalformedError) as caught:
        load_keyring(path, {})
    assert message in str(caught.value)
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_keys_from_the_environment() -> None:
    nowhere = Path("/nonexistent/keyring")
    assert load_keyring(nowhere, {"MPESA_ENCRYPTION_KEY": KEY_A}).keys == {
        "env": bytes.fromhex(KEY_A)
    }
    same = {"SMARTDUKA_ENCRYPTION_KEY": KEY_A, "MPESA_ENCRYPTION_KEY": KEY_A.upper()}
    assert load_keyring(nowhere, same).source == "environment variable SMARTDUKA_ENCRYPTION_KEY"
    with pytest.raises(KeyMalformedError, match="both set to different keys"):
        load_keyring(nowhere, {"SMARTDUKA_ENCRYPTION_KEY": KEY_A, "MPESA_ENCRYPTION_KEY": KEY_B})
    secretish = "12345678" * 7 + "xyz"
    with pytest.raises(KeyMalformedError) as caught:
        load_keyring(nowhere, {"SMARTDUKA_ENCRYPTION_KEY": secretish})
    assert "SMARTDUKA_ENCRYPTION_KEY must be 64 hexadecimal characters" in str(caught.value)
    assert secretish not in str(caught.value)
    with pytest.raises(KeyMissingError) as missing:
        load_keyring(nowhere, {})
    assert "smartduka keys init" in str(missing.value)
    assert "smartduka keys generate" in str(missing.value)


def test_keyring_file_wins_but_a_conflicting_env_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    write_keyring(path, {"env": bytes.fromhex(KEY_A), "k1": bytes.fromhex(KEY_B)}, "k1")
    loaded = load_keyring(path, {"SMARTDUKA_ENCRYPTION_KEY": KEY_A})
    assert loaded.active_kid == "k1" and loaded.path == path
    with pytest.raises(KeyMalformedError, match="unset the variable"):
        load_keyring(path, {"SMARTDUKA_ENCRYPTION_KEY": "c" * 64})


def test_generated_keys_are_256_bit_and_distinct() -> None:
    keys = {generate_key_hex() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(bytes.fromhex(k)) == 32 for k in keys)


def test_keyring_repr_hides_keys() -> None:
    keyring = Keyring(keys={"k1": bytes.fromhex(KEY_A)}, active_kid="k1", source="x", path=None)
    assert KEY_A not in repr(keyring) and "aaaa" not in repr(keyring)
