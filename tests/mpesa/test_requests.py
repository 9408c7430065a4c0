"""Request building: one clock read, paybill vs till, and every bad field refused by name."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import pytest
from pydantic import ValidationError

from smartduka_tui.clock import ManualClock
from smartduka_tui.mpesa import kenya_time
from smartduka_tui.mpesa.models import TransactionType
from smartduka_tui.mpesa.requests import (
    DarajaCredentials,
    InvalidRequestError,
    MerchantConfig,
    MerchantKind,
    build_stk_push,
    build_stk_query,
    kenya_timestamp,
    stk_password,
)
from tests.support.daraja import PAYLOADS

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
# Canary secrets: if any of these shows up in an error or a repr, a secret leaked.
KEY_CANARY = "CANARYKEY7f3a9"
SECRET_CANARY = "CANARYSECRET1b2c"
PASSKEY_CANARY = "CANARYPASSKEY55d0"
PAYLOAD_MOMENT = datetime(2026, 11, 26, 7, 30, 0, tzinfo=UTC)  # 10:30:00 in Nairobi
CALLBACK = "https://relay.example.com/mpesa/callback/shp_01/tx_01/sig"


class CountingClock(ManualClock):
    """A clock that moves 0.6 s each time `now()` is read, so two reads straddle a second."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        moment = super().now()
        self.advance(0.6)
        return moment


def credentials() -> DarajaCredentials:
    return DarajaCredentials(consumer_key=KEY_CANARY, consumer_secret=SECRET_CANARY)


def paybill(passkey: str = SANDBOX_PASSKEY) -> MerchantConfig:
    return MerchantConfig(
        kind=MerchantKind.PAYBILL,
        business_shortcode="174379",
        passkey=passkey,
        credentials=credentials(),
    )


def till() -> MerchantConfig:
    return MerchantConfig(
        kind=MerchantKind.TILL,
        business_shortcode="1850908",
        till_number="5501234",
        passkey=PASSKEY_CANARY,
        credentials=credentials(),
    )


def push_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "amount": 150,
        "phone": "254708374149",
        "callback_url": CALLBACK,
        "account_reference": "DUKA-000123",
        "transaction_desc": "Sale 000123",
    }
    args.update(overrides)
    return args


def test_kenya_timestamp_is_nairobi_time() -> None:
    assert kenya_timestamp(PAYLOAD_MOMENT) == "20261126103000"
    assert kenya_timestamp(datetime(2026, 12, 31, 21, 0, 1, tzinfo=UTC)) == "20270101000001"


def test_kenya_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        kenya_timestamp(datetime(2026, 1, 1, 12, 0))


def test_fixed_offset_fallback_without_zone_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_zone(name: str) -> Any:
        raise ZoneInfoNotFoundError(name)

    monkeypatch.setattr(kenya_time, "ZoneInfo", no_zone)
    zone = kenya_time._kenya_zone()
    assert zone.utcoffset(None) == timedelta(hours=3)
    assert PAYLOAD_MOMENT.astimezone(zone).strftime("%Y%m%d%H%M%S") == "20261126103000"


def test_password_matches_the_real_sandbox_sample() -> None:
    sample = json.loads((PAYLOADS / "stk_push_request_paybill.json").read_text())
    assert stk_password("174379", SANDBOX_PASSKEY, "20261126103000") == sample["Password"]


def test_paybill_push_is_exactly_the_sample_body() -> None:
    request = build_stk_push(paybill(), clock=ManualClock(PAYLOAD_MOMENT), **push_args())
    sample = json.loads((PAYLOADS / "stk_push_request_paybill.json").read_text())
    assert request.to_wire() == sample


def test_till_push_uses_store_number_and_till() -> None:
    request = build_stk_push(till(), clock=ManualClock(PAYLOAD_MOMENT), **push_args())
    body = request.to_wire()
    sample = json.loads((PAYLOADS / "stk_push_request_till.json").read_text())
    expected_password = base64.b64encode(f"1850908{PASSKEY_CANARY}20261126103000".encode()).decode()
    assert body == sample | {"Password": expected_password}
    assert request.transaction_type is TransactionType.BUY_GOODS


def test_password_and_timestamp_come_from_one_clock_read() -> None:
    clock = CountingClock(datetime(2026, 1, 15, 6, 59, 59, 500_000, tzinfo=UTC))
    request = build_stk_push(paybill(), clock=clock, **push_args())
    assert clock.reads == 1
    decoded = base64.b64decode(request.password.get_secret_value()).decode()
    assert decoded == f"174379{SANDBOX_PASSKEY}{request.timestamp}"
    query = build_stk_query(paybill(), clock=clock, checkout_request_id="ws_CO_1")
    assert clock.reads == 2
    decoded = base64.b64decode(query.password.get_secret_value()).decode()
    assert decoded == f"174379{SANDBOX_PASSKEY}{query.timestamp}"
    assert query.timestamp != request.timestamp  # a fresh Password for the query


@pytest.mark.parametrize("phone", ["0708 374 149", "+254-708-374-149", "254708374149"])
def test_phone_is_normalised_into_party_a_and_phone_number(phone: str) -> None:
    request = build_stk_push(paybill(), clock=ManualClock(), **push_args(phone=phone))
    assert request.party_a == request.phone_number == "254708374149"


@pytest.mark.parametrize("amount", [1, 250_000, Decimal("150"), Decimal("150.00")])
def test_whole_amounts_in_range_are_accepted(amount: int | Decimal) -> None:
    request = build_stk_push(paybill(), clock=ManualClock(), **push_args(amount=amount))
    assert request.amount == int(amount) and type(request.amount) is int


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", 0, "Amount: must be from KES 1 to KES 250,000, got 0"),
        ("amount", -5, "Amount: must be from KES 1 to KES 250,000, got -5"),
        ("amount", 250_001, "Amount: must be from KES 1 to KES 250,000, got 250,001"),
        ("amount", True, "Amount: must be a whole number of shillings"),
        ("amount", 150.0, "Amount: must be a whole number of shillings"),
        ("amount", "150", "Amount: must be a whole number of shillings"),
        ("amount", Decimal("150.50"), "Amount: must be whole shillings: M-Pesa takes no cents"),
        ("amount", Decimal("NaN"), "Amount: must be whole shillings"),
        ("amount", Decimal("1E+999999999"), "Amount: must be from KES 1 to KES 250,000"),
        ("phone", "0712 34", "PhoneNumber: too short: 5 digits after 0"),
        ("phone", "+1 555 123 4567", "PhoneNumber: not a Kenyan mobile number"),
        ("phone", 254712345678, "PhoneNumber: must be text"),
        (
            "account_reference",
            "DUKA-00012345",
            "AccountReference: must be at most 12 characters, got 13",
        ),
        ("account_reference", "", "AccountReference: must not be empty"),
        ("account_reference", " DUKA1", "AccountReference: must not start or end with spaces"),
        ("account_reference", "DUKA#1&2", "AccountReference: may hold only letters, digits"),
        ("account_reference", 123, "AccountReference: must be text"),
        (
            "transaction_desc",
            "Sale 0001234567",
            "TransactionDesc: must be at most 13 characters, got 15",
        ),
        ("transaction_desc", "Sale\n1", "TransactionDesc: may hold only"),
        ("callback_url", "https://relay.example.com/a b", "CallBackURL: must not contain spaces"),
        (
            "callback_url",
            "ftp://relay.example.com/hooks/x",
            "CallBackURL: must be an http:// or https://",
        ),
        (
            "callback_url",
            "relay.example.com/hooks/x",
            "CallBackURL: must be an http:// or https://",
        ),
        ("callback_url", "http://[::1/hooks", "CallBackURL: is not a valid URL"),
        ("callback_url", "https://x.example/" + "a" * 1100, "CallBackURL: must be at most 1024"),
    ],
)
def test_bad_fields_are_refused_by_name_and_nothing_is_read(
    field: str, value: object, message: str
) -> None:
    clock = CountingClock(PAYLOAD_MOMENT)
    with pytest.raises(InvalidRequestError) as caught:
        build_stk_push(paybill(), clock=clock, **push_args(**{field: value}))
    assert str(caught.value).startswith(message)
    assert caught.value.field == message.split(":")[0]
    assert clock.reads == 0  # refused before anything happened


def test_twelve_character_reference_and_thirteen_character_desc_fit() -> None:
    request = build_stk_push(
        paybill(),
        clock=ManualClock(),
        **push_args(account_reference="DUKA-0001234", transaction_desc="Sale 00012345"),
    )
    assert (request.account_reference, request.transaction_desc) == (
        "DUKA-0001234",
        "Sale 00012345",
    )


def test_callback_url_never_appears_in_errors() -> None:
    secret_path = "https://relay.example.com/hooks/stk/shop/till/ref/k1.SECRETTAGSECRETTAG1234 x"
    with pytest.raises(InvalidRequestError) as caught:
        build_stk_push(paybill(), clock=ManualClock(), **push_args(callback_url=secret_path))
    assert "SECRETTAG" not in str(caught.value) and "SECRETTAG" not in repr(caught.value)


@pytest.mark.parametrize("checkout", ["", "   ", "ws CO 1", "x" * 129])
def test_bad_checkout_request_ids_are_refused(checkout: str) -> None:
    with pytest.raises(InvalidRequestError, match="CheckoutRequestID"):
        build_stk_query(paybill(), clock=ManualClock(), checkout_request_id=checkout)


def test_secrets_never_show_in_reprs() -> None:
    merchant = till()
    request = build_stk_push(merchant, clock=ManualClock(), **push_args())
    shown = " ".join(
        [repr(merchant), str(merchant), repr(merchant.credentials), repr(request), str(request)]
    )
    password = request.password.get_secret_value()
    for secret in (KEY_CANARY, SECRET_CANARY, PASSKEY_CANARY, password, CALLBACK):
        assert secret not in shown
    basic = merchant.credentials.basic_authorization()
    assert basic.split()[1] not in shown


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "till", "till_number": None}, "a Buy Goods till needs its till number"),
        ({"kind": "paybill", "till_number": "5501234"}, "a paybill has no till number"),
        ({"business_shortcode": "17a379"}, "must be 5 to 7 digits"),
        ({"business_shortcode": "1234"}, "must be 5 to 7 digits"),
        ({"till_number": "12345678", "kind": "till"}, "must be 5 to 7 digits"),
        ({"passkey": f"{PASSKEY_CANARY} with space"}, "must be printable text without spaces"),
        ({"passkey": ""}, "passkey\n  Value error, must not be empty"),
        ({"kind": "shop"}, "kind"),
    ],
)
def test_bad_merchant_configs_are_refused_without_echoing_secrets(
    fields: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {
        "kind": "paybill",
        "business_shortcode": "174379",
        "passkey": PASSKEY_CANARY,
        "credentials": credentials(),
    }
    with pytest.raises(ValidationError, match=message) as caught:
        MerchantConfig(**(base | fields))
    assert PASSKEY_CANARY not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "secret", "message"),
    [
        (f"{KEY_CANARY}:x", SECRET_CANARY, "must not contain ':'"),
        (KEY_CANARY, f"{SECRET_CANARY} ", "must be printable text without spaces"),
        ("", SECRET_CANARY, "must not be empty"),
        (KEY_CANARY, "x" * 300, "must be at most 256 characters"),
    ],
)
def test_bad_credentials_are_refused_without_echoing_them(
    key: str, secret: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        DarajaCredentials(consumer_key=key, consumer_secret=secret)
    assert KEY_CANARY not in str(caught.value) and SECRET_CANARY not in str(caught.value)


def test_credential_cache_key_is_stable_distinct_and_not_the_secret() -> None:
    one = credentials()
    same = credentials()
    other = DarajaCredentials(consumer_key=KEY_CANARY, consumer_secret=SECRET_CANARY + "2")
    assert one.cache_key == same.cache_key != other.cache_key
    assert SECRET_CANARY not in one.cache_key and KEY_CANARY not in one.cache_key
    assert len(one.cache_key) == 64


def test_basic_header_is_standard_basic_auth() -> None:
    header = credentials().basic_authorization()
    assert header == "Basic " + base64.b64encode(f"{KEY_CANARY}:{SECRET_CANARY}".encode()).decode()
