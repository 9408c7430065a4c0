"""Pull Transactions shop-wide: a till's pull asks the shop's receipt index (the real relay,
in-process) before it calls a payment "money without a sale", publishes what its own sales
hold, and resolves its open problems that another till's sale holds; a relay that is down
leaves the problems recorded as before, saying the shop-wide check could not be made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from smartduka_tui.model import Actor, AttemptState, AuditAction
from smartduka_tui.mpesa.enrolment import Enrolment
from smartduka_tui.payments.pull import StatementPull, statement_pull_for
from smartduka_tui.relay_client import ReceiptPublisher, RelayShopReceipts
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.relay.conftest import Harness, relay_settings, running

# Nothing listens here: a relay that is down.
DOWN = "http://127.0.0.1:9"


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(relay_settings(tmp_path)) as harness:
        yield harness


def index(relay: Harness, till: Enrolment) -> RelayShopReceipts:
    return RelayShopReceipts(
        "http://relay.test",
        till.till_key,
        transport=httpx.ASGITransport(app=relay.app, client=("10.9.8.7", 40000)),
    )


def pull_with(h: TillHarness, receipts: RelayShopReceipts) -> StatementPull:
    pull = statement_pull_for(h.engine, receipts)
    assert pull is not None
    return pull


async def money_problems(h: TillHarness, *, include_resolved: bool = False) -> list[str]:
    problems = await h.store.problems.list(h.shop_id, include_resolved=include_resolved)
    return sorted(
        str(p.detail["receipt"])
        for p in problems
        if p.detail.get("pattern") == "money_without_sale"
    )


async def test_a_payment_another_till_holds_is_known_elsewhere_not_money_without_a_sale(
    pull_till: TillHarness, relay: Harness
) -> None:
    h = pull_till  # till A of the shop
    enrolled_a = await relay.shop()
    till_b = await relay.till(enrolled_a.shop_id)
    theirs = await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    stray = await h.sim.pay_till(h.shortcode, unique_phone(), 301)
    assert await index(relay, till_b).register([(theirs.trans_id, "B-17")]) == []
    report = await pull_with(h, index(relay, enrolled_a)).pull()
    assert (report.rows, report.known_elsewhere, report.money_without_sale) == (2, 1, 1)
    assert report.shop_check is None
    assert await money_problems(h) == [stray.trans_id]
    # The next pull asks again and finds nothing new either way.
    again = await pull_with(h, index(relay, enrolled_a)).pull()
    assert (again.known_elsewhere, again.money_without_sale) == (1, 0)


async def test_a_pull_publishes_what_this_tills_sales_hold(
    pull_till: TillHarness, relay: Harness
) -> None:
    h = pull_till  # till A of the shop
    enrolled_a = await relay.shop()
    till_b = await relay.till(enrolled_a.shop_id)
    view = await h.engine.start_payment("A5", 250, unique_phone())
    await h.advance_sim(5)
    paid = await h.view(view.attempt_id)
    assert paid.state is AttemptState.COMPLETED and paid.receipt is not None
    report = await pull_with(h, index(relay, enrolled_a)).pull()
    assert report.money_without_sale == 0 and report.shop_check is None
    held = await index(relay, till_b).known([paid.receipt])
    assert held[paid.receipt].till_id == enrolled_a.till_id
    assert held[paid.receipt].sale_ref == "A5"


async def test_relay_down_records_the_problem_and_the_next_pull_resolves_it(
    pull_till: TillHarness, relay: Harness
) -> None:
    h = pull_till  # till A of the shop
    enrolled_a = await relay.shop()
    till_b = await relay.till(enrolled_a.shop_id)
    theirs = await h.sim.pay_till(h.shortcode, unique_phone(), 320)
    assert await index(relay, till_b).register([(theirs.trans_id, "B-3")]) == []
    down = await pull_with(h, RelayShopReceipts(DOWN, enrolled_a.till_key)).pull()
    assert (down.money_without_sale, down.known_elsewhere) == (1, 0)
    assert down.shop_check is not None
    assert "shop-wide check could not be made" in down.shop_check
    assert await money_problems(h) == [theirs.trans_id]
    up = await pull_with(h, index(relay, enrolled_a)).pull()
    assert (up.money_without_sale, up.known_elsewhere, up.resolved_elsewhere) == (0, 1, 1)
    assert await money_problems(h) == []
    [resolved] = await h.store.problems.list(h.shop_id, include_resolved=True)
    assert resolved.resolved_at is not None
    assert resolved.resolution_note is not None
    assert f"sale B-3 at till {till_b.till_id}" in resolved.resolution_note
    entries = await h.store.audit.entries(h.shop_id, limit=1000)
    resolutions = [e for e in entries if e.action == AuditAction.PROBLEM_RESOLVED]
    assert [(e.actor, e.detail["problem_id"]) for e in resolutions] == [(Actor.SYSTEM, resolved.id)]


async def test_a_problem_no_other_till_holds_stays_open(
    pull_till: TillHarness, relay: Harness
) -> None:
    h = pull_till  # till A of the shop
    enrolled_a = await relay.shop()
    stray = await h.sim.pay_till(h.shortcode, unique_phone(), 330)
    first = await pull_with(h, index(relay, enrolled_a)).pull()
    assert (first.money_without_sale, first.known_elsewhere) == (1, 0)
    second = await pull_with(h, index(relay, enrolled_a)).pull()
    assert (second.resolved_elsewhere, second.known_elsewhere) == (0, 0)
    assert await money_problems(h) == [stray.trans_id]


async def test_the_publisher_keeps_receipts_while_the_relay_is_down_and_sends_them_later(
    pull_till: TillHarness, relay: Harness
) -> None:
    h = pull_till  # till A of the shop
    enrolled_a = await relay.shop()
    till_b = await relay.till(enrolled_a.shop_id)
    publisher = ReceiptPublisher(h.engine, RelayShopReceipts(DOWN, enrolled_a.till_key))
    try:
        view = await h.engine.start_payment("P7", 260, unique_phone())
        await h.advance_sim(5)
        paid = await h.view(view.attempt_id)
        # The payment is paid whatever the relay: publishing never stands in its way.
        assert paid.state is AttemptState.COMPLETED and paid.receipt is not None
        await publisher.flush()
        assert publisher.published == 0
        publisher.receipts = index(relay, enrolled_a)
        await publisher.flush()
        assert publisher.published == 1
        held = await index(relay, till_b).known([paid.receipt])
        assert (held[paid.receipt].till_id, held[paid.receipt].sale_ref) == (
            enrolled_a.till_id,
            "P7",
        )
    finally:
        await publisher.close()


class Unplugged(httpx.AsyncBaseTransport):
    """The relay in process behind a cable the test can pull: while `down`, every request
    fails to connect, as it does when the shop's internet is out."""

    def __init__(self, relay: Harness) -> None:
        self.inner = httpx.ASGITransport(app=relay.app, client=("10.9.8.7", 40000))
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("the shop's internet is out", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_release_the_relay_cannot_take_is_kept_and_sent_with_the_next_call(
    relay: Harness,
) -> None:
    enrolled_a = await relay.shop()
    till_b = await relay.till(enrolled_a.shop_id)
    cable = Unplugged(relay)
    mine = RelayShopReceipts("http://relay.test", enrolled_a.till_key, transport=cable)
    assert await mine.register([("TKQ8000001", "R-1"), ("TKQ8000002", "R-2")]) == []
    cable.down = True
    assert await mine.release("TKQ8000001", "R-1") is False
    assert await mine.release("TKQ8000002", "R-2") is False
    assert mine.unreleased == {"TKQ8000001": "R-1", "TKQ8000002": "R-2"}
    held = await index(relay, till_b).known(["TKQ8000001", "TKQ8000002"])
    assert sorted(held) == ["TKQ8000001", "TKQ8000002"]
    cable.down = False
    # Sale R-2 held its receipt again meanwhile: its older release must not take it away.
    assert await mine.register([("TKQ8000002", "R-2")]) == []
    assert mine.unreleased == {}
    held = await index(relay, till_b).known(["TKQ8000001", "TKQ8000002"])
    assert [(h.receipt, h.sale_ref) for h in held.values()] == [("TKQ8000002", "R-2")]


async def test_releasing_what_this_sale_does_not_hold_is_done_and_changes_nothing(
    relay: Harness,
) -> None:
    enrolled_a = await relay.shop()
    till_b = await relay.till(enrolled_a.shop_id)
    assert await index(relay, till_b).register([("TKQ8100001", "B-1")]) == []
    mine = index(relay, enrolled_a)
    # Another till's sale holds it (409) and no sale holds the other (404): nothing to keep.
    assert await mine.release("TKQ8100001", "A-1") is True
    assert await mine.release("TKQ8100002", "A-1") is True
    assert mine.unreleased == {}
    held = await mine.known(["TKQ8100001", "TKQ8100002"])
    assert [(h.receipt, h.till_id, h.sale_ref) for h in held.values()] == [
        ("TKQ8100001", till_b.till_id, "B-1")
    ]
