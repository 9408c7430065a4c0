"""Builders for store tests: shops with canary credentials, enrolled tills, new attempts."""

from __future__ import annotations

import itertools
import secrets
from datetime import timedelta

from smartduka_tui.clock import Clock
from smartduka_tui.model import ShopType
from smartduka_tui.mpesa.callback_path import new_attempt_ref
from smartduka_tui.store import Enrolment, NewAttempt, Secret, ShopConfig, ShopSecrets, Store
from tests.conftest import unique_phone
from tests.store.canaries import new_canary

_ids = itertools.count(1)


def unique_id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}{secrets.token_hex(3)}"


def paybill_config(shop_id: str, **changes: object) -> ShopConfig:
    values: dict[str, object] = {
        "id": shop_id,
        "name": "Mama Mboga Stores",
        "mpesa_type": ShopType.PAYBILL,
        "account_prefix": "DUKA",
        "business_shortcode": "174379",
        "till_number": None,
        "enabled": True,
    }
    values.update(changes)
    return ShopConfig(**values)  # type: ignore[arg-type]


def canary_secrets() -> ShopSecrets:
    return ShopSecrets(
        consumer_key=Secret(new_canary("ckey")),
        consumer_secret=Secret(new_canary("csec")),
        passkey=Secret(new_canary("pass") + "0" * 24),
    )


def enrolment(shop_id: str, till_id: str, kid: str = "c1") -> Enrolment:
    return Enrolment(
        shop_id=shop_id,
        till_id=till_id,
        relay_url="http://127.0.0.1:8080",
        till_key=Secret(new_canary("tkey")),
        callback_kid=kid,
        callback_secret=Secret(new_canary(alphabet="b64url")),
    )


async def make_shop(store: Store, shop_id: str | None = None) -> tuple[str, str]:
    """A paybill shop with canary credentials and one enrolled till: (shop id, till id)."""
    shop_id = shop_id or unique_id("shop")
    till_id = unique_id("till")
    async with store.write() as tx:
        await store.shops.add(tx, paybill_config(shop_id), canary_secrets())
        await store.tills.enrol(tx, enrolment(shop_id, till_id))
    return shop_id, till_id


def new_attempt(
    clock: Clock,
    shop_id: str,
    till_id: str,
    *,
    phone: str | None = None,
    amount: int = 150,
    sale_ref: str | None = None,
    idempotency_key: str | None = None,
) -> NewAttempt:
    return NewAttempt(
        shop_id=shop_id,
        till_id=till_id,
        sale_ref=sale_ref or unique_id("S"),
        amount=amount,
        phone=phone or unique_phone(),
        idempotency_key=idempotency_key or secrets.token_hex(16),
        attempt_ref=new_attempt_ref(),
        expires_at=clock.now() + timedelta(minutes=5),
    )
