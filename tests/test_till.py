"""open_till, the composition root: a real data folder (SQLite, keyring) opened into one Till,
built in order, with nothing set on a running part afterwards; and a till that cannot open
says why and leaves nothing behind. Daraja and the relay are closed loopback ports here: no
request is made while the till is only opened and closed (no reconciler, no probe)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import Settings
from smartduka_tui.connectivity import ObservedGateway, Reachability
from smartduka_tui.demo_shop import ensure_keyring, new_till_folder
from smartduka_tui.model import ShopType
from smartduka_tui.payments.gateway import DirectGateway
from smartduka_tui.relay_client import RelayShopReceipts
from smartduka_tui.store.records import Enrolment, ShopConfig, ShopSecrets
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import database_path, open_till_store
from smartduka_tui.till import TillNotReady, open_till

CLOSED = "http://127.0.0.1:9"


async def shop_folder(data_dir: Path) -> None:
    await new_till_folder(
        data_dir,
        ShopConfig(
            id="rootshop",
            name="Root Duka",
            mpesa_type=ShopType.PAYBILL,
            account_prefix="RT",
            business_shortcode="600111",
        ),
        ShopSecrets(
            consumer_key=Secret("k" * 24),
            consumer_secret=Secret("s" * 24),
            passkey=Secret("p" * 64),
        ),
        Enrolment(
            shop_id="rootshop",
            till_id="till1",
            relay_url=CLOSED,
            till_key=Secret("t" * 43),
            callback_kid="k1",
            callback_secret=Secret("c" * 43),
        ),
    )


def dump(data_dir: Path) -> str:
    """The till database's content as SQL (its bytes change on every open: SQLite's counter)."""
    with contextlib.closing(sqlite3.connect(database_path(data_dir))) as db:
        return "\n".join(db.iterdump())


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, daraja={"base_url": CLOSED})


async def test_the_till_is_built_once_with_its_parts_wired_at_construction(
    tmp_path: Path,
) -> None:
    await shop_folder(tmp_path / "till")
    clock = ManualClock()
    async with open_till(
        settings_for(tmp_path / "till"), clock=clock, run_reconciler=False, probe_daraja=False
    ) as till:
        gateway = till.engine.gateway
        assert isinstance(gateway, ObservedGateway), "observed from the engine's first call"
        assert gateway.inner is till.daraja and isinstance(till.daraja, DirectGateway)
        assert till.relay is not None and till.receipt_checks is not None
        assert till.relay.results == till.receipt_checks.accept_result
        assert till.c2b is not None and till.c2b.offers_qr
        assert till.link.probe is None
        assert till.connection.current().relay is not Reachability.NOT_USED
        assert till.sales is till.engine.sales
        assert (till.engine.shop_id, till.engine.till_id, till.clock) == (
            "rootshop",
            "till1",
            clock,
        )
        # Pull Transactions finds the shop's own gateway beneath the observer.
        pull = till.statement_pull()
        assert pull is not None and pull.shortcode == "600111"
        manager = till.manager_tools()
        assert till.manager_tools() is manager, "built once, on first use"
        # One receipt index for the whole till: the pull, the receipt checks, the publisher
        # and the manager's pull all ask the same one.
        index = till.shop_receipts
        assert isinstance(index, RelayShopReceipts)
        assert till.link.receipts is not None and till.link.receipts.receipts is index
        assert pull.receipts is index and till.receipt_checks.receipts is index
        assert manager.shop_receipts is index
    # Closed on the way out: the data folder's lock is free again.
    async with open_till_store(tmp_path / "till") as store:
        assert await store.shops.list_ids() == ["rootshop"]


async def test_the_scheduled_pull_asks_the_tills_one_receipt_index(tmp_path: Path) -> None:
    await shop_folder(tmp_path / "till")
    settings = Settings(
        data_dir=tmp_path / "till",
        daraja={"base_url": CLOSED},
        pull={"nominated_number": "254708374149", "interval_s": 900},
    )
    async with open_till(
        settings, clock=ManualClock(), run_reconciler=False, probe_daraja=False
    ) as till:
        reconciler = till.engine._reconciler
        assert reconciler is not None and reconciler.pull_schedule is not None
        assert reconciler.pull_schedule.pull.receipts is till.shop_receipts
        assert isinstance(till.shop_receipts, RelayShopReceipts)


async def test_a_relay_url_that_means_none_leaves_out_the_feed_and_its_desks(
    tmp_path: Path,
) -> None:
    await shop_folder(tmp_path / "till")
    async with open_till(
        settings_for(tmp_path / "till"),
        clock=ManualClock(),
        run_reconciler=False,
        probe_daraja=False,
        no_relay_url=CLOSED,
    ) as till:
        assert till.relay is None and till.receipt_checks is None and till.c2b is None
        assert till.connection.current().relay is Reachability.NOT_USED
        # No relay at all: the pull asks no receipt index, as a till without one.
        assert till.shop_receipts is None and till.link.receipts is None
        pull = till.statement_pull()
        assert pull is not None and pull.receipts is None
    async with open_till(
        settings_for(tmp_path / "till"),
        clock=ManualClock(),
        run_reconciler=False,
        probe_daraja=False,
        read_feed=False,
    ) as till:
        assert till.relay is None and till.receipt_checks is None and till.c2b is None
        # The feed unread (`smartduka pull`), the relay is still there to ask about receipts,
        # and nothing publishes to it.
        assert isinstance(till.shop_receipts, RelayShopReceipts) and till.link.receipts is None
        pull = till.statement_pull()
        assert pull is not None and pull.receipts is till.shop_receipts


async def test_a_folder_without_a_keyring_is_not_ready_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "empty"
    data_dir.mkdir()
    with pytest.raises(TillNotReady) as refused:
        async with open_till(settings_for(data_dir), clock=ManualClock()):
            pytest.fail("an empty folder opened")
    assert refused.value.why == "no_keys"
    assert "key" in refused.value.message.lower()
    assert not database_path(data_dir).exists()


async def test_a_folder_without_a_shop_is_not_ready_and_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "noshop"
    ensure_keyring(data_dir)
    async with open_till_store(data_dir):
        pass  # an initialised, empty store
    before = dump(data_dir)
    with pytest.raises(TillNotReady) as refused:
        async with open_till(settings_for(data_dir), clock=ManualClock()):
            pytest.fail("a folder without a shop opened")
    assert refused.value.why == "no_shop"
    assert refused.value.message == (
        "No shop is chosen: set shop_id in the settings (SMARTDUKA_SHOP_ID); add one first."
    )
    assert dump(data_dir) == before
    # Nothing is left holding the folder.
    async with open_till_store(data_dir) as store:
        assert await store.shops.list_ids() == []


async def test_a_relay_url_the_mode_refuses_is_a_bad_setting_and_changes_nothing(
    tmp_path: Path,
) -> None:
    await shop_folder(tmp_path / "till")
    before = dump(tmp_path / "till")
    production = Settings(
        data_dir=tmp_path / "till", mode="production", daraja={"base_url": "https://daraja.example"}
    )
    with pytest.raises(TillNotReady) as refused:
        async with open_till(production, clock=ManualClock(), probe_daraja=False):
            pytest.fail("a till with a plain-http relay opened in production mode")
    assert refused.value.why == "bad_setting"
    assert refused.value.message == (
        "relay_url: must be an https:// URL in production mode: over http the keys it is sent "
        f"travel in the clear (the till's enrolled relay URL is {CLOSED})"
    )
    assert dump(tmp_path / "till") == before
