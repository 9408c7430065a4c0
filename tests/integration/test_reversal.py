"""Reversal of a payment the till took (issue #14, part B): the real simulator's Reversal API,
its result through the real relay at a signed per-request URL, the engine in process on a
clock the test holds. REVERSED comes only with a code 0 result; each refusal is checked for its
words and for changing no money state."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.manager import ActionRefused, ManagerService
from smartduka_tui.model import AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.payments.c2b import receive
from smartduka_tui.payments.reversal import ReversalRefusal, ReversalVerdict
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import database_path
from tests.conftest import unique_phone
from tests.integration.support import MAIN, RelayHandle, eventually, finish
from tests.integration.test_verify_receipt import Counter, counter, receipt_till

NOTE = "customer paid twice: STK and till"


async def paid_sale(c: Counter, sim: SimulatorControl, sale: str, amount: int) -> str:
    """A sale paid with a receipt the customer showed: the receipt is the sale's."""
    await c.failed_sale(sim, sale, amount)
    paid = await sim.pay_till(c.shortcode, unique_phone(), amount)
    verdict = await c.service.verify_receipt(paid.trans_id, sale)
    assert verdict.accepted, verdict
    return paid.trans_id


def requests(c: Counter) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database_path(c.till.data_dir)) as conn:
        return conn.execute(
            "SELECT kind, receipt, state, result_code FROM statement_requests ORDER BY id"
        ).fetchall()


def refused(verdict: ReversalVerdict, refusal: ReversalRefusal, message: str) -> None:
    assert not verdict.reversed
    assert verdict.refusal is refusal, verdict
    assert verdict.message == message


async def test_reversed_only_on_a_code_0_result_and_shown_in_the_summary(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        receipt = await paid_sale(c, sim, "0042", 600)
        # Accepted, then M-Pesa's queue gives up: nothing is reversed.
        await sim.set_async_results(c.shortcode, timeout=True, delay_s=0)
        before = c.money_state()
        refused(
            await c.service.reverse(receipt, NOTE),
            ReversalRefusal.TIMEOUT,
            "M-Pesa's queue timed out on the reversal: nothing was reversed. Try again.",
        )
        assert c.money_state() == before

        await sim.set_async_results(c.shortcode, delay_s=0)
        verdict = await c.service.reverse(receipt, NOTE)
        assert verdict.reversed, verdict
        assert verdict.message == (
            f"Reversed: KES 600 of receipt {receipt} (sale 0042) went back to the customer."
        )
        (attempt,) = [a for a in await c.engine.store.attempts.by_receipt(c.till.shop_id, receipt)]
        assert AttemptFlag.REVERSED in attempt.flags
        assert [p.trans_id for p in await sim.c2b_payments(c.shortcode) if p.reversed] == [receipt]
        # The note, the result and the mark, each with its audit entry.
        entries = [
            (e.actor, e.action, e.detail)
            for e in sorted(await c.engine.store.audit.entries(c.till.shop_id), key=lambda e: e.id)
            if e.action.startswith("statement.reversal") or e.action == "attempt.flagged"
        ]
        assert [e[1] for e in entries] == [
            "statement.reversal_sent",
            "statement.reversal_sent",
            "attempt.flagged",
        ]
        assert entries[1][0] == "manager" and entries[1][2]["note"] == NOTE
        assert entries[2][2]["flags"] == ["REVERSED"]
        summary = await c.engine.store.attempts.summary(
            c.till.shop_id, attempt.created_at, attempt.created_at + timedelta(minutes=1)
        )
        assert (summary.amount_paid, summary.reversed, summary.amount_reversed) == (600, 1, 600)

        # Again: refused here, nothing sent.
        sent = requests(c)
        before = c.money_state()
        refused(
            await c.service.reverse(receipt, NOTE),
            ReversalRefusal.ALREADY_REVERSED,
            f"Receipt {receipt} (sale 0042) is already reversed. Nothing was sent.",
        )
        assert requests(c) == sent and c.money_state() == before


async def test_a_result_after_the_wait_still_marks_it(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim, wait_s=30) as c:
        receipt = await paid_sale(c, sim, "0044", 450)
        # The result comes 3 s (the simulator's real clock) after the request: the till's wait
        # (its own clock, moved by the test) ends first.
        await sim.set_async_results(c.shortcode, delay_s=3)
        task = asyncio.create_task(c.service.reverse(receipt, NOTE))

        async def waited_out() -> bool:
            c.clock.advance(30)
            return task.done()

        assert await eventually(waited_out)
        refused(
            await task,
            ReversalRefusal.TIMEOUT,
            "M-Pesa has not answered the reversal within 30 s. It may still happen: the "
            "payment shows REVERSED only when M-Pesa's result says so (`smartduka reverse` "
            "again shows whether it is waiting).",
        )
        (attempt,) = await c.engine.store.attempts.by_receipt(c.till.shop_id, receipt)
        assert AttemptFlag.REVERSED not in attempt.flags
        before = c.money_state()
        waiting = await c.service.reverse(receipt, NOTE)
        assert waiting.refusal is ReversalRefusal.WAITING, waiting
        assert waiting.message.startswith(
            f"A reversal of receipt {receipt} is already waiting for M-Pesa's answer (asked at "
        )
        assert waiting.message.endswith(
            "; it may be asked again after 30 minutes). Nothing was sent."
        )
        assert c.money_state() == before

        async def marked() -> bool:
            (now,) = await c.engine.store.attempts.by_receipt(c.till.shop_id, receipt)
            return AttemptFlag.REVERSED in now.flags

        assert await eventually(marked)


@pytest.mark.parametrize(
    ("forced", "message"),
    [
        (
            "R000001",
            "M-Pesa says receipt {r} was already reversed (R000001). Nothing changed here: "
            "check the shop's M-Pesa statement.",
        ),
        (
            "R000002",
            "M-Pesa knows no payment {r} of KES 300 to this shop (R000002). Nothing was reversed.",
        ),
        (
            21,
            "M-Pesa did not reverse it: the initiator may not reverse payments: its API "
            "operator needs the Org Reversals Initiator role on the M-Pesa portal. Nothing "
            "changed.",
        ),
        (
            1,
            "M-Pesa did not reverse it: the shop's M-Pesa balance is too low to give the money "
            "back. Nothing changed.",
        ),
    ],
)
async def test_result_codes_in_words_and_nothing_marked(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, forced: int | str, message: str
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        receipt = await paid_sale(c, sim, "0046", 300)
        await sim.set_async_results(c.shortcode, result_code=forced, delay_s=0)
        before = c.money_state()
        verdict = await c.service.reverse(receipt, NOTE)
        expected = (
            ReversalRefusal.ALREADY_REVERSED if forced == "R000001" else ReversalRefusal.FAILED
        )
        refused(verdict, expected, message.format(r=receipt))
        assert c.money_state() == before


async def test_bad_input_is_refused_and_nothing_is_sent(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        receipt = await paid_sale(c, sim, "0048", 700)
        # A real payment to the till that no sale holds.
        stray = await sim.pay_till(c.shortcode, unique_phone(), 700)
        sent = requests(c)
        before = c.money_state()
        refused(
            await c.service.reverse("TKQ9-ZZ1", NOTE),
            ReversalRefusal.MALFORMED,
            "That is not an M-Pesa receipt code: 10 letters and digits, e.g. TKQ9ZZ1A2B.",
        )
        refused(
            await c.service.reverse(receipt, " x "),
            ReversalRefusal.BAD_NOTE,
            "The note must say why, in 2 to 100 characters (M-Pesa keeps it with the "
            "reversal). Nothing was sent.",
        )
        refused(
            await c.service.reverse(receipt, "y" * 101),
            ReversalRefusal.BAD_NOTE,
            "The note must say why, in 2 to 100 characters (M-Pesa keeps it with the "
            "reversal). Nothing was sent.",
        )
        refused(
            await c.service.reverse(receipt, "paid twice (STK & till)"),
            ReversalRefusal.BAD_NOTE,
            "The note goes to M-Pesa, so it may hold only letters, digits, spaces and . , : / "
            "# ' -. Nothing was sent.",
        )
        for unknown in (stray.trans_id, "ZZZ9ZZ9ZZ9"):
            refused(
                await c.service.reverse(unknown, NOTE),
                ReversalRefusal.NOT_OURS,
                f"No sale of this shop was paid with receipt {unknown}, and no direct payment "
                "to it has that receipt: only a payment the till took can be reversed here. "
                "Nothing was sent.",
            )
        assert requests(c) == sent and c.money_state() == before


async def test_the_cli_is_for_a_manager_with_the_pin(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till, certificate = await receipt_till(tmp_path, relay, sim)
    assert till.shortcode is not None
    phone = unique_phone()
    await sim.set_phone_scenario(phone, result_code=1032)
    code, _, err = await asyncio.to_thread(finish, till.pay("0092", 350, phone, "--json"))
    assert code == 1, err
    paid = await sim.pay_till(till.shortcode, unique_phone(), 350)

    def smartduka(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", MAIN, *args],
            cwd=till.data_dir.parent,
            env=till.env(SMARTDUKA_DARAJA__CERTIFICATE_FILE=str(certificate), **env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    verified = await asyncio.to_thread(smartduka, "verify-receipt", paid.trans_id, "--sale", "0092")
    assert verified.returncode == 0, verified.stderr
    # No manager PIN yet: a reversal is refused before anything is sent.
    no_pin = await asyncio.to_thread(smartduka, "reverse", paid.trans_id, "--note", NOTE)
    assert no_pin.returncode == 3
    assert "set a manager PIN first" in no_pin.stderr
    store = await till.store()
    try:
        await ManagerPin.of(store).set(Secret("4826"))
    finally:
        await store.close()
    wrong = await asyncio.to_thread(
        smartduka, "reverse", paid.trans_id, "--note", NOTE, SMARTDUKA_MANAGER_PIN="1111"
    )
    assert wrong.returncode == 3 and "PIN" in wrong.stderr
    done = await asyncio.to_thread(
        smartduka, "reverse", paid.trans_id, "--note", NOTE, SMARTDUKA_MANAGER_PIN="4826"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"Reversed: KES 350 of receipt {paid.trans_id} (sale 0092) went back to the customer."
    )
    again = await asyncio.to_thread(
        smartduka, "reverse", paid.trans_id, "--note", NOTE, SMARTDUKA_MANAGER_PIN="4826"
    )
    assert again.returncode == 1
    assert again.stdout.strip() == (
        f"Receipt {paid.trans_id} (sale 0092) is already reversed. Nothing was sent."
    )


async def test_the_manager_reverses_from_the_payments_detail_screen(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """The real app, driven with Pilot: signed in with the PIN, V on a paid payment's detail,
    a note, and M-Pesa's result through the real relay marks it reversed."""
    from smartduka_tui.connectivity import ConnectionBoard
    from smartduka_tui.manager import ManagerService
    from smartduka_tui.ui.app import make_app
    from smartduka_tui.ui.manager.problem_detail import ProblemDetailScreen
    from smartduka_tui.ui.manager.reversal import ReversalScreen
    from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
    from tests.manager.conftest import ONLINE, SIZE, settle
    from tests.manager.test_screens import notice_of, put, sign_in

    async with counter(tmp_path, relay, sim) as c:
        receipt = await paid_sale(c, sim, "0049", 520)
        await ManagerPin.of(c.engine.store).set(Secret("4826"))
        manager = ManagerService.for_engine(c.engine, reversals=c.service)
        services = AppServices(
            payments=c.engine,
            clock=c.clock,
            identity=TillIdentity(c.till.shop_id, c.till.till_id, "Reversal shop"),
            connection=ConnectionBoard(ONLINE),
            manager_tools=lambda: manager,
        )
        app = make_app(c.engine.settings, services, options=UiOptions(cursor_blink=False))
        (attempt,) = await c.engine.store.attempts.by_receipt(c.till.shop_id, receipt)
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, "problems", pin="4826")
            app.push_screen(ProblemDetailScreen(f"A{attempt.id}"))
            await settle(pilot)
            detail: Any = app.screen
            await pilot.press("v")
            await settle(pilot)
            assert isinstance(app.screen, ReversalScreen)
            await put(pilot, "#reversal-note", NOTE)
            await pilot.press("enter")
            await settle(pilot)
            assert id(app.screen) == id(detail)  # not `is`: mypy would narrow `detail`
            assert notice_of(app) == (
                f"Reversed: KES 520 of receipt {receipt} (sale 0049) went back to the customer."
            )
            assert detail.detail.row.reversed
            assert detail.check_action("reverse", ()) is None
        (now,) = await c.engine.store.attempts.by_receipt(c.till.shop_id, receipt)
        assert AttemptFlag.REVERSED in now.flags


async def test_a_lost_result_blocks_asking_again_only_for_a_while(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim, wait_s=30) as c:
        receipt = await paid_sale(c, sim, "0047", 380)
        # M-Pesa reverses it, and its result never arrives (Safaricom does not retry).
        await sim.set_async_results(c.shortcode, drop=True, delay_s=0)
        task = asyncio.create_task(c.service.reverse(receipt, NOTE))

        async def waited_out() -> bool:
            c.clock.advance(30)
            return task.done()

        assert await eventually(waited_out)
        assert (await task).refusal is ReversalRefusal.TIMEOUT
        assert (await c.service.reverse(receipt, NOTE)).refusal is ReversalRefusal.WAITING
        # Half an hour on, it may be asked again: M-Pesa says it was done, and the till does
        # not mark it from that (only a code 0 result does).
        c.clock.advance(30 * 60)
        await sim.set_async_results(c.shortcode, delay_s=0)
        before = c.money_state()
        refused(
            await c.service.reverse(receipt, NOTE),
            ReversalRefusal.ALREADY_REVERSED,
            f"M-Pesa says receipt {receipt} was already reversed (R000001). Nothing changed "
            "here: check the shop's M-Pesa statement.",
        )
        assert c.money_state() == before


# ------------------------------------------------------- direct payments and sales paid twice


async def direct_payment(c: Counter, sim: SimulatorControl, amount: int) -> str:
    """A customer pays the till directly at the simulator; the confirmation is kept as the
    relay's feed keeps it (`payments.c2b.receive`). Its TransID."""
    paid = await sim.pay_till(c.shortcode, unique_phone(), amount)
    body = {
        "TransactionType": "Pay Bill",
        "TransID": paid.trans_id,
        "TransTime": (await sim.clock()).kenya_time,
        "TransAmount": f"{amount}.00",
        "BusinessShortCode": c.shortcode,
        "BillRefNumber": "",
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "MARY",
    }
    await receive(c.engine.store, c.till.shop_id, json.dumps(body).encode())
    return paid.trans_id


def direct_state(c: Counter) -> list[tuple[Any, ...]]:
    """Every direct payment's sale and reversal: what no refusal may change."""
    with sqlite3.connect(database_path(c.till.data_dir)) as conn:
        return conn.execute(
            "SELECT trans_id, sale_ref, reversed_at FROM c2b_payments ORDER BY trans_id"
        ).fetchall()


@asynccontextmanager
async def manager_app(c: Counter) -> AsyncIterator[tuple[Any, ManagerService]]:
    """The real app on the counter's till, the manager tools reversing through its service."""
    from smartduka_tui.connectivity import ConnectionBoard
    from smartduka_tui.ui.app import make_app
    from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
    from tests.manager.conftest import ONLINE, SIZE

    await ManagerPin.of(c.engine.store).set(Secret("4826"))
    manager = ManagerService.for_engine(c.engine, reversals=c.service)
    services = AppServices(
        payments=c.engine,
        clock=c.clock,
        identity=TillIdentity(c.till.shop_id, c.till.till_id, "Reversal shop"),
        connection=ConnectionBoard(ONLINE),
        manager_tools=lambda: manager,
    )
    app = make_app(c.engine.settings, services, options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        yield pilot, manager


async def test_the_manager_reverses_a_direct_payment_from_its_list(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """V on a direct payment no sale holds: the same dialog and service; it leaves the list
    only when M-Pesa's code 0 result comes through the relay, with its audit entry."""
    from smartduka_tui.ui.manager.direct_payments import DirectPaymentsScreen
    from smartduka_tui.ui.manager.reversal import ReversalScreen
    from tests.manager.conftest import settle
    from tests.manager.test_screens import notice_of, put, sign_in

    async with counter(tmp_path, relay, sim) as c:
        trans_id = await direct_payment(c, sim, 730)
        before = c.money_state()
        async with manager_app(c) as (pilot, manager):
            app = pilot.app
            await sign_in(pilot, "problems", pin="4826")
            app.push_screen(DirectPaymentsScreen())
            await settle(pilot)
            listed: Any = app.screen
            assert [row.trans_id for row in listed.view.payments] == [trans_id]
            assert listed.check_action("reverse", ()) is True
            await pilot.press("v")
            await settle(pilot)
            assert isinstance(app.screen, ReversalScreen)
            title = str(app.screen.query_one("#reversal-title").render())
            assert title == f"Reverse KES 730 · receipt {trans_id} · no sale"
            await put(pilot, "#reversal-note", "wrong till: meant for the shop next door")
            await pilot.press("enter")
            await settle(pilot)
            assert id(app.screen) == id(listed)
            assert notice_of(app) == (
                f"Reversed: KES 730 of receipt {trans_id} (direct payment, no sale) went back "
                "to the customer."
            )
            assert listed.view.payments == ()
            assert listed.check_action("reverse", ()) is None  # nothing left to select
            # Bad input: the same payment again is refused with words, and nothing is sent.
            sent, kept = requests(c), direct_state(c)
            with pytest.raises(ActionRefused, match="already reversed"):
                await manager.direct_reversal_target(trans_id)
            assert requests(c) == sent and direct_state(c) == kept
        record = await c.engine.store.c2b.get(c.till.shop_id, trans_id)
        assert record is not None and record.reversed
        entries = await c.engine.store.audit.entries(c.till.shop_id, limit=20)
        assert [e.detail["trans_id"] for e in entries if e.action == "c2b.reversed"] == [trans_id]
        assert c.money_state() == before  # no attempt was touched
        # Bad input: the same payment again is refused with words, and nothing is sent.
        sent, kept = requests(c), direct_state(c)
        refused(
            await c.service.reverse(trans_id, NOTE),
            ReversalRefusal.ALREADY_REVERSED,
            f"Receipt {trans_id} (direct payment, no sale) is already reversed. Nothing was sent.",
        )
        assert requests(c) == sent and direct_state(c) == kept


async def test_a_direct_payment_is_not_reversed_on_acceptance_nor_while_its_result_waits(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim, wait_s=30) as c:
        trans_id = await direct_payment(c, sim, 640)
        kept = direct_state(c)
        # Accepted, and M-Pesa's result never comes: a reversal still pending.
        await sim.set_async_results(c.shortcode, drop=True, delay_s=0)
        task = asyncio.create_task(c.service.reverse(trans_id, NOTE))

        async def waited_out() -> bool:
            c.clock.advance(30)
            return task.done()

        assert await eventually(waited_out)
        assert (await task).refusal is ReversalRefusal.TIMEOUT
        assert direct_state(c) == kept
        sent = requests(c)
        waiting = await c.service.reverse(trans_id, NOTE)
        assert waiting.refusal is ReversalRefusal.WAITING
        assert waiting.message.startswith(
            f"A reversal of receipt {trans_id} is already waiting for M-Pesa's answer"
        )
        assert requests(c) == sent and direct_state(c) == kept
        # A payment still in flight (an STK push the customer has not answered) is no
        # payment to reverse.
        phone = unique_phone()
        await sim.set_phone_scenario(phone, callback_delay_s=3600)
        view = await c.engine.start_payment("0061", 90, phone)
        before = c.money_state()
        assert (await c.engine.get(view.attempt_id)).state is not AttemptState.COMPLETED
        manager = ManagerService.for_engine(c.engine, reversals=c.service)
        await ManagerPin.of(c.engine.store).set(Secret("4826"))
        await manager.sign_in(Secret("4826"))
        with pytest.raises(ActionRefused, match="only a paid payment with its receipt"):
            await manager.reverse(f"A{view.attempt_id}", NOTE)
        assert c.money_state() == before and requests(c) == sent


async def test_v_on_a_sale_paid_twice_reverses_its_second_payment(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """The sale was paid by a receipt and then again directly: V on the "paid twice" problem
    names and reverses the later payment; the first keeps paying the sale."""
    from smartduka_tui.ui.manager.problem_detail import ProblemDetailScreen
    from smartduka_tui.ui.manager.reversal import ReversalScreen
    from tests.manager.conftest import settle
    from tests.manager.test_screens import notice_of, put, sign_in

    async with counter(tmp_path, relay, sim) as c:
        first = await paid_sale(c, sim, "0062", 450)
        await sim.advance_clock(2)  # M-Pesa's TransTime has whole seconds: surely later
        second = await direct_payment(c, sim, 450)
        async with c.engine.store.write() as tx:
            await c.engine.store.c2b.attach(tx, c.till.shop_id, second, "0062", c.till.till_id)
            problem = await c.engine.store.problems.record(
                tx,
                c.till.shop_id,
                ProblemKind.SUSPICIOUS_PATTERN,
                {
                    "pattern": "paid_twice",
                    "sale_ref": "0062",
                    "receipts": sorted([first, second]),
                    "shortcode": c.shortcode,
                },
            )
        before = c.money_state()
        async with manager_app(c) as (pilot, manager):
            app = pilot.app
            await sign_in(pilot, "problems", pin="4826")
            app.push_screen(ProblemDetailScreen(f"P{problem.id}"))
            await settle(pilot)
            detail: Any = app.screen
            assert detail.check_action("reverse", ()) is True
            await pilot.press("v")
            await settle(pilot)
            assert isinstance(app.screen, ReversalScreen)
            title = str(app.screen.query_one("#reversal-title").render())
            assert title == f"Reverse KES 450 · receipt {second} · the second payment of sale 0062"
            await put(pilot, "#reversal-note", NOTE)
            await pilot.press("enter")
            await settle(pilot)
            assert id(app.screen) == id(detail)
            assert notice_of(app) == (
                f"Reversed: KES 450 of receipt {second} (direct payment for sale 0062) went "
                "back to the customer."
            )
            # Bad input: the second payment is reversed now, so there is nothing to reverse.
            sent = requests(c)
            with pytest.raises(ActionRefused, match=f"receipt {second}, is already reversed"):
                await manager.reversal_target(f"P{problem.id}")
            assert requests(c) == sent
        record = await c.engine.store.c2b.get(c.till.shop_id, second)
        assert record is not None and record.reversed
        assert c.money_state() == before  # the first payment still pays the sale
