"""TillSetup and PinDesk (smartduka_tui/manager/setup.py): the till's set-up that the commands
call instead of the store, on a real SQLite till. Each refusal is checked for its words and for
changing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.config import Settings
from smartduka_tui.manager import (
    EnrolmentProblem,
    EnrolmentRefused,
    ManagerInputError,
    PinDesk,
    PinOutcome,
    Secret,
    ShopChanges,
    ShopConfig,
    ShopSecrets,
    TillSetup,
)
from smartduka_tui.model import ShopSecretField, ShopType
from smartduka_tui.mpesa.enrolment import Enrolment, RotatedSecret
from smartduka_tui.store.pin import MAX_WRONG_TRIES
from tests.manager.conftest import FIXED_SECRETS, PIN, SHOP, TILL, Seeded, seeded_till

CALLBACK_SECRET = "bmV3LWNhbGxiYWNrLXNlY3JldC0wMTIzNDU2Nzg5YWJj"


def enrolment(**changes: Any) -> Enrolment:
    fields: dict[str, Any] = {
        "shop_id": SHOP,
        "till_id": "till2",
        "till_key": "till-key-" + "y" * 24,
        "callback_kid": "k2",
        "callback_secret": CALLBACK_SECRET,
        "relay_url": "https://relay.example.com",
    }
    fields.update(changes)
    return Enrolment(**fields)


async def tills_of(seeded: Seeded, shop_id: str = SHOP) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (t.id, t.active_callback_kid, t.callback_kids)
        for t in await seeded.store.tills.for_shop(shop_id)
    ]


async def test_a_shop_is_shown_masked_with_its_tills(seeded: Seeded) -> None:
    setup = TillSetup(seeded.store, seeded.settings)
    view = await setup.shop(SHOP)
    assert view is not None
    assert view.name == "Mama Duka" and view.mpesa_type is ShopType.PAYBILL
    assert view.secrets[ShopSecretField.PASSKEY] == "****" + FIXED_SECRETS[2][-4:]
    assert FIXED_SECRETS[2] not in repr(view)
    assert [t.till_id for t in view.tills] == [TILL]
    assert await setup.has_shop(SHOP) and not await setup.has_shop("nope")
    assert await setup.shop("nope") is None
    assert await setup.shop_ids() == [SHOP]


async def test_a_bad_new_shop_names_the_field_and_saves_nothing(seeded: Seeded) -> None:
    setup = TillSetup(seeded.store, seeded.settings)
    bad = ShopConfig("duka2", "Second", ShopType.PAYBILL, "TOOLONG", "600200")
    with pytest.raises(ManagerInputError) as refused:
        await setup.add_shop(bad, ShopSecrets())
    assert refused.value.field == "account_prefix"
    assert "4" in refused.value.message
    assert await setup.shop_ids() == [SHOP]
    added = await setup.add_shop(
        ShopConfig("duka2", "Second", ShopType.PAYBILL, "SD", "600200", enabled=False),
        ShopSecrets(passkey=Secret("p" * 20)),
    )
    assert added.shop_id == "duka2" and added.secrets[ShopSecretField.PASSKEY] == "****pppp"
    assert await setup.shop_ids() == [SHOP, "duka2"]


async def test_a_change_names_only_what_changes_and_a_bad_one_changes_nothing(
    seeded: Seeded,
) -> None:
    setup = TillSetup(seeded.store, seeded.settings)
    same, view = await setup.change_shop(SHOP, ShopChanges(), ShopSecrets())
    assert same is False and view.name == "Mama Duka"
    changed, view = await setup.change_shop(SHOP, ShopChanges(name="Duka Kubwa"), ShopSecrets())
    assert changed is True and view.name == "Duka Kubwa"
    assert view.business_shortcode == "600100" and view.account_prefix == "MD"
    before = await seeded.store.shops.require(SHOP)
    with pytest.raises(ManagerInputError) as refused:
        await setup.change_shop(
            SHOP, ShopChanges(name="Never saved", account_prefix="!!"), ShopSecrets()
        )
    assert refused.value.field == "account_prefix"
    assert await seeded.store.shops.require(SHOP) == before


async def test_an_empty_number_clears_it() -> None:
    config = ShopConfig(SHOP, "Till shop", ShopType.TILL, "TS", "700700", "123456")
    cleared = ShopChanges(till_number="", business_shortcode=" 700701 ").applied_to(config)
    assert cleared.till_number is None and cleared.business_shortcode == "700701"
    assert ShopChanges().applied_to(config) == config


async def test_enrolment_refusals_say_why_and_store_nothing(seeded: Seeded, tmp_path: Path) -> None:
    before = await tills_of(seeded)
    no_relay = Settings(data_dir=seeded.data_dir, shop_id=SHOP)
    with pytest.raises(EnrolmentRefused) as refused:
        await TillSetup(seeded.store, no_relay).enrol(enrolment(relay_url=None))
    assert refused.value.problem is EnrolmentProblem.NO_RELAY_URL
    assert refused.value.message == "the file has no relay_url and none is configured"
    production = Settings(
        data_dir=seeded.data_dir, shop_id=SHOP, mode="production", relay={"url": None}
    )
    with pytest.raises(EnrolmentRefused) as refused:
        await TillSetup(seeded.store, production).enrol(enrolment(relay_url="http://relay.lan"))
    assert refused.value.problem is EnrolmentProblem.INSECURE_RELAY_URL
    assert "HTTPS relay URL" in refused.value.message
    assert await tills_of(seeded) == before

    setup = TillSetup(seeded.store, seeded.settings)
    await setup.add_shop(ShopConfig("duka2", "Second", ShopType.PLATFORM, "SD"), ShopSecrets())
    rotated = RotatedSecret(shop_id="duka2", callback_kid="k9", callback_secret=CALLBACK_SECRET)
    with pytest.raises(EnrolmentRefused) as refused:
        await setup.enrol(rotated)
    assert refused.value.problem is EnrolmentProblem.NO_TILL
    assert await tills_of(seeded, "duka2") == []


async def test_an_enrolment_and_a_rotated_secret_are_kept(seeded: Seeded) -> None:
    setup = TillSetup(seeded.store, seeded.settings)
    [till] = await setup.enrol(enrolment(relay_url=None), relay_url="https://other.example.com")
    assert (till.till_id, till.relay_url, till.active_callback_kid) == (
        "till2",
        "https://other.example.com",
        "k2",
    )
    rotated = RotatedSecret(shop_id=SHOP, callback_kid="k3", callback_secret=CALLBACK_SECRET)
    kept = await setup.enrol(rotated)
    assert sorted(t.till_id for t in kept) == [TILL, "till2"]
    assert all(t.active_callback_kid == "k3" for t in kept)
    assert {t[0]: t[1] for t in await tills_of(seeded)} == {TILL: "k3", "till2": "k3"}


async def test_the_pin_gate_passes_without_a_pin_and_checks_one(tmp_path: Path) -> None:
    async with seeded_till(tmp_path, pin=None) as till:
        desk = PinDesk(till.store)

        def never() -> Secret:
            raise AssertionError("no PIN is set: nobody may be asked for one")

        assert await desk.gate(never, purpose="test") is None
        with pytest.raises(ManagerInputError) as refused:
            await desk.change(Secret("12"), current_pin=None)
        assert refused.value.field == "pin"
        assert not (await desk.status()).is_set
        assert (await desk.change(Secret(PIN), current_pin=None)).accepted
        check = await desk.gate(lambda: Secret(PIN), purpose="test")
        assert check is not None and check.accepted


async def test_a_locked_pin_is_refused_without_asking_for_it(seeded: Seeded) -> None:
    desk = PinDesk(seeded.store)
    for _ in range(MAX_WRONG_TRIES):
        check = await desk.gate(lambda: Secret("0000"), purpose="test")
        assert check is not None and not check.accepted
    asked: list[str] = []

    def read() -> Secret:
        asked.append("asked")
        return Secret(PIN)

    locked = await desk.gate(read, purpose="test")
    assert locked is not None and locked.outcome is PinOutcome.LOCKED
    assert asked == []
    assert await desk.reset(reason="test") is True
    assert not (await desk.status()).is_set
