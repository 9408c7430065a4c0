"""Pull Transactions in the reconciler, on the real simulator: registration once, paging,
idempotence by transactionId, receipts filled through the evidence seam, money without a
sale, sales paid twice, the last-pull status, the schedule; and every bad answer refused with
words and no change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from smartduka_tui.manager.lists import record_row
from smartduka_tui.model import AttemptFlag, AttemptState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.c2b import receive
from smartduka_tui.payments.pull import (
    PullFailed,
    PullInputError,
    PullProgress,
    StatementPull,
    statement_pull_for,
)
from tests.conftest import unique_phone
from tests.payments.harness import OWNER, TillHarness, sim_now_clock, till
from tests.support.processes import ServerProcess

PULL_QUERY = "/pulltransactions/v1/query"


def pull_of(h: TillHarness) -> StatementPull:
    pull = statement_pull_for(h.engine)
    assert pull is not None
    return pull


async def snapshot(h: TillHarness) -> tuple[Any, ...]:
    """Everything a refused pull must leave as it was."""
    attempts = await h.store.db.fetchall(
        "SELECT id, state, receipt_number, flags FROM attempts WHERE shop_id = ? ORDER BY id",
        (h.shop_id,),
    )
    problems = await h.store.problems.list(h.shop_id, include_resolved=True, limit=1000)
    return (
        await h.store.pull.count(h.shop_id),
        [tuple(row) for row in attempts],
        [p.id for p in problems],
    )


async def pulls_asked(h: TillHarness) -> int:
    return sum(1 for r in await h.sim.requests(shortcode=h.shortcode) if r.path == PULL_QUERY)


def c2b_body(h: TillHarness, trans_id: str, amount: int) -> bytes:
    """The confirmation the relay's feed would bring for a direct payment."""
    return json.dumps(
        {
            "TransactionType": "Pay Bill",
            "TransID": trans_id,
            "TransTime": h.clock.now().astimezone(KENYA_TZ).strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount}.00",
            "BusinessShortCode": h.shortcode,
            "BillRefNumber": "",
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": "2547 ***** 000",
            "FirstName": "ANN",
        }
    ).encode()


async def paid_without_callback(h: TillHarness, sale_ref: str, amount: int) -> str:
    """An STK payment whose callback never comes; the query says paid (receipt pending)."""
    _, view = await h.waiting(sale_ref, amount)
    await h.advance_sim(5)
    h.clock.advance(5)
    assert (await h.engine.check_now(view.attempt_id)).state is AttemptState.COMPLETED
    return view.attempt_id


# ---------------------------------------------------------------- the happy paths


async def test_a_pull_registers_once_pages_and_is_idempotent(pull_till: TillHarness) -> None:
    h = pull_till
    paid = [await h.sim.pay_till(h.shortcode, unique_phone(), 100 + i) for i in range(5)]
    seen: list[PullProgress] = []
    first = await pull_of(h).pull(progress=seen.append)
    assert (first.rows, first.new_rows, first.money_without_sale) == (5, 5, 5)
    # Two rows a page (PAGE_SIZE): three pages, each reported as it arrives.
    assert seen == [PullProgress(1, 2), PullProgress(2, 4), PullProgress(3, 5)]
    again = await pull_of(h).pull()
    assert (again.rows, again.new_rows, again.problems_found) == (5, 0, 0)
    registers = [r for r in await h.sim.requests(shortcode=h.shortcode) if "register" in r.path]
    assert len(registers) == 1
    problems = await h.store.problems.list(h.shop_id)
    assert sorted(p.detail["receipt"] for p in problems) == sorted(p.trans_id for p in paid)
    status = await pull_of(h).status()
    assert status is not None and status.ok and status.rows_seen == 5 and status.new_rows == 0


async def test_a_query_paid_attempt_gets_its_receipt_from_the_pull(
    pull_till: TillHarness,
) -> None:
    h = pull_till
    attempt_id = await paid_without_callback(h, "R1", 120)
    before = await h.view(attempt_id)
    assert before.receipt is None
    report = await pull_of(h).pull()
    assert (report.receipts_filled, report.money_without_sale) == (1, 0)
    [truth] = [t for t in await h.sim.transactions(shortcode=h.shortcode)]
    after = await h.store.attempts.get(h.shop_id, int(attempt_id))
    assert after is not None and after.state is AttemptState.COMPLETED
    assert after.receipt_number == truth.receipt
    assert not after.flags & AttemptFlag.RECEIPT_PENDING
    newest = (await h.store.audit.entries(h.shop_id, attempt_id=int(attempt_id)))[0]
    assert newest.action == "attempt.updated"
    assert (newest.detail["evidence"], newest.detail["source"]) == ("statement_matched", "pull")


async def test_a_pull_writes_its_fills_and_findings_in_batches_one_audit_entry_each(
    pull_till: TillHarness,
) -> None:
    """Receipts filled and problems recorded in one batch each: every attempt and problem
    has its own entry, in the chain as `transition` and `record` write them, and the chain
    still verifies (the batch continues it, entry by entry)."""
    h = pull_till
    attempts = [await paid_without_callback(h, f"B{n}", 140 + n) for n in range(3)]
    strangers = [await h.sim.pay_till(h.shortcode, unique_phone(), 700 + n) for n in range(3)]
    before = (await h.store.audit.entries(h.shop_id, limit=1))[0].id
    report = await pull_of(h).pull()
    assert (report.receipts_filled, report.money_without_sale) == (3, 3)
    truth = {t.receipt for t in await h.sim.transactions(shortcode=h.shortcode)}
    for attempt_id in attempts:
        after = await h.store.attempts.get(h.shop_id, int(attempt_id))
        assert after is not None and after.receipt_number in truth
        assert not after.flags & AttemptFlag.RECEIPT_PENDING
        [filled] = [
            e
            for e in await h.store.audit.entries(h.shop_id, attempt_id=int(attempt_id))
            if e.id > before
        ]
        assert filled.action == "attempt.updated"
        assert {k: filled.detail[k] for k in ("from", "to", "fields", "flags_cleared")} == {
            "from": "COMPLETED",
            "to": "COMPLETED",
            "fields": {"receipt_number": after.receipt_number},
            "flags_cleared": ["RECEIPT_PENDING"],
        }
    problems = await h.store.problems.list(h.shop_id)
    assert sorted(p.detail["receipt"] for p in problems) == sorted(s.trans_id for s in strangers)
    recorded = [
        e.detail["problem_id"]
        for e in await h.store.audit.entries(h.shop_id, limit=100)
        if e.id > before and e.action == "problem.recorded"
    ]
    assert sorted(recorded) == sorted(p.id for p in problems)
    chain = await h.store.audit.verify_chain()
    assert chain.intact, chain.reason
    # Each finding once: the same 48 hours again record nothing new.
    assert (await pull_of(h).pull()).problems_found == 0
    assert len(await h.store.problems.list(h.shop_id)) == 3


async def test_an_expired_attempt_the_statement_shows_paid_completes_late(
    pull_till: TillHarness,
) -> None:
    h = pull_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, drop_callback=True, query_anomaly="stuck_pending")
    view = await h.engine.start_payment("L1", 130, phone)
    await h.advance_sim(5)
    h.clock.advance(h.settings.timings.attempt_expiry_s + 1)
    await h.reconcile()
    assert (await h.view(view.attempt_id)).state is AttemptState.EXPIRED
    report = await pull_of(h).pull()
    assert report.receipts_filled == 1
    after = await h.store.attempts.get(h.shop_id, int(view.attempt_id))
    assert (
        after is not None
        and after.state is AttemptState.COMPLETED
        and after.flags & AttemptFlag.LATE
    )
    assert (await h.transitions(view.attempt_id))[-1][:2] == ("EXPIRED", "COMPLETED")


async def test_money_without_a_sale_is_a_problem_with_words(pull_till: TillHarness) -> None:
    h = pull_till
    phone = unique_phone()
    paid = await h.sim.pay_till(h.shortcode, phone, 450)
    await pull_of(h).pull()
    [problem] = await h.store.problems.list(h.shop_id)
    row = record_row(problem)
    assert row.receipt == paid.trans_id and row.amount == 450
    assert "money without a sale" in row.summary.lower()
    assert row.phone_masked is not None and phone not in row.phone_masked
    assert row.phone_masked.endswith(phone[-3:])


async def test_a_sale_paid_by_push_and_by_a_direct_payment_is_paid_twice(
    pull_till: TillHarness,
) -> None:
    h = pull_till
    phone = unique_phone()
    view = await h.engine.start_payment("D1", 200, phone)
    await h.advance_sim(5)
    assert (await h.view(view.attempt_id)).state is AttemptState.COMPLETED
    direct = await h.sim.pay_till(h.shortcode, unique_phone(), 200)
    body = c2b_body(h, direct.trans_id, 200)
    await receive(h.store, h.shop_id, body)
    async with h.store.write() as tx:
        await h.store.c2b.attach(tx, h.shop_id, direct.trans_id, "D1", h.till_id)
    report = await pull_of(h).pull()
    assert (report.paid_twice, report.money_without_sale) == (1, 0)
    [problem] = await h.store.problems.list(h.shop_id)
    assert problem.detail["pattern"] == "paid_twice"
    assert direct.trans_id in problem.detail["receipts"]
    assert "paid twice" in record_row(problem).summary
    assert (await pull_of(h).pull()).paid_twice == 0


async def test_the_schedule_pulls_on_the_injectable_clock(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(
        tmp_path,
        simulator.base_url,
        confirm_callbacks_by_query=False,
        clock=await sim_now_clock(simulator.base_url),
        pull={"nominated_number": OWNER, "interval_s": 900},
    ) as h:
        await h.restart_with_reconciler()

        async def until(check: Callable[[], Any]) -> bool:
            """Poll (bounded, not timed): the schedule runs on its own task."""
            for _ in range(1000):
                if await check():
                    return True
                await asyncio.sleep(0.01)
            return False

        async def parked(pulls: int) -> bool:
            # The pull is recorded and both loops (reconciler, schedule) sleep on the clock.
            status = await pull_of(h).status()
            done = status is not None and status.ok and await pulls_asked(h) == pulls
            return done and h.clock.sleepers >= 2

        assert await until(lambda: parked(1))
        h.clock.advance(899)
        assert await until(lambda: parked(1))
        assert await pulls_asked(h) == 1
        h.clock.advance(2)
        assert await until(lambda: parked(2))


# ---------------------------------------------------------------- bad input


class Rewrite(httpx.AsyncBaseTransport):
    """Loopback HTTP to the real simulator, with pull pages rewritten as the test says."""

    def __init__(self, rewrite: Callable[[int, dict[str, Any]], dict[str, Any]]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.rewrite = rewrite
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path != PULL_QUERY:
            return response
        raw = await response.aread()
        await response.aclose()
        data = json.loads(raw)
        if data.get("ResponseCode") == "1000":
            self.pages += 1
            data = self.rewrite(self.pages, data)
        return httpx.Response(response.status_code, json=data)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
async def rewritten(
    tmp_path: Path, simulator: ServerProcess
) -> AsyncIterator[tuple[TillHarness, Rewrite]]:
    transport = Rewrite(lambda _, data: data)
    async with till(
        tmp_path,
        simulator.base_url,
        confirm_callbacks_by_query=False,
        clock=await sim_now_clock(simulator.base_url),
        transport=transport,
        pull={"nominated_number": OWNER, "interval_s": 0},
        sim_settings={"pull_page_size": 1},
    ) as harness:
        yield harness, transport


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data["Response"][0]
    return found


async def refused(h: TillHarness, expected: str) -> None:
    before = await snapshot(h)
    with pytest.raises(PullFailed) as caught:
        await pull_of(h).pull()
    assert expected in caught.value.message
    assert await snapshot(h) == before
    status = await pull_of(h).status()
    assert status is not None and status.error == caught.value.message and not status.ok


async def test_an_amount_with_cents_refuses_the_pull(pull_till: TillHarness) -> None:
    h = pull_till
    await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    cents = await h.sim.pay_till(h.shortcode, unique_phone(), "150.50")
    await refused(h, f"{cents.trans_id} has an amount with cents (KES 150.50)")


@pytest.mark.parametrize("field", ["transactionId", "trxDate", "amount"])
async def test_a_row_missing_a_field_refuses_the_pull(
    rewritten: tuple[TillHarness, Rewrite], field: str
) -> None:
    h, transport = rewritten
    await h.sim.pay_till(h.shortcode, unique_phone(), 300)

    def drop(_: int, data: dict[str, Any]) -> dict[str, Any]:
        rows(data)[0].pop(field)
        return data

    transport.rewrite = drop
    await refused(h, f"bad field(s): {field}")


async def test_one_transaction_id_with_two_amounts_across_pages_refuses_the_pull(
    rewritten: tuple[TillHarness, Rewrite],
) -> None:
    h, transport = rewritten
    first = await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    await h.sim.pay_till(h.shortcode, unique_phone(), 310)

    def repeat(page: int, data: dict[str, Any]) -> dict[str, Any]:
        if page == 2:
            rows(data)[0].update(transactionId=first.trans_id, amount="999.00")
        return data

    transport.rewrite = repeat
    await refused(h, f"{first.trans_id} comes twice, as KES 300 and as KES 999")


async def test_the_same_row_on_two_pages_is_kept_once(
    rewritten: tuple[TillHarness, Rewrite],
) -> None:
    h, transport = rewritten
    await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    await h.sim.pay_till(h.shortcode, unique_phone(), 310)

    kept: list[dict[str, Any]] = []

    def overlap(page: int, data: dict[str, Any]) -> dict[str, Any]:
        if page == 1:
            kept.extend(rows(data))
        elif page == 2:
            data["Response"] = [[*kept, *rows(data)]]
        return data

    transport.rewrite = overlap
    report = await pull_of(h).pull()
    assert (report.rows, report.new_rows) == (2, 2)
    assert await h.store.pull.count(h.shop_id) == 2


async def test_a_transaction_id_pulled_again_with_another_amount_is_refused(
    rewritten: tuple[TillHarness, Rewrite],
) -> None:
    h, transport = rewritten
    paid = await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    await pull_of(h).pull()

    def changed(_: int, data: dict[str, Any]) -> dict[str, Any]:
        rows(data)[0]["amount"] = "301.00"
        return data

    transport.rewrite = changed
    await refused(h, f"{paid.trans_id} was pulled before as KES 300 and is now KES 301")


async def test_a_daraja_error_envelope_refuses_the_pull(pull_till: TillHarness) -> None:
    h = pull_till
    await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    await pull_of(h).pull()
    # The shortcode gone from Daraja: 500.001.1001 "Merchant does not exist" (on HTTP 500).
    await h.sim.delete_shortcode(h.shortcode)
    await refused(h, "500.001.1001")


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (timedelta(hours=48, minutes=1), "more than 48 hours ago"),
        (timedelta(minutes=-5), "is in the future"),
    ],
)
async def test_a_since_out_of_range_asks_nothing_and_changes_nothing(
    pull_till: TillHarness, offset: timedelta, words: str
) -> None:
    h = pull_till
    await h.sim.pay_till(h.shortcode, unique_phone(), 300)
    before, asked = await snapshot(h), await pulls_asked(h)
    with pytest.raises(PullInputError) as caught:
        await pull_of(h).pull(since=h.clock.now() - offset)
    assert words in caught.value.message
    assert await snapshot(h) == before
    assert await pulls_asked(h) == asked
    assert await pull_of(h).status() is None


async def test_a_direct_payment_attached_after_an_earlier_pull_is_still_found_paid_twice(
    pull_till: TillHarness,
) -> None:
    h = pull_till
    view = await h.engine.start_payment("D2", 220, unique_phone())
    await h.advance_sim(5)
    direct = await h.sim.pay_till(h.shortcode, unique_phone(), 220)
    await receive(h.store, h.shop_id, c2b_body(h, direct.trans_id, 220))
    first = await pull_of(h).pull()
    assert (first.paid_twice, first.money_without_sale) == (0, 0)
    async with h.store.write() as tx:
        await h.store.c2b.attach(tx, h.shop_id, direct.trans_id, "D2", h.till_id)
    assert (await pull_of(h).pull()).paid_twice == 1
    assert (await h.view(view.attempt_id)).state is AttemptState.COMPLETED
