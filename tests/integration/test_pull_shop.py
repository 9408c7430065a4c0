"""Two tills of one shop on the real simulator and the real relay (a uvicorn process): till B
takes an STK payment, its receipt reaches the shop's receipt index on its own, and till A's
pull counts it as known at another till instead of money without a sale; a receipt code B's
sale holds is refused at A, naming B's till and sale, and changes nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import AttemptId, PaymentView
from smartduka_tui.payments.machine import Cause, Evidence
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.payments.shop_receipts import ReceiptHolder, ShopReceipts
from smartduka_tui.payments.statement import ReceiptRefusal, statement_service
from smartduka_tui.relay_client import RelayShopReceipts
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.store import database_path
from smartduka_tui.till import Till as OpenTill
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle, Till, eventually, make_till, own_shortcode
from tests.integration.support import unique_name as named
from tests.integration.test_verify_receipt import counter

OWNER = "254708374149"
# Nothing listens here: a relay that is down.
DOWN = "http://127.0.0.1:9"


async def shop_of_two(tmp_path: Path, relay: RelayHandle, sim: SimulatorControl) -> list[Till]:
    """Tills A and B of one shop with its own paybill, each enrolled at the relay."""
    shortcode, creds = await own_shortcode(sim, callback_delay_s=0.1)
    shop = await relay.enrol("shop", "add", named("Two tills "))
    second = await relay.enrol("till", "add", shop["shop_id"])
    return [
        await make_till(
            tmp_path / name, sim.base_url, enrolment, prefix="TWO", shortcode=shortcode,
            creds=creds,
        )
        for name, enrolment in (("a", shop), ("b", second))
    ]  # fmt: skip


@asynccontextmanager
async def open_till(till: Till, clock: ManualClock) -> AsyncIterator[OpenTill]:
    """The till opened with its relay link (feed, receipt publisher) running."""
    async with till.opened(
        clock=clock, pull={"nominated_number": OWNER, "interval_s": 0}
    ) as opened:
        assert opened.link.relay is not None and opened.link.receipts is not None
        yield opened


async def paid_by_stk(engine: PaymentEngine, sale: str, amount: int) -> PaymentView:
    view = await engine.start_payment(sale, amount, unique_phone())

    async def paid() -> PaymentView | None:
        now = await engine.get(view.attempt_id)
        return now if now.state is AttemptState.COMPLETED and now.receipt else None

    done = await eventually(paid)
    assert done is not None, "the callback never paid the sale"
    return done


def money_state(till: Till) -> list[tuple[Any, ...]]:
    """Every attempt's state, receipt and flags: what a refused receipt may not change."""
    with sqlite3.connect(database_path(till.data_dir)) as conn:
        return conn.execute(
            "SELECT id, state, receipt_number, flags FROM attempts ORDER BY id"
        ).fetchall()


def held_at_relay(relay: RelayHandle, shop_id: str, receipt: str) -> dict[str, str] | None:
    rows = relay.rows("SELECT value FROM meta WHERE key = ?", f"receipt/{shop_id}/{receipt}")
    return json.loads(rows[0][0]) if rows else None


async def test_a_pull_at_till_a_knows_till_bs_stk_payment(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till_a, till_b = await shop_of_two(tmp_path, relay, sim)
    clock = ManualClock((await sim.clock()).now)
    async with open_till(till_b, clock) as opened_b, open_till(till_a, clock) as opened_a:
        engine_b = opened_b.engine
        paid = await paid_by_stk(engine_b, "B1", 175)
        assert paid.receipt is not None
        receipt = paid.receipt

        async def published() -> dict[str, str] | None:
            return held_at_relay(relay, till_b.shop_id, receipt)

        assert await eventually(published) == {"till_id": till_b.till_id, "sale_ref": "B1"}
        stray = await sim.pay_till(till_a.shortcode or "", unique_phone(), 176)
        pull = opened_a.statement_pull()
        assert pull is not None
        report = await pull.pull()
        assert (report.rows, report.known_elsewhere, report.money_without_sale) == (2, 1, 1)
        assert report.shop_check is None
        problems = await till_a.problems()
        assert [p.detail["receipt"] for p in problems] == [stray.trans_id]


async def test_a_receipt_till_bs_sale_holds_is_refused_at_till_a(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till_a, till_b = await shop_of_two(tmp_path, relay, sim)
    clock = ManualClock((await sim.clock()).now)
    async with open_till(till_b, clock) as opened_b, open_till(till_a, clock) as opened_a:
        engine_b, engine_a = opened_b.engine, opened_a.engine
        paid = await paid_by_stk(engine_b, "B2", 180)
        assert paid.receipt is not None
        receipt = paid.receipt

        async def published() -> dict[str, str] | None:
            return held_at_relay(relay, till_b.shop_id, receipt)

        assert await eventually(published)
        phone = unique_phone()
        await sim.set_phone_scenario(phone, result_code=1032)
        failed = await engine_a.start_payment("A2", 180, phone)

        async def is_failed() -> bool:
            return (await engine_a.get(failed.attempt_id)).state is AttemptState.FAILED

        assert await eventually(is_failed)
        before = money_state(till_a)
        service = statement_service(engine_a, opened_a.shop_receipts)
        try:
            verdict = await service.verify_receipt(receipt.lower(), "A2")
        finally:
            await service.aclose()
        assert not verdict.accepted
        assert verdict.refusal is ReceiptRefusal.ALREADY_USED
        assert verdict.message == (
            f"Receipt {receipt} is already used for sale B2 at till {till_b.till_id}. "
            "Nothing changed."
        )
        assert money_state(till_a) == before
        assert (await engine_a.get(failed.attempt_id)).state is AttemptState.FAILED


async def test_an_accepted_receipt_is_claimed_for_its_sale_at_the_relay(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        await c.failed_sale(sim, "0051", 640)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 640)
        verdict = await c.service.verify_receipt(paid.trans_id, "0051")
        assert verdict.accepted, verdict
        assert held_at_relay(relay, c.till.shop_id, paid.trans_id) == {
            "till_id": c.till.till_id,
            "sale_ref": "0051",
        }


async def test_a_receipt_the_shop_cannot_be_asked_about_is_refused_and_changes_nothing(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        attempt_id = await c.failed_sale(sim, "0052", 650)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 650)
        # M-Pesa's answer comes through the till's relay; only the receipt index is down.
        c.service.receipts = RelayShopReceipts(DOWN, str(c.till.enrolment["till_key"]))
        before = c.money_state()
        verdict = await c.service.verify_receipt(paid.trans_id, "0052")
        assert not verdict.accepted
        assert verdict.refusal is ReceiptRefusal.SHOP_UNCHECKED
        assert verdict.message.startswith(
            f"The shop's other tills could not be asked whether a sale there holds receipt "
            f"{paid.trans_id} (the relay is unreachable"
        )
        assert verdict.message.endswith("Nothing changed: try again in a moment.")
        assert c.money_state() == before
        assert (await c.engine.get(attempt_id)).state is AttemptState.FAILED
        assert held_at_relay(relay, c.till.shop_id, paid.trans_id) is None


class SettledMeanwhile:
    """The till's real receipt index, except that while the claim is on its way a manager
    settles the sale with another receipt, so the engine then declines the one claimed."""

    def __init__(self, inner: ShopReceipts, engine: PaymentEngine, attempt_id: AttemptId):
        self.inner = inner
        self.engine = engine
        self.attempt_id = attempt_id
        self.released: list[tuple[str, str]] = []

    async def register(self, held: Sequence[tuple[str, str]]) -> list[ReceiptHolder]:
        conflicts = await self.inner.register(held)
        attempt = await self.engine.store.attempts.get(self.engine.shop_id, int(self.attempt_id))
        assert attempt is not None
        await self.engine.apply_evidence(
            attempt, Evidence.MANAGER_PAID, Cause.MANAGER, receipt_number="QMANAGER01"
        )
        return conflicts

    async def known(self, receipts: Sequence[str]) -> dict[str, ReceiptHolder]:
        return await self.inner.known(receipts)

    async def release(self, receipt: str, sale_ref: str) -> bool:
        self.released.append((receipt, sale_ref))
        return await self.inner.release(receipt, sale_ref)


async def test_a_receipt_the_engine_declined_after_its_grant_is_released_for_another_sale(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        first = await c.failed_sale(sim, "0053", 660)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 660)
        index = c.service.receipts
        assert index is not None
        settled = SettledMeanwhile(index, c.engine, first)
        c.service.receipts = settled
        verdict = await c.service.verify_receipt(paid.trans_id, "0053")
        assert not verdict.accepted
        assert verdict.refusal is ReceiptRefusal.SALE_NOT_OPEN
        assert verdict.message.startswith("Sale 0053 could not take the receipt now (")
        view = await c.engine.get(first)
        assert (view.state, view.receipt) == (AttemptState.COMPLETED, "QMANAGER01")
        # The grant was given back: the relay holds the receipt for no sale.
        assert settled.released == [(paid.trans_id, "0053")]
        assert held_at_relay(relay, c.till.shop_id, paid.trans_id) is None
        c.service.receipts = index
        second = await c.failed_sale(sim, "0054", 660)
        taken = await c.service.verify_receipt(paid.trans_id, "0054")
        assert taken.accepted, taken
        assert (await c.engine.get(second)).receipt == paid.trans_id
        assert held_at_relay(relay, c.till.shop_id, paid.trans_id) == {
            "till_id": c.till.till_id,
            "sale_ref": "0054",
        }


class WriteFailsMeanwhile:
    """The till's real receipt index, except that while the claim is on its way the till's
    database starts refusing changes to attempts (a trigger, as a failing disk would)."""

    def __init__(self, inner: ShopReceipts, till: Till) -> None:
        self.inner = inner
        self.till = till

    async def register(self, held: Sequence[tuple[str, str]]) -> list[ReceiptHolder]:
        conflicts = await self.inner.register(held)
        with sqlite3.connect(database_path(self.till.data_dir)) as conn:
            conn.execute(
                "CREATE TRIGGER no_writes BEFORE UPDATE ON attempts "
                "BEGIN SELECT RAISE(ABORT, 'the disk refused the write'); END"
            )
        return conflicts

    async def known(self, receipts: Sequence[str]) -> dict[str, ReceiptHolder]:
        return await self.inner.known(receipts)

    async def release(self, receipt: str, sale_ref: str) -> bool:
        return await self.inner.release(receipt, sale_ref)


async def test_a_receipt_whose_write_failed_after_its_grant_is_released(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        attempt_id = await c.failed_sale(sim, "0055", 670)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 670)
        index = c.service.receipts
        assert index is not None
        before = c.money_state()
        c.service.receipts = WriteFailsMeanwhile(index, c.till)
        with pytest.raises(Exception, match="the disk refused the write"):
            await c.service.verify_receipt(paid.trans_id, "0055")
        assert c.money_state() == before
        assert held_at_relay(relay, c.till.shop_id, paid.trans_id) is None
        with sqlite3.connect(database_path(c.till.data_dir)) as conn:
            conn.execute("DROP TRIGGER no_writes")
        c.service.receipts = index
        taken = await c.service.verify_receipt(paid.trans_id, "0055")
        assert taken.accepted, taken
        assert (await c.engine.get(attempt_id)).receipt == paid.trans_id
