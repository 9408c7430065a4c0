"""`TillSetup` and `PinDesk`: the till's own set-up, as `smartduka shop`, `smartduka enrol` and
`smartduka manager` do it: shops and their credentials, the initiator, enrolment, the PIN.

It keeps no session, unlike `ManagerService`: a command asks for the PIN itself (`PinDesk.gate`)
before it changes anything, and the first shop is added before any PIN exists. The rules it
shares with the settings screen are written once, here: a shop's settings as a manager sees
them (`settings_view`) and what keeping a relay's enrolment file means (`TillSetup.enrol`).
Store refusals of a typed value come back as ManagerInputError naming the field; anything
else the store raises (a missing key, a busy or damaged database) goes up as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from smartduka_tui.config import Settings
from smartduka_tui.manager.errors import EnrolmentProblem, EnrolmentRefused, ManagerInputError
from smartduka_tui.manager.settings import SettingsView, TillView
from smartduka_tui.model import AuditAction, Mode, ShopSecretField, ShopType
from smartduka_tui.mpesa.enrolment import Enrolment as RelayEnrolment
from smartduka_tui.mpesa.enrolment import RotatedSecret
from smartduka_tui.store.errors import InputError, ShopConfigError
from smartduka_tui.store.pin import ManagerPin, PinCheck, PinStatus
from smartduka_tui.store.records import (
    Enrolment,
    Shop,
    ShopConfig,
    ShopSecrets,
    Till,
    TillCredentials,
)
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import Store


@dataclass(frozen=True, slots=True)
class ShopChanges:
    """What a change of a shop names; None leaves a field as it is, and '' clears a number
    (the shortcode or the till number)."""

    name: str | None = None
    mpesa_type: ShopType | None = None
    account_prefix: str | None = None
    business_shortcode: str | None = None
    till_number: str | None = None
    enabled: bool | None = None

    def applied_to(self, config: ShopConfig) -> ShopConfig:
        changes: dict[str, Any] = {
            name: value for name, value in asdict(self).items() if value is not None
        }
        for number in ("business_shortcode", "till_number"):
            if number in changes:
                changes[number] = changes[number].strip() or None
        return replace(config, **changes)


def till_view(till: Till) -> TillView:
    return TillView(till.id, till.relay_url, till.active_callback_kid, till.callback_kids)


async def settings_view(store: Store, settings: Settings, shop: Shop) -> SettingsView:
    """A shop's settings as a manager sees them: credentials as `****` and their last four
    (or only "set" while the vault's key is not loaded), its tills, its last check."""
    shown: dict[ShopSecretField, str | None] = dict.fromkeys(ShopSecretField)
    if store.keyring is not None:
        shown.update(await store.shops.masked_secrets(shop.id))
    else:
        shown.update({f: "set" for f in shop.secret_fields})
    checks = await store.audit.search(shop.id, action_prefix=AuditAction.SHOP_VERIFICATION, limit=1)
    tills = await store.tills.for_shop(shop.id)
    return SettingsView(
        shop_id=shop.id,
        name=shop.name,
        mpesa_type=shop.mpesa_type,
        business_shortcode=shop.business_shortcode,
        till_number=shop.till_number,
        account_prefix=shop.account_prefix,
        enabled=shop.enabled,
        secrets=shown,
        verification_status=shop.verification_status,
        verified_at=shop.verified_at,
        last_checked_at=checks[0].at if checks else None,
        tills=tuple(till_view(t) for t in tills),
        production=settings.mode is Mode.PRODUCTION,
        initiator=None if store.keyring is None else await store.initiators.masked(shop.id),
    )


async def _enrol_till(
    store: Store,
    settings: Settings,
    document: RelayEnrolment,
    relay_url: str | None,
    replace_secret: bool,
) -> TillView:
    url = relay_url or document.relay_url or settings.relay.url
    if not url:
        raise EnrolmentRefused(
            EnrolmentProblem.NO_RELAY_URL, "the file has no relay_url and none is configured"
        )
    if settings.mode is Mode.PRODUCTION and not url.startswith("https://"):
        raise EnrolmentRefused(
            EnrolmentProblem.INSECURE_RELAY_URL,
            "production mode needs an HTTPS relay URL (https://...)",
        )
    enrolment = Enrolment(
        shop_id=document.shop_id,
        till_id=document.till_id,
        relay_url=url,
        till_key=Secret(document.till_key),
        callback_kid=document.callback_kid,
        callback_secret=Secret(document.callback_secret),
    )
    async with store.write() as tx:
        return till_view(await store.tills.enrol(tx, enrolment, replace_secret=replace_secret))


async def _add_rotated_secret(
    store: Store, document: RotatedSecret, replace_secret: bool
) -> tuple[TillView, ...]:
    tills = await store.tills.for_shop(document.shop_id)
    if not tills:
        raise EnrolmentRefused(
            EnrolmentProblem.NO_TILL,
            "no till of this shop is enrolled yet: use the relay's till file",
        )
    secret = Secret(document.callback_secret)
    async with store.write() as tx:
        added = [
            await store.tills.add_callback_secret(
                tx,
                document.shop_id,
                till.id,
                document.callback_kid,
                secret,
                replace_secret=replace_secret,
            )
            for till in tills
        ]
    return tuple(till_view(till) for till in added)


class TillSetup:
    """Shops, their credentials and initiator, and enrolment, in one till's store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # ---- shops ---------------------------------------------------------------------------

    async def shop_ids(self) -> list[str]:
        return await self.store.shops.list_ids()

    async def has_shop(self, shop_id: str) -> bool:
        return await self.store.shops.get(shop_id) is not None

    async def enrolled_till(self, shop_id: str) -> TillCredentials:
        """The shop's one till enrolled here, with its key (PaymentRefused saying what is
        missing otherwise), for a command that talks to the relay as that till."""
        # The engine's module, loaded only by the commands that need a till's relay.
        from smartduka_tui.payments.service import enrolled_till

        return await enrolled_till(self.store, await self.store.shops.require(shop_id))

    async def shop(self, shop_id: str) -> SettingsView | None:
        """The shop's settings, credentials masked; None when there is no such shop."""
        shop = await self.store.shops.get(shop_id)
        return None if shop is None else await settings_view(self.store, self.settings, shop)

    async def add_shop(self, config: ShopConfig, secrets: ShopSecrets) -> SettingsView:
        """Add a shop with its credentials (sealed in the vault), all in one transaction;
        ManagerInputError naming the first wrong field, and nothing saved, otherwise."""
        try:
            async with self.store.write() as tx:
                shop = await self.store.shops.add(tx, config, secrets)
        except ShopConfigError as error:
            raise ManagerInputError(error.field, error.message) from None
        return await settings_view(self.store, self.settings, shop)

    async def change_shop(
        self,
        shop_id: str,
        changes: ShopChanges,
        secrets: ShopSecrets,
        *,
        clear_credentials: bool = False,
    ) -> tuple[bool, SettingsView]:
        """Change what `changes` names and store the credentials given (after removing the
        stored ones with `clear_credentials`), in one transaction; whether anything changed,
        and the shop. ManagerInputError naming the first wrong field, nothing saved."""
        try:
            async with self.store.write() as tx:
                before = await self.store.shops.require(shop_id, tx=tx)
                after = await self.store.shops.update(
                    tx, changes.applied_to(before.config), secrets, clear_secrets=clear_credentials
                )
        except ShopConfigError as error:
            raise ManagerInputError(error.field, error.message) from None
        return after != before, await settings_view(self.store, self.settings, after)

    async def set_initiator(self, shop_id: str, name: Secret, password: Secret) -> str | None:
        """Seal the shop's initiator name and password; the name masked back. ManagerInputError
        (`initiator_name` or `initiator_password`), nothing saved, for a wrong one."""
        try:
            async with self.store.write() as tx:
                await self.store.initiators.set(tx, shop_id, name, password)
        except ShopConfigError as error:
            raise ManagerInputError(error.field, error.message) from None
        return await self.store.initiators.masked(shop_id)

    async def enrol(
        self,
        document: RelayEnrolment | RotatedSecret,
        *,
        relay_url: str | None = None,
        replace_secret: bool = False,
    ) -> tuple[TillView, ...]:
        """Keep what the relay's enrolment file hands this till: a till's enrolment (its relay
        URL `relay_url`, else the file's, else the configured one; https:// in production), or
        a rotated callback secret, added to every till of the shop. EnrolmentRefused, nothing
        stored, when that cannot be; the store's own refusals (a bad field, a kid already
        holding another secret without `replace_secret`, no such shop) go up as they are."""
        if isinstance(document, RelayEnrolment):
            till = await _enrol_till(self.store, self.settings, document, relay_url, replace_secret)
            return (till,)
        return await _add_rotated_secret(self.store, document, replace_secret)


class PinDesk:
    """The till's manager PIN for the commands: its state, the gate, a change, a reset."""

    def __init__(self, store: Store) -> None:
        self.pin = ManagerPin.of(store)

    async def status(self) -> PinStatus:
        return await self.pin.status()

    async def gate(self, read_pin: Callable[[], Secret], *, purpose: str) -> PinCheck | None:
        """The gate in front of what reveals or changes secrets or resolves payments: None
        while no PIN is set (it passes), else the check of the PIN `read_pin` gives. While a
        lockout holds nobody is asked: the try is refused (and audited) without a PIN."""
        status = await self.pin.status()
        if not status.is_set:
            return None
        if status.locked_until is not None:
            return await self.pin.verify(Secret(""), purpose=purpose)
        return await self.pin.verify(read_pin(), purpose=purpose)

    async def change(self, new_pin: Secret, *, current_pin: Secret | None) -> PinCheck:
        """Set the PIN, or change it with the current one; ManagerInputError for a new PIN
        that is not acceptable (nothing changed)."""
        try:
            return await self.pin.set(new_pin, current_pin=current_pin)
        except InputError as error:
            raise ManagerInputError(error.field, error.message) from None

    async def reset(self, *, reason: str) -> bool:
        """Forget the PIN and its lockout (the caller holds the vault's key); whether one
        was set."""
        return await self.pin.reset(reason=reason)
