"""Tills: enrolment into the vault, callback secrets by kid, and refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from smartduka_tui.mpesa import callback_path
from smartduka_tui.store import InputError, NotFoundError, Secret, Store
from tests.store.helpers import enrolment, make_shop, unique_id
from tests.store.test_shops import _snapshot


async def test_enrolled_till_signs_and_verifies_callback_paths(store: Store) -> None:
    shop_id, till_id = await make_shop(store)
    creds = await store.tills.credentials(shop_id, till_id)
    assert creds.relay_url == "http://127.0.0.1:8080"
    signed = callback_path.sign_new_attempt(
        creds.active_callback_secret.reveal(), shop_id, till_id, creds.active_callback_kid
    )
    secrets = {kid: s.reveal() for kid, s in creds.callback_secrets.items()}
    assert callback_path.verify(callback_path.parse(signed.path()), secrets)
    assert creds.active_callback_secret.reveal() not in repr(creds)


async def test_re_enrolment_adds_a_kid_and_keeps_the_old_one(store: Store) -> None:
    shop_id, till_id = await make_shop(store)
    old = await store.tills.credentials(shop_id, till_id)
    async with store.write() as tx:
        till = await store.tills.enrol(tx, enrolment(shop_id, till_id, kid="c2"))
    assert till.active_callback_kid == "c2"
    assert till.callback_kids == ("c1", "c2")
    new = await store.tills.credentials(shop_id, till_id)
    assert new.callback_secrets["c1"] == old.callback_secrets["c1"]
    assert new.till_key != old.till_key
    actions = [e.action for e in await store.audit.entries(shop_id)]
    assert actions[0] == "till.re_enrolled"


async def test_known_kid_with_another_secret_is_refused_unless_replaced(store: Store) -> None:
    shop_id, till_id = await make_shop(store)
    before = await _snapshot(store)
    with pytest.raises(InputError) as caught:
        async with store.write() as tx:
            await store.tills.enrol(tx, enrolment(shop_id, till_id, kid="c1"))
    assert caught.value.field == "kid" and "different secret" in caught.value.message
    assert await _snapshot(store) == before
    replacement = enrolment(shop_id, till_id, kid="c1")
    async with store.write() as tx:
        await store.tills.enrol(tx, replacement, replace_secret=True)
    creds = await store.tills.credentials(shop_id, till_id)
    assert creds.callback_secrets["c1"] == replacement.callback_secret


async def test_till_of_another_shop_and_unknown_shop_are_refused(store: Store) -> None:
    shop_a, till_a = await make_shop(store)
    shop_b, _ = await make_shop(store)
    before = await _snapshot(store)
    with pytest.raises(InputError, match="another shop"):
        async with store.write() as tx:
            await store.tills.enrol(tx, enrolment(shop_b, till_a))
    with pytest.raises(NotFoundError, match="add it first"):
        async with store.write() as tx:
            await store.tills.enrol(tx, enrolment(unique_id("ghost"), unique_id("till")))
    assert await _snapshot(store) == before
    assert await store.tills.get(shop_b, till_a) is None
    assert [t.id for t in await store.tills.for_shop(shop_a)] == [till_a]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"shop_id": "a b"}, "shop_id", "1 to 64 letters"),
        ({"till_id": ""}, "till_id", "1 to 64 letters"),
        ({"till_id": "till-exec"}, "till_id", "rejects in callback URLs"),
        ({"callback_kid": "k" * 17}, "kid", "1 to 16"),
        ({"relay_url": "ftp://relay.example.com"}, "relay_url", "http:// or https://"),
        ({"relay_url": "https://"}, "relay_url", "host name"),
        ({"relay_url": "https://u:p@relay.example.com"}, "relay_url", "user name or password"),
        ({"relay_url": "https://relay.example.com/?x=1"}, "relay_url", "query string"),
        ({"till_key": Secret("short")}, "till_key", "16 to 512 printable"),
        ({"till_key": Secret("has a space in it ok")}, "till_key", "without spaces"),
        ({"callback_secret": Secret("not*base64url")}, "callback_secret", "base64url"),
        ({"callback_secret": Secret("c2hvcnQ")}, "callback_secret", "shorter than 128 bits"),
    ],
)
async def test_bad_enrolment_field_is_refused_and_nothing_stored(
    store: Store, changes: dict[str, object], field: str, message: str
) -> None:
    shop_id, _ = await make_shop(store)
    bad = replace(enrolment(shop_id, unique_id("till")), **changes)  # type: ignore[arg-type]
    before = await _snapshot(store)
    with pytest.raises(InputError) as caught:
        async with store.write() as tx:
            await store.tills.enrol(tx, bad)
    assert caught.value.field == field
    assert message in caught.value.message
    assert await _snapshot(store) == before
    assert bad.till_key.reveal() not in str(caught.value)
    assert bad.callback_secret.reveal() not in str(caught.value)


async def test_url_is_normalised(store: Store) -> None:
    shop_id, _ = await make_shop(store)
    till_id = unique_id("till")
    async with store.write() as tx:
        till = await store.tills.enrol(
            tx, replace(enrolment(shop_id, till_id), relay_url=" https://relay.example.com/ ")
        )
    assert till.relay_url == "https://relay.example.com"
