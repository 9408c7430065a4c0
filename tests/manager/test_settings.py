"""M-Pesa settings from the manager's side: masked credentials, every field validated before
anything is saved, replace-only secrets, the platform switch, relay enrolment from a file,
production's HTTPS rule, and "verify" against the real simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.config import Settings
from smartduka_tui.manager import (
    ActionRefused,
    ManagerInputError,
    ManagerService,
    SettingsForm,
    VerifyOutcome,
)
from smartduka_tui.model import ShopSecretField, ShopType, VerificationStatus
from smartduka_tui.store import Secret
from smartduka_tui.store.pin import ManagerPin
from tests.manager.conftest import FIXED_SECRETS, PIN, SHOP, Seeded
from tests.payments.harness import TillHarness, till
from tests.store.canaries import new_canary
from tests.support.processes import ServerProcess

F = ShopSecretField


def form(**changes: Any) -> SettingsForm:
    values: dict[str, Any] = {
        "name": "Mama Duka",
        "mpesa_type": "paybill",
        "business_shortcode": "600100",
        "till_number": "",
        "account_prefix": "MD",
        "enabled": True,
    }
    values.update(changes)
    return SettingsForm(**values)


async def saved_state(seeded: Seeded) -> tuple[Any, ...]:
    """Everything a save could touch: the shop row, each credential, the audit length."""
    shop = await seeded.store.shops.require(SHOP)
    secrets = []
    for name in F:
        secret = await seeded.store.credentials.get(SHOP, name.value)
        secrets.append(None if secret is None else secret.reveal())
    audit = await seeded.store.audit.search(SHOP, include_system=True, limit=1)
    return (shop, tuple(secrets), audit[0].id)


async def test_the_view_masks_every_credential(signed_in: Seeded) -> None:
    view = await signed_in.service.settings_view()
    assert view.mpesa_type is ShopType.PAYBILL and view.business_shortcode == "600100"
    assert dict(view.secrets) == {
        F.CONSUMER_KEY: "****0001",
        F.CONSUMER_SECRET: "****0002",
        F.PASSKEY: "****0003",
    }
    assert all(secret not in repr(view) for secret in FIXED_SECRETS)
    assert [t.till_id for t in view.tills] == ["till1"]
    assert view.verification_status is VerificationStatus.PENDING and view.last_checked_at is None


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "  "}, "name", "must not be empty"),
        ({"mpesa_type": "bank"}, "mpesa_type", "must be paybill, till or platform"),
        ({"business_shortcode": "12ab"}, "business_shortcode", "must be 5 to 7 digits"),
        ({"business_shortcode": ""}, "business_shortcode", "is required for a paybill shop"),
        ({"till_number": "123456"}, "till_number", "applies only to till (Buy Goods) shops"),
        ({"mpesa_type": "till"}, "till_number", "is required for a till (Buy Goods) shop"),
        ({"account_prefix": "DUKA1"}, "account_prefix", "must be 1 to 4 letters or digits"),
        ({"account_prefix": "M-D"}, "account_prefix", "must be 1 to 4 letters or digits"),
        (
            {"consumer_key": Secret("has space inside")},
            "consumer_key",
            "the value given has spaces",
        ),
        ({"consumer_secret": Secret("short")}, "consumer_secret", "got 5 characters"),
        ({"passkey": Secret("pass-key-with-dashes")}, "passkey", "has other characters"),
        (
            {"mpesa_type": "platform", "business_shortcode": "600100"},
            "business_shortcode",
            "must be empty for a platform shop",
        ),
        (
            {
                "mpesa_type": "platform",
                "business_shortcode": "",
                "consumer_key": None,
                "passkey": Secret("a" * 20),
            },
            "passkey",
            "must not be set for a platform shop",
        ),
    ],
)
async def test_an_invalid_form_names_the_field_and_saves_nothing(
    signed_in: Seeded, changes: dict[str, Any], field: str, message: str
) -> None:
    before = await saved_state(signed_in)
    # Every other field changes too, valid: none of it may be saved.
    bad = form(name="Changed Name", account_prefix="ZZ", consumer_key=Secret("validkey123"))
    bad = _merge(bad, changes)
    with pytest.raises(ManagerInputError) as refused:
        await signed_in.service.save_settings(bad)
    assert refused.value.field == field and message in refused.value.message
    for secret in FIXED_SECRETS:
        assert secret not in str(refused.value)
    assert await saved_state(signed_in) == before


def _merge(base: SettingsForm, changes: dict[str, Any]) -> SettingsForm:
    values = {name: getattr(base, name) for name in SettingsForm.__dataclass_fields__}
    values.update(changes)
    return SettingsForm(**values)


async def test_a_valid_form_is_saved_and_secrets_are_only_replaced(signed_in: Seeded) -> None:
    new_key = new_canary("ck")
    view, message = await signed_in.service.save_settings(
        form(name="Mama Duka Ltd", account_prefix="MDL", consumer_key=Secret(f"  {new_key} "))
    )
    assert message == "Saved. Verify the credentials with M-Pesa (F6)."
    assert view.name == "Mama Duka Ltd" and view.account_prefix == "MDL"
    assert view.secrets[F.CONSUMER_KEY] == "****" + new_key[-4:]
    assert view.secrets[F.PASSKEY] == "****0003", "a credential left empty is kept"
    stored = await signed_in.store.shops.credentials(SHOP)
    assert stored.consumer_key.reveal() == new_key
    assert stored.passkey.reveal() == FIXED_SECRETS[2]
    update = next(
        e for e in await signed_in.store.audit.entries(SHOP) if e.action == "shop.updated"
    )
    assert new_key not in json.dumps(update.detail)
    assert update.detail["secrets_set"] == ["consumer_key"]
    _, again = await signed_in.service.save_settings(
        form(name="Mama Duka Ltd", account_prefix="MDL")
    )
    assert again == "Nothing changed."


async def test_switching_to_the_platform_removes_the_shops_own_credentials(
    signed_in: Seeded,
) -> None:
    view, message = await signed_in.service.save_settings(
        form(mpesa_type="platform", business_shortcode="")
    )
    assert view.mpesa_type is ShopType.PLATFORM
    assert dict(view.secrets) == dict.fromkeys(F)
    assert "credentials were removed" in message
    with pytest.raises(ActionRefused, match="uses the platform's paybill"):
        await signed_in.service.verify_credentials()


async def test_a_till_shop_needs_its_till_number(signed_in: Seeded) -> None:
    view, _ = await signed_in.service.save_settings(
        form(mpesa_type="till", business_shortcode="7000123", till_number="654321")
    )
    assert (view.mpesa_type, view.business_shortcode, view.till_number) == (
        ShopType.TILL,
        "7000123",
        "654321",
    )


def production(seeded: Seeded) -> ManagerService:
    settings = Settings(
        data_dir=seeded.data_dir,
        mode="production",
        shop_id=SHOP,
        relay={"url": "https://relay.example.com"},
    )
    return ManagerService(seeded.store, settings, seeded.clock, shop_id=SHOP, till_id="till1")


async def test_production_needs_an_https_relay(signed_in: Seeded, tmp_path: Path) -> None:
    service = production(signed_in)
    assert (await service.sign_in(Secret(PIN))).accepted
    before = await saved_state(signed_in)
    with pytest.raises(ManagerInputError) as refused:
        await service.save_settings(form(account_prefix="ZZ"))
    assert refused.value.field == "relay_url"
    assert "production mode needs an HTTPS relay URL" in refused.value.message
    assert await saved_state(signed_in) == before
    plain = enrolment_file(tmp_path, relay_url="http://relay.example.com")
    with pytest.raises(ManagerInputError, match="production mode needs an HTTPS relay URL"):
        await service.enrol_from_file(str(plain))
    secure = enrolment_file(tmp_path, relay_url="https://relay.example.com", name="secure.json")
    view, _ = await service.enrol_from_file(str(secure))
    assert {t.relay_url for t in view.tills} == {"https://relay.example.com"}
    # Disabled, a shop may be saved with an old http till: it sends no payment.
    assert (await service.save_settings(form(enabled=False)))[0].enabled is False


# ------------------------------------------------------------------------------ enrolment


def enrolment_file(tmp_path: Path, name: str = "enrol.json", **changes: Any) -> Path:
    document: dict[str, Any] = {
        "format": "smartduka-enrolment/1",
        "shop_id": SHOP,
        "shop_name": "Mama Duka",
        "till_id": "till1",
        "till_key": "tk-" + "q" * 40,
        "callback_kid": "k2",
        "callback_secret": "bmV3LWNhbGxiYWNrLXNlY3JldC0wMTIzNDU2Nzg5YWJj",
        "relay_url": "http://127.0.0.1:9",
    }
    document.update(changes)
    path = tmp_path / name
    path.write_text(json.dumps({k: v for k, v in document.items() if v is not None}))
    return path


async def test_enrolling_from_the_relays_file(signed_in: Seeded, tmp_path: Path) -> None:
    path = enrolment_file(tmp_path)
    view, message = await signed_in.service.enrol_from_file(str(path))
    assert view.tills[0].active_callback_kid == "k2"
    assert set(view.tills[0].callback_kids) == {"k1", "k2"}
    assert "delete it now" in message
    rotated = enrolment_file(
        tmp_path,
        name="rotated.json",
        till_id=None,
        till_key=None,
        callback_kid="k3",
        callback_secret="cm90YXRlZC1jYWxsYmFjay1zZWNyZXQtMDEyMzQ1Njc4",
    )
    view, _ = await signed_in.service.enrol_from_file(str(rotated))
    assert view.tills[0].active_callback_kid == "k3"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"not json", "the file is not JSON"),
        (b"[1, 2]", "must hold one JSON object"),
        (b"{}", "shop_id: field required"),
        (b'{"shop_id": "duka1", "callback_kid": 7, "callback_secret": "x"}', "callback_kid"),
        (b"x" * (65 * 1024), "larger than 64 KiB"),
    ],
)
async def test_a_bad_enrolment_file_is_refused_and_nothing_changes(
    signed_in: Seeded, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    before = await signed_in.store.tills.for_shop(SHOP)
    with pytest.raises(ManagerInputError) as refused:
        await signed_in.service.enrol_from_file(str(path))
    assert refused.value.field == "enrolment" and message in refused.value.message
    assert await signed_in.store.tills.for_shop(SHOP) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shop_id": "other"}, "the file is for shop 'other', not this shop"),
        ({"format": "smartduka-enrolment/9"}, "format is not smartduka-enrolment/1"),
        ({"till_key": None}, "must have both till_id and till_key"),
        ({"callback_secret": "not base64url!"}, "callback_secret: must be base64url text"),
        ({"till_key": "short"}, "till_key: must be 16 to 512 printable characters"),
    ],
)
async def test_an_enrolment_with_a_bad_field_never_echoes_a_secret(
    signed_in: Seeded, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = enrolment_file(tmp_path, **changes)
    before = await signed_in.store.tills.for_shop(SHOP)
    with pytest.raises(ManagerInputError) as refused:
        await signed_in.service.enrol_from_file(str(path))
    assert message in refused.value.message
    for value in ("q" * 40, "bmV3LWNhbGxiYWNr", "not base64url!"):
        assert value not in refused.value.message
    assert await signed_in.store.tills.for_shop(SHOP) == before


# ------------------------------------------------------------------------------ verify


async def test_verify_when_m_pesa_cannot_be_reached_records_no_status(signed_in: Seeded) -> None:
    result = await signed_in.service.verify_credentials()
    assert result.outcome is VerifyOutcome.UNREACHABLE
    assert "could not be asked" in result.message and "nothing was recorded" in result.message
    assert result.settings.verification_status is VerificationStatus.PENDING
    entry = (await signed_in.store.audit.entries(SHOP))[0]
    assert entry.action == "shop.verification_unreachable"


@pytest.fixture
async def live_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=False) as harness:
        yield harness


async def test_verify_against_m_pesa_records_the_status_and_time(live_till: TillHarness) -> None:
    await ManagerPin.of(live_till.store).set(Secret(PIN))
    service = ManagerService.for_engine(live_till.engine)
    assert (await service.sign_in(Secret(PIN))).accepted
    result = await service.verify_credentials()
    assert result.outcome is VerifyOutcome.VERIFIED, result.message
    assert result.settings.verification_status is VerificationStatus.VERIFIED
    assert result.settings.verified_at == live_till.clock.now()
    assert result.settings.last_checked_at == live_till.clock.now()

    # A wrong consumer secret (well formed) is refused by M-Pesa and recorded as failed.
    live_till.clock.advance(60)
    view = result.settings
    wrong = SettingsForm(
        name=view.name,
        mpesa_type=view.mpesa_type.value,
        business_shortcode=view.business_shortcode or "",
        till_number=view.till_number or "",
        account_prefix=view.account_prefix,
        enabled=view.enabled,
        consumer_secret=Secret("wrongsecret0000000000"),
    )
    saved, _ = await service.save_settings(wrong)
    assert saved.verification_status is VerificationStatus.PENDING
    refused = await service.verify_credentials()
    assert refused.outcome is VerifyOutcome.REFUSED
    assert "M-Pesa refused the consumer key and secret" in refused.message
    assert refused.settings.verification_status is VerificationStatus.FAILED
    assert refused.settings.last_checked_at == live_till.clock.now()
    statuses = [
        e.detail["status"]
        for e in await live_till.store.audit.entries(live_till.shop_id)
        if e.action == "shop.verification"
    ]
    assert statuses == ["failed", "verified"]


# ------------------------------------------------------------------------------ initiator


async def initiator_state(seeded: Seeded) -> tuple[Any, ...]:
    """The initiator pair as stored (revealed, for comparison only) and the audit length."""
    pair = await seeded.store.initiators.get(SHOP)
    audit = await seeded.store.audit.search(SHOP, include_system=True, limit=1)
    shown = None if pair is None else (pair.shortcode, pair.name.reveal(), pair.password.reveal())
    return (shown, audit[0].id)


async def test_the_initiator_is_sealed_and_shown_only_as_a_mask(signed_in: Seeded) -> None:
    password = new_canary("ip")
    view, message = await signed_in.service.save_settings(
        form(
            initiator_name=Secret(" duka_api_operator "), initiator_password=Secret(f" {password}")
        )
    )
    # (The seeded shop's consumer credentials were never verified, hence the reminder.)
    assert message == "Saved. Verify the credentials with M-Pesa (F6)."
    assert view.initiator == "****ator"
    pair = await signed_in.store.initiators.get(SHOP)
    assert pair is not None and pair.shortcode == "600100"
    # The name is trimmed; the password is kept exactly as typed.
    assert (pair.name.reveal(), pair.password.reveal()) == ("duka_api_operator", f" {password}")
    assert password not in repr(view)
    entry = next(
        e for e in await signed_in.store.audit.entries(SHOP) if e.action == "shop.initiator_set"
    )
    assert password not in json.dumps(entry.detail) and "operator" not in json.dumps(entry.detail)
    # Left blank, the saved pair is kept.
    again, said = await signed_in.service.save_settings(form(initiator_password=Secret("")))
    assert said == "Nothing changed." and again.initiator == "****ator"
    assert (await signed_in.store.initiators.get(SHOP)) == pair


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"initiator_name": Secret("apiop1")}, "initiator_password", "type the initiator password"),
        ({"initiator_password": Secret("Pass-1")}, "initiator_name", "type the initiator name"),
        (
            {"initiator_name": Secret("api op"), "initiator_password": Secret("Pass-1")},
            "initiator_name",
            "must be 1 to 64 letters, digits",
        ),
        (
            {"initiator_name": Secret("apiop1"), "initiator_password": Secret("two\nlines")},
            "initiator_password",
            "must be one line",
        ),
        (
            {
                "mpesa_type": "platform",
                "business_shortcode": "",
                "initiator_name": Secret("apiop1"),
                "initiator_password": Secret("Pass-1"),
            },
            "initiator",
            "no shortcode of its own",
        ),
    ],
)
async def test_a_bad_initiator_is_named_and_nothing_is_saved(
    signed_in: Seeded, changes: dict[str, Any], field: str, message: str
) -> None:
    before = (await saved_state(signed_in), await initiator_state(signed_in))
    bad = _merge(form(name="Changed Name", account_prefix="ZZ"), changes)
    with pytest.raises(ManagerInputError) as refused:
        await signed_in.service.save_settings(bad)
    assert refused.value.field == field and message in refused.value.message
    assert "Pass-1" not in str(refused.value)
    assert (await saved_state(signed_in), await initiator_state(signed_in)) == before
