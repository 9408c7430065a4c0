"""Receipt test fixtures: the manager tests' fixed story in a real data folder, the
`smartduka` runner in this process, and the stored expected receipts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.payments.c2b import receive
from smartduka_tui.receipts import Receipt, ReceiptLine, Tender, TenderKind
from smartduka_tui.store import Store, create_keyring, database_path, keyring_path
from tests.manager.conftest import FIXED_SECRETS, SHOP, START, TILL, add_shop, tell_story
from tests.support.cli import Runner, in_process, private_data_dir
from tests.support.daraja import PAYLOADS

EXPECTED = Path(__file__).resolve().parent.parent / "data" / "receipts"

# The story's paid sale (tests/manager/conftest.py): S1001, KES 250, pushed 1 s after 06:00 UTC
# and paid 18 s later.
PAID_SALE = Receipt(
    shop_name="Mama Duka",
    sale_ref="S1001",
    till_id="till1",
    cashier=None,
    paid_at=datetime(2026, 1, 15, 6, 0, 19, tzinfo=UTC),
    lines=(ReceiptLine("Sale total", 1, 250),),
    tenders=(Tender(TenderKind.MPESA_STK, 250, "SDK1A2B3C4"),),
)


DIRECT_SALE = "S2001"
"""A sale paid by a direct (C2B) payment: the Daraja sample's KES 150, TransID TKQ9ZZ1A2B."""


async def paid_directly(store: Store) -> None:
    """The Daraja sample confirmation kept as the relay's feed keeps it, and attached to
    DIRECT_SALE by this till as the checkout's F6 does once the relay grants the claim."""
    body = (PAYLOADS / "c2b_confirmation_v2_masked_msisdn.json").read_bytes()
    record, _ = await receive(store, SHOP, body)
    async with store.write() as tx:
        await store.c2b.attach(tx, SHOP, record.trans_id, DIRECT_SALE, TILL)


def expected(name: str) -> bytes:
    return (EXPECTED / name).read_bytes()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_data_dir(tmp_path, monkeypatch)


@pytest.fixture
def smartduka(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    return in_process(capsys, monkeypatch)


async def _seed(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    keyring = create_keyring(keyring_path(data_dir))
    store = await Store.open(database_path(data_dir), clock=ManualClock(START), keyring=keyring)
    try:
        await add_shop(store, FIXED_SECRETS)
        await tell_story(store, store.db.clock)  # type: ignore[arg-type]
        await paid_directly(store)
    finally:
        await store.close()


@pytest.fixture
def story(data_dir: Path) -> Path:
    """The fixed story written to `data_dir`; returns the folder."""
    asyncio.run(_seed(data_dir))
    return data_dir


def audit_actions(data_dir: Path) -> list[str]:
    async def read() -> list[str]:
        store = await Store.open(database_path(data_dir))
        try:
            entries = await store.audit.search(SHOP, include_system=True, limit=1000)
        finally:
            await store.close()
        return [entry.action for entry in reversed(entries)]

    return asyncio.run(read())
