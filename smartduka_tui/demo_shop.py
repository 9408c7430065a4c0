"""A shop stored with its one till: how `smartduka pay` without a configured shop, the demo, the
test harness and the benchmarks get a till to pay against.

`store_shop` writes a shop, its till as enrolled (and optionally its initiator and an open
shift) in one transaction; `new_till_folder` does it in a new data folder with a fresh keyring.
`add_simulator_shop` first registers a shortcode on the simulator with fresh random
credentials; `smartduka demo` registers the same way but enrols its till as the relay's
enrolment file says (`relay_enrolment`).

`simulator_initiator` gives such a shop an M-Pesa initiator (API operator) on the simulator, for
receipt checks and reversals: the till seals it in its vault like a real one, and encrypts its
password with the simulator's own certificate, written where `daraja.certificate_file` names.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from smartduka_tui.config import Settings
from smartduka_tui.model import Actor, ShopType
from smartduka_tui.mpesa.callback_path import new_callback_secret
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.initiator import InitiatorCredentials
from smartduka_tui.store.records import Enrolment, ShopConfig, ShopSecrets
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import Store, keyring_path, open_till_store
from smartduka_tui.store.vault import create_keyring

SIMULATOR_INITIATOR: Final = "smartduka-operator"


@dataclass(frozen=True, slots=True)
class SimulatorShop:
    shop_id: str
    till_id: str
    shortcode: str


async def add_simulator_shop(
    store: Store,
    sim: SimulatorControl,
    *,
    shop_id: str | Callable[[str], str],
    name: str,
    prefix: str,
    till_id: str,
    relay_url: str,
    kind: ShopType = ShopType.PAYBILL,
    callback_kid: str = "k1",
    callback_secret: str | None = None,
    sim_settings: dict[str, Any] | None = None,
) -> SimulatorShop:
    """Register a new shortcode on `sim` and store its shop (`shop_id`, or a function of the
    shortcode) with one enrolled till; the callback secret is new unless given."""
    passkey = secrets.token_hex(32)
    key, secret = secrets.token_hex(16), secrets.token_hex(16)
    registered = await sim.register_shortcode(
        passkey=passkey, consumer_key=key, consumer_secret=secret, settings=sim_settings or {}
    )
    shop = shop_id if isinstance(shop_id, str) else shop_id(registered.shortcode)
    await store_shop(
        store,
        ShopConfig(
            id=shop,
            name=name,
            mpesa_type=kind,
            account_prefix=prefix,
            business_shortcode=registered.shortcode,
        ),
        ShopSecrets(
            consumer_key=Secret(key), consumer_secret=Secret(secret), passkey=Secret(passkey)
        ),
        Enrolment(
            shop_id=shop,
            till_id=till_id,
            relay_url=relay_url,
            till_key=Secret(secrets.token_urlsafe(32)),
            callback_kid=callback_kid,
            callback_secret=Secret(callback_secret or new_callback_secret()),
        ),
    )
    return SimulatorShop(shop_id=shop, till_id=till_id, shortcode=registered.shortcode)


@dataclass(frozen=True, slots=True)
class OpenShift:
    """A shift to open with the shop, so the till takes cash at once (the demo's drawer)."""

    cashier: str
    opening_float: int


async def store_shop(
    store: Store,
    shop: ShopConfig,
    credentials: ShopSecrets,
    enrolment: Enrolment,
    *,
    initiator: InitiatorCredentials | None = None,
    shift: OpenShift | None = None,
) -> None:
    """The shop, its till as enrolled, and (when given) its initiator and an open shift, written
    in one transaction; what is set on the shop's behalf is audited as the system's."""
    async with store.write() as tx:
        await store.shops.add(tx, shop, credentials)
        if initiator is not None:
            await store.initiators.set(
                tx, shop.id, initiator.name, initiator.password, actor=Actor.SYSTEM
            )
        await store.tills.enrol(tx, enrolment)
        if shift is not None:
            await store.shifts.open(
                tx,
                shop_id=shop.id,
                till_id=enrolment.till_id,
                cashier=shift.cashier,
                opening_float=shift.opening_float,
                actor=Actor.SYSTEM,
            )


async def new_till_folder(
    data_dir: Path,
    shop: ShopConfig,
    credentials: ShopSecrets,
    enrolment: Enrolment,
    *,
    initiator: InitiatorCredentials | None = None,
    shift: OpenShift | None = None,
) -> None:
    """A till's data folder set up as `smartduka shop add` and `smartduka enrol` would: a
    fresh keyring, and the shop with its till stored (`store_shop`)."""
    ensure_keyring(data_dir)
    async with open_till_store(data_dir) as store:
        await store_shop(store, shop, credentials, enrolment, initiator=initiator, shift=shift)


def relay_enrolment(data: Mapping[str, Any]) -> Enrolment:
    """The relay's enrolment JSON (`smartduka-relay shop add --json`) as the store keeps it."""
    return Enrolment(
        shop_id=str(data["shop_id"]),
        till_id=str(data["till_id"]),
        relay_url=str(data["relay_url"]),
        till_key=Secret(str(data["till_key"])),
        callback_kid=str(data["callback_kid"]),
        callback_secret=Secret(str(data["callback_secret"])),
    )


async def simulator_shop_if_none(
    store: Store,
    *,
    settings: Settings,
    url: str,
    shop_id: str,
    name: str,
    prefix: str,
    till_id: str,
    relay_url: str,
) -> None:
    """`add_simulator_shop` on the simulator at `url`, unless the settings name a shop or the
    store has one already (`smartduka pay --simulator` on a fresh data folder)."""
    if settings.shop_id or await store.shops.list_ids():
        return
    async with SimulatorControl(url) as sim:
        await add_simulator_shop(
            store,
            sim,
            shop_id=shop_id,
            name=name,
            prefix=prefix,
            till_id=till_id,
            relay_url=relay_url,
        )


def ensure_keyring(data_dir: Path) -> None:
    """A data folder (private to its user) with a keyring holding one freshly generated key,
    unless it has a keyring already."""
    path = keyring_path(data_dir)
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_keyring(path)


async def simulator_initiator(
    sim: SimulatorControl,
    shortcode: str,
    certificate_file: Path,
    initiator: InitiatorCredentials | None = None,
) -> InitiatorCredentials:
    """Create `shortcode`'s API operator on the simulator (a new random password unless
    `initiator` is given: a restarted simulator has forgotten it) and write the simulator's
    certificate to `certificate_file`. A restarted simulator has a new key pair, so the file is
    written every time. The caller seals the returned credentials in the till's vault."""
    chosen = initiator or InitiatorCredentials(
        shortcode, Secret(SIMULATOR_INITIATOR), Secret(secrets.token_urlsafe(24))
    )
    await sim.set_initiator(shortcode, chosen.name.reveal(), chosen.password.reveal())
    certificate = await sim.certificate()
    await asyncio.to_thread(_write_file, certificate_file, certificate)
    return chosen


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
