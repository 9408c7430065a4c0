"""The platform's paybill at the relay: its credentials, which shops use it, and its pushes.

Shops without an M-Pesa paybill or till of their own are paid through the platform's paybill;
their tills push through the relay's broker (`broker.py`), and the platform's credentials never
leave the relay. This module keeps what the broker needs:

- the platform's Daraja set-up: base URL and shortcode in the clear, consumer key, consumer
  secret and passkey encrypted with the relay key (AES-256-GCM, 12-byte random nonce; the
  associated data binds the field, so a ciphertext moved to another field fails);
- which shops use the platform, with each one's AccountReference prefix and push limit;
- which shop and till each accepted push belongs to, so a till can only query its own shop's
  pushes.

`BrokerStore` is the small interface; the relay's own store provides it (`RelayStore.broker()`):
`SqliteBrokerTables` through the SQLite store's one writer, `PostgresBrokerTables` in the
database that every instance shares, so push limits and the platform's OAuth token are shared.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import SecretStr, ValidationError

from callback_relay.registry import RegistryError
from callback_relay.settings import url_problem
from smartduka_tui.model import Mode
from smartduka_tui.mpesa.requests import DarajaCredentials, MerchantConfig, MerchantKind
from smartduka_tui.secretbox import SecretBox

if TYPE_CHECKING:
    from callback_relay.store import Done, RelayStore

PLATFORM_FIELDS = ("consumer_key", "consumer_secret", "passkey")
DEFAULT_DARAJA_URL = "https://sandbox.safaricom.co.ke"
DEFAULT_PUSHES_PER_MINUTE = 20
MAX_PUSHES_PER_MINUTE = 600
# The broker keeps its push records this long: queries come within minutes, the reconciler's
# confirmations within a day.
PUSH_RECORD_RETENTION_MS = 7 * 86_400_000

_SHORTCODE = re.compile(r"^[0-9]{5,7}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,4}$")


class PlatformConfigError(RegistryError):
    """A platform or platform-shop setting that cannot be used; nothing was changed."""


def platform_aad(field_name: str) -> bytes:
    """Associated data of one platform credential: binds the ciphertext to its field."""
    return f"smartduka-relay/platform/{field_name}".encode()


def check_shortcode(shortcode: str) -> str:
    value = shortcode.strip()
    if not _SHORTCODE.fullmatch(value):
        raise PlatformConfigError("shortcode: must be 5 to 7 digits (the platform's paybill)")
    return value


def check_daraja_url(url: str, mode: Mode = Mode.SANDBOX) -> str:
    problem = url_problem(url, mode)
    if problem is not None:
        raise PlatformConfigError(f"daraja url: {problem}")
    return url.strip().rstrip("/")


def check_prefix(prefix: str) -> str:
    value = prefix.strip()
    if not _PREFIX.fullmatch(value):
        raise PlatformConfigError(
            "prefix: must be 1 to 4 letters or digits (AccountReference = prefix + sale "
            "number, at most 12 characters)"
        )
    return value


def check_pushes_per_minute(value: int) -> int:
    if not 1 <= value <= MAX_PUSHES_PER_MINUTE:
        raise PlatformConfigError(
            f"pushes per minute: must be from 1 to {MAX_PUSHES_PER_MINUTE}, got {value}"
        )
    return value


def merchant_for(shortcode: str, secrets: dict[str, SecretStr]) -> MerchantConfig:
    """The platform's paybill as the protocol layer takes it; PlatformConfigError names the
    first credential that is wrong (never its value)."""
    try:
        credentials = DarajaCredentials(
            consumer_key=secrets["consumer_key"], consumer_secret=secrets["consumer_secret"]
        )
        return MerchantConfig(
            kind=MerchantKind.PAYBILL,
            business_shortcode=shortcode,
            passkey=secrets["passkey"],
            credentials=credentials,
        )
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "credentials"
        name = where.split(".")[-1].replace("_", " ")
        message = first["msg"].removeprefix("Value error, ")
        raise PlatformConfigError(f"{name}: {message}") from None


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    """The platform's set-up as stored: credentials still encrypted."""

    shortcode: str
    daraja_url: str
    ciphertexts: dict[str, bytes] = field(repr=False)
    updated_at: int


@dataclass(frozen=True, slots=True)
class PlatformShop:
    """A shop paid through the platform's paybill."""

    shop_id: str
    prefix: str
    pushes_per_minute: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class PlatformAccount:
    """The platform's set-up, opened: what the broker pushes with. Never printed in full."""

    daraja_url: str
    merchant: MerchantConfig = field(repr=False)

    @property
    def shortcode(self) -> str:
        return self.merchant.business_shortcode


def seal_platform(
    box: SecretBox, shortcode: str, daraja_url: str, secrets: dict[str, SecretStr], now: int
) -> PlatformRecord:
    """Validate and encrypt a platform set-up; PlatformConfigError before anything is sealed."""
    shortcode = check_shortcode(shortcode)
    daraja_url = check_daraja_url(daraja_url)
    missing = [name for name in PLATFORM_FIELDS if name not in secrets]
    if missing:
        raise PlatformConfigError(f"{missing[0].replace('_', ' ')}: is required")
    merchant_for(shortcode, secrets)
    ciphertexts = {
        name: box.encrypt(secrets[name].get_secret_value().encode("utf-8"), platform_aad(name))
        for name in PLATFORM_FIELDS
    }
    return PlatformRecord(shortcode, daraja_url, ciphertexts, now)


def open_platform(box: SecretBox, record: PlatformRecord) -> PlatformAccount:
    """Decrypt the stored set-up (SealBrokenError if a row was tampered with or moved)."""
    secrets = {
        name: SecretStr(box.decrypt(record.ciphertexts[name], platform_aad(name)).decode("utf-8"))
        for name in PLATFORM_FIELDS
    }
    return PlatformAccount(record.daraja_url, merchant_for(record.shortcode, secrets))


@dataclass(frozen=True, slots=True)
class StoredToken:
    """The platform's OAuth token as the store keeps it: encrypted, with its wall-clock end."""

    cache_key: str
    ciphertext: bytes = field(repr=False)
    expires_in: int
    usable_until_ms: int


def bucket_after(
    state: tuple[float, int] | None, per_minute: int, now_ms: int, *, take: bool
) -> tuple[tuple[float, int], float]:
    """A shop's push bucket after a look (`take=False`) or a push (`take=True`): its new
    (tokens, at) and the seconds to wait (0: allowed, and spent when taking).

    The bucket holds `per_minute` pushes and refills at `per_minute` a minute. Its state lives
    in the relay's store, so every relay instance on one database spends the same bucket.
    """
    burst = float(per_minute)
    tokens, at = state if state is not None else (burst, now_ms)
    tokens = min(burst, tokens + max(0, now_ms - at) * per_minute / 60_000.0)
    if tokens >= 1.0:
        return ((tokens - 1.0 if take else tokens), now_ms), 0.0
    return (tokens, now_ms), (1.0 - tokens) * 60.0 / per_minute


class BrokerStore(Protocol):
    """Durable broker state, in the relay's own store (`RelayStore.broker()`): one SQLite
    writer, or the PostgreSQL database every instance shares. Writes commit before returning."""

    async def platform(self) -> PlatformRecord | None: ...

    async def set_platform(self, record: PlatformRecord) -> None: ...

    async def shop(self, shop_id: str) -> PlatformShop | None: ...

    async def shops(self) -> tuple[PlatformShop, ...]: ...

    async def set_shop(self, shop: PlatformShop) -> None:
        """Add or change a platform shop; PlatformConfigError if its prefix clashes."""
        ...

    async def remove_shop(self, shop_id: str) -> bool: ...

    async def remember_push(
        self, checkout_request_id: str, shop_id: str, till_id: str, now: int
    ) -> None: ...

    async def push_shop(self, checkout_request_id: str) -> str | None: ...

    async def push_wait(self, shop: PlatformShop, now: int) -> float:
        """Seconds until the shop may push (0: now), spending nothing."""
        ...

    async def take_push(self, shop: PlatformShop, now: int) -> float:
        """Spend one of the shop's pushes: 0 when allowed, else the seconds to wait."""
        ...

    async def load_token(self, cache_key: str) -> StoredToken | None: ...

    async def save_token(self, token: StoredToken) -> None: ...


def clashing_prefix(new: PlatformShop, others: list[tuple[str, str]]) -> PlatformConfigError | None:
    """Daraja shows the AccountReference to the payer and on statements: the shop a payment
    belongs to must follow from it, so no prefix may equal or start another shop's."""
    wanted = new.prefix.upper()
    for other_id, other in others:
        taken = other.upper()
        if wanted.startswith(taken) or taken.startswith(wanted):
            return PlatformConfigError(
                f"prefix {new.prefix!r} clashes with prefix {other!r} of shop "
                f"{other_id}: platform prefixes must be unique and none may start another"
            )
    return None


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS platform_account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    shortcode TEXT NOT NULL,
    daraja_url TEXT NOT NULL,
    consumer_key BLOB NOT NULL,
    consumer_secret BLOB NOT NULL,
    passkey BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS platform_shops (
    shop_id TEXT PRIMARY KEY REFERENCES shops(shop_id),
    prefix TEXT NOT NULL,
    pushes_per_minute INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS broker_pushes (
    checkout_request_id TEXT PRIMARY KEY,
    shop_id TEXT NOT NULL,
    till_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS broker_pushes_age ON broker_pushes (created_at);
CREATE TABLE IF NOT EXISTS broker_push_buckets (
    shop_id TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS broker_tokens (
    cache_key TEXT PRIMARY KEY,
    ciphertext BLOB NOT NULL,
    expires_in INTEGER NOT NULL,
    usable_until_ms INTEGER NOT NULL
);
"""


class BrokerSql:
    """The broker tables' statements and row shapes, written once for both stores.

    In SQLite's "?" style; `PostgresStore` runs each through `postgres_sql`. Only the statements
    the two stores run alike are here: PostgreSQL's row locks for a push bucket stay its own.
    """

    PLATFORM = (
        "SELECT shortcode, daraja_url, consumer_key, consumer_secret, passkey, updated_at"
        " FROM platform_account WHERE id = 1"
    )
    SET_PLATFORM = (
        "INSERT INTO platform_account (id, shortcode, daraja_url, consumer_key,"
        " consumer_secret, passkey, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET shortcode = excluded.shortcode,"
        " daraja_url = excluded.daraja_url, consumer_key = excluded.consumer_key,"
        " consumer_secret = excluded.consumer_secret, passkey = excluded.passkey,"
        " updated_at = excluded.updated_at"
    )
    SHOPS = "SELECT shop_id, prefix, pushes_per_minute, updated_at FROM platform_shops"
    SHOP = SHOPS + " WHERE shop_id = ?"
    OTHER_PREFIXES = "SELECT shop_id, prefix FROM platform_shops WHERE shop_id != ?"
    SET_SHOP = (
        "INSERT INTO platform_shops (shop_id, prefix, pushes_per_minute, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (shop_id) DO UPDATE SET"
        " prefix = excluded.prefix, pushes_per_minute = excluded.pushes_per_minute,"
        " updated_at = excluded.updated_at"
    )
    REMOVE_SHOP = "DELETE FROM platform_shops WHERE shop_id = ?"
    REMEMBER_PUSH = (
        "INSERT INTO broker_pushes (checkout_request_id, shop_id, till_id, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (checkout_request_id) DO NOTHING"
    )
    FORGET_PUSHES = "DELETE FROM broker_pushes WHERE created_at < ?"
    PUSH_SHOP = "SELECT shop_id FROM broker_pushes WHERE checkout_request_id = ?"
    BUCKET = "SELECT tokens, at_ms FROM broker_push_buckets WHERE shop_id = ?"
    # The cached OAuth grants (named so, not "token", for the secrets lint).
    CACHED_GRANT = (
        "SELECT ciphertext, expires_in, usable_until_ms FROM broker_tokens WHERE cache_key = ?"
    )
    SAVE_GRANT = (
        "INSERT INTO broker_tokens (cache_key, ciphertext, expires_in, usable_until_ms)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (cache_key) DO UPDATE SET"
        " ciphertext = excluded.ciphertext, expires_in = excluded.expires_in,"
        " usable_until_ms = excluded.usable_until_ms"
    )

    @staticmethod
    def platform_record(row: Sequence[Any]) -> PlatformRecord:
        ciphertexts = {name: bytes(row[2 + i]) for i, name in enumerate(PLATFORM_FIELDS)}
        return PlatformRecord(row[0], row[1], ciphertexts, row[5])

    @staticmethod
    def platform_params(record: PlatformRecord) -> tuple[Any, ...]:
        return (
            record.shortcode,
            record.daraja_url,
            *(record.ciphertexts[name] for name in PLATFORM_FIELDS),
            record.updated_at,
        )

    @staticmethod
    def shop_params(shop: PlatformShop) -> tuple[Any, ...]:
        return (shop.shop_id, shop.prefix, shop.pushes_per_minute, shop.updated_at)

    @staticmethod
    def stored_token(cache_key: str, row: Sequence[Any]) -> StoredToken:
        return StoredToken(cache_key, bytes(row[0]), *row[1:])

    @staticmethod
    def token_params(token: StoredToken) -> tuple[Any, ...]:
        return (token.cache_key, token.ciphertext, token.expires_in, token.usable_until_ms)


def postgres_sql(sql: str) -> str:
    """A `BrokerSql` statement in psycopg's "%s" style (none of them holds a literal "?")."""
    return sql.replace("?", "%s")


class BrokerTables:
    """`BrokerStore` over a relay store's steps: what both stores run alike. Each store adds
    the prefix check and the push bucket's spend, which PostgreSQL does under its own locks."""

    # The database's refusal (a shop that is not the relay's), answered as PlatformConfigError.
    REFUSED: ClassVar[type[Exception]]

    def __init__(self, store: RelayStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @staticmethod
    def refusal(exc: Exception) -> str:
        """What a refusal's message says of the database's error."""
        return type(exc).__name__

    @contextlib.contextmanager
    def _refused_as_config_error(self) -> Iterator[None]:
        try:
            yield
        except self.REFUSED as exc:
            raise PlatformConfigError(
                f"the relay database refused the change: {self.refusal(exc)}"
            ) from None

    async def _one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        (rows,) = await self._store.read_steps((sql, params))
        return rows[0] if rows else None

    async def _write(self, *steps: tuple[str, Sequence[Any]]) -> list[Done]:
        with self._refused_as_config_error():
            return await self._store.write_steps(*steps)

    async def platform(self) -> PlatformRecord | None:
        row = await self._one(BrokerSql.PLATFORM, ())
        return None if row is None else BrokerSql.platform_record(row)

    async def set_platform(self, record: PlatformRecord) -> None:
        await self._write((BrokerSql.SET_PLATFORM, BrokerSql.platform_params(record)))

    async def shop(self, shop_id: str) -> PlatformShop | None:
        row = await self._one(BrokerSql.SHOP, (shop_id,))
        return None if row is None else PlatformShop(*row)

    async def shops(self) -> tuple[PlatformShop, ...]:
        (rows,) = await self._store.read_steps((BrokerSql.SHOPS + " ORDER BY shop_id", ()))
        return tuple(PlatformShop(*row) for row in rows)

    async def remove_shop(self, shop_id: str) -> bool:
        (done,) = await self._write((BrokerSql.REMOVE_SHOP, (shop_id,)))
        return done.rowcount == 1

    async def remember_push(
        self, checkout_request_id: str, shop_id: str, till_id: str, now: int
    ) -> None:
        await self._write(
            (BrokerSql.REMEMBER_PUSH, (checkout_request_id, shop_id, till_id, now)),
            (BrokerSql.FORGET_PUSHES, (now - PUSH_RECORD_RETENTION_MS,)),
        )

    async def push_shop(self, checkout_request_id: str) -> str | None:
        row = await self._one(BrokerSql.PUSH_SHOP, (checkout_request_id,))
        return None if row is None else str(row[0])

    async def push_wait(self, shop: PlatformShop, now: int) -> float:
        row = await self._one(BrokerSql.BUCKET, (shop.shop_id,))
        state = None if row is None else (float(row[0]), int(row[1]))
        return bucket_after(state, shop.pushes_per_minute, now, take=False)[1]

    async def load_token(self, cache_key: str) -> StoredToken | None:
        row = await self._one(BrokerSql.CACHED_GRANT, (cache_key,))
        return None if row is None else BrokerSql.stored_token(cache_key, row)

    async def save_token(self, token: StoredToken) -> None:
        await self._write((BrokerSql.SAVE_GRANT, BrokerSql.token_params(token)))


def describe_platform(record: PlatformRecord | None, account: PlatformAccount | None) -> Any:
    """What `platform show` prints: the set-up with each credential masked to its last four."""
    if record is None or account is None:
        return {"configured": False}
    creds = account.merchant.credentials
    values = {
        "consumer_key": creds.consumer_key.get_secret_value(),
        "consumer_secret": creds.consumer_secret.get_secret_value(),
        "passkey": account.merchant.passkey.get_secret_value(),
    }
    return {
        "configured": True,
        "shortcode": record.shortcode,
        "daraja_url": record.daraja_url,
        "credentials": {name: mask(value) for name, value in values.items()},
        "updated_at": record.updated_at,
    }


def mask(value: str) -> str:
    """`****` and the last four characters, or only `****` for a short value."""
    return "****" + value[-4:] if len(value) >= 12 else "****"
