"""Receipt codes the customer shows (issue #14, part B): Transaction Status on the real
simulator, its result through the real relay (production mode) at a signed per-request URL, and
the till's engine in process. Each refusal is checked for its words and for changing nothing."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import Static

from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.model import AttemptFlag, AttemptState
from smartduka_tui.mpesa import result_path
from smartduka_tui.payments.api import AttemptId
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.payments.statement import (
    ReceiptRefusal,
    ReceiptVerdict,
    StatementService,
)
from smartduka_tui.relay_client import EventOutcome, TillLink
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import database_path
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.failure import FailureScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.verify_receipt import VerifyReceiptScreen
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from smartduka_tui.words import verdict_words
from tests.conftest import unique_phone
from tests.integration.support import MAIN, RelayHandle, Till, eventually, finish
from tests.integration.test_pay_e2e import direct_till
from tests.ui.conftest import SIZE, wait_for_screen, wait_until
from tests.ui.test_flows import put

INITIATOR = ("apiop1", "Initiator-Pass1")


@dataclass
class Counter:
    """One till with its engine, relay link and receipt checks, on a clock the test holds."""

    till: Till
    shortcode: str
    engine: PaymentEngine
    link: TillLink
    service: StatementService
    clock: ManualClock

    async def failed_sale(self, sim: SimulatorControl, sale: str, amount: int) -> AttemptId:
        """A sale whose push the customer cancelled (FAILED): what a receipt may still pay."""
        phone = unique_phone()
        await sim.set_phone_scenario(phone, result_code=1032)
        view = await self.engine.start_payment(sale, amount, phone)

        async def failed() -> bool:
            return (await self.engine.get(view.attempt_id)).state is AttemptState.FAILED

        assert await eventually(failed)
        return view.attempt_id

    def money_state(self) -> list[tuple[Any, ...]]:
        """Every attempt's state, receipt and flags: what no refusal may change."""
        with sqlite3.connect(database_path(self.till.data_dir)) as conn:
            return conn.execute(
                "SELECT id, state, receipt_number, flags FROM attempts ORDER BY id"
            ).fetchall()


async def receipt_till(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> tuple[Till, Path]:
    """A till with its own paybill, its initiator set on both sides, and the simulator's
    certificate in a file (what `daraja.certificate_file` names)."""
    till = await direct_till(tmp_path, relay, sim)
    assert till.shortcode is not None
    await sim.set_initiator(till.shortcode, *INITIATOR)
    await sim.set_async_results(till.shortcode, delay_s=0)
    certificate = till.data_dir / "simulator.pem"
    certificate.write_bytes(await sim.certificate())
    store = await till.store()
    try:
        async with store.write() as tx:
            await store.initiators.set(tx, till.shop_id, *(Secret(v) for v in INITIATOR))
    finally:
        await store.close()
    return till, certificate


@asynccontextmanager
async def counter(
    tmp_path: Path,
    relay: RelayHandle,
    sim: SimulatorControl,
    *,
    wait_s: int = 60,
    with_certificate: bool = True,
) -> AsyncIterator[Counter]:
    till, certificate = await receipt_till(tmp_path, relay, sim)
    assert till.shortcode is not None
    clock = ManualClock(SystemClock().now())
    async with till.opened(
        clock=clock,
        daraja={"certificate_file": certificate if with_certificate else None},
        timings={"statement_result_wait_s": wait_s},
    ) as opened:
        assert opened.relay is not None and opened.receipt_checks is not None
        yield Counter(
            till, till.shortcode, opened.engine, opened.link, opened.receipt_checks, clock
        )


def refused(verdict: ReceiptVerdict, refusal: ReceiptRefusal, message: str) -> None:
    assert not verdict.accepted
    assert verdict.refusal is refusal, verdict
    assert verdict.message == message


async def test_a_receipt_paid_to_the_till_completes_a_failed_sale(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        attempt_id = await c.failed_sale(sim, "0042", 600)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 600)
        # Typed as a cashier might: lower case, with a space.
        typed = paid.trans_id[:4].lower() + " " + paid.trans_id[4:].lower()
        verdict = await c.service.verify_receipt(typed, "0042")
        assert verdict.accepted, verdict
        assert verdict.receipt == paid.trans_id and verdict.sale_ref == "0042"
        assert verdict.amount_paid == Decimal(600)
        assert verdict_words(verdict) == f"Paid: receipt {paid.trans_id}, KES 600 for sale 0042."
        view = await c.engine.get(attempt_id)
        assert view.state is AttemptState.COMPLETED and view.receipt == paid.trans_id and view.late
        # The result came through the relay, stored for this till under the request's ref.
        stored = relay.rows(
            "SELECT till_id, kind, attempt_ref FROM events WHERE shop_id = ? AND kind = 'result'",
            c.till.shop_id,
        )
        store = await c.till.store()
        try:
            (ref,) = [
                r["request_ref"]
                for r in await store.db.fetchall(
                    "SELECT request_ref FROM statement_requests WHERE state = 'answered'"
                )
            ]
        finally:
            await store.close()
        assert stored == [(c.till.till_id, "result", ref)]
        # The evidence and its audit entry, written together.
        moves = await c.till.transitions(int(attempt_id))
        assert moves[-1].detail["evidence"] == "statement_matched"
        assert moves[-1].detail["receipt"] == paid.trans_id

        # A result replayed (and another forged) at that signed URL changes nothing.
        before = c.money_state()
        handled: list[EventOutcome] = []
        c.link.relay.on_event(lambda h: handled.append(h.outcome))  # type: ignore[union-attr]
        url = (
            relay.url
            + result_path.sign(
                c.till.enrolment["callback_secret"],
                result_path.ResultPurpose.RESULT,
                c.till.shop_id,
                c.till.till_id,
                ref,
                c.till.enrolment["callback_kid"],
            ).path()
        )
        forged = json.dumps(
            {"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok",
                        "TransactionID": "ZZZ9ZZ9ZZ9",
                        "ResultParameters": {"ResultParameter": [
                            {"Key": "ReceiptNo", "Value": "ZZZ9ZZ9ZZ9"},
                            {"Key": "Amount", "Value": 600}]}}}
        ).encode()  # fmt: skip
        async with httpx.AsyncClient() as http:
            assert (await http.post(url, content=forged)).status_code == 200

        async def applied() -> bool:
            return EventOutcome.RESULT in handled

        assert await eventually(applied)
        assert c.money_state() == before
        store = await c.till.store()
        try:
            row = await store.statement.get(c.till.shop_id, ref)
        finally:
            await store.close()
        assert row is not None and paid.trans_id in (row.result_body or "")

        # The same receipt again, for another sale: already used.
        await c.failed_sale(sim, "0043", 600)
        before = c.money_state()
        again = await c.service.verify_receipt(paid.trans_id, "0043")
        refused(
            again,
            ReceiptRefusal.ALREADY_USED,
            f"Receipt {paid.trans_id} is already used for sale 0042.",
        )
        assert c.money_state() == before


async def test_refusals_say_why_and_change_no_money_state(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        await c.failed_sale(sim, "0050", 600)
        other_shop = await direct_till(tmp_path, relay, sim, name="other")
        assert other_shop.shortcode is not None
        elsewhere = await sim.pay_till(other_shop.shortcode, unique_phone(), 600)
        cheaper = await sim.pay_till(c.shortcode, unique_phone(), 500)
        before = c.money_state()

        refused(
            await c.service.verify_receipt("TKQ9-ZZ1", "0050"),
            ReceiptRefusal.MALFORMED,
            "That is not an M-Pesa receipt code: 10 letters and digits, e.g. TKQ9ZZ1A2B.",
        )
        refused(
            await c.service.verify_receipt("ZZZ9ZZ9ZZ9", "0050"),
            ReceiptRefusal.NO_SUCH_PAYMENT,
            "No such payment: M-Pesa knows no receipt ZZZ9ZZ9ZZ9 paid to this till.",
        )
        # Another shortcode's receipt: this till's Transaction Status does not find it.
        refused(
            await c.service.verify_receipt(elsewhere.trans_id, "0050"),
            ReceiptRefusal.NO_SUCH_PAYMENT,
            f"No such payment: M-Pesa knows no receipt {elsewhere.trans_id} paid to this till.",
        )
        refused(
            await c.service.verify_receipt(cheaper.trans_id, "0050"),
            ReceiptRefusal.AMOUNT_DIFFERS,
            "Amount differs: KES 500 paid, sale is KES 600.",
        )
        refused(
            await c.service.verify_receipt(cheaper.trans_id, "0404"),
            ReceiptRefusal.SALE_NOT_OPEN,
            "There is no sale 0404 on this till: ring it up and try M-Pesa first.",
        )
        assert c.money_state() == before


async def test_a_till_on_the_simulator_without_its_certificate_sends_nothing(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    # Safaricom's published certificates would not decrypt at the simulator: the till must not
    # fall back to them for a Daraja that is not Safaricom's.
    async with counter(tmp_path, relay, sim, with_certificate=False) as c:
        await c.failed_sale(sim, "0055", 600)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 600)
        before = c.money_state()
        verdict = await c.service.verify_receipt(paid.trans_id, "0055")
        assert verdict.refusal is ReceiptRefusal.NOT_SET_UP, verdict
        assert verdict.message == (
            f"This till talks to {c.engine.settings.daraja_base_url}, not Safaricom, and no "
            "certificate is configured for it (daraja.certificate_file; the simulator serves "
            "its own at /__sim/certificate). Nothing was sent."
        )
        assert c.money_state() == before
        store = await c.till.store()
        try:
            assert await store.db.fetchall("SELECT id FROM statement_requests") == []
        finally:
            await store.close()


async def test_a_receipt_from_before_the_sale_is_too_old(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        paid = await sim.pay_till(c.shortcode, unique_phone(), 300)
        # The sale is rung up an hour after that payment (the till's clock moves on). The
        # payment has the session simulator's time, ahead of the till's by what earlier tests
        # advanced it: the hour counts from there.
        ahead = ((await sim.clock()).now - c.clock.now()).total_seconds()
        c.clock.advance(3600 + max(0.0, ahead))
        await c.failed_sale(sim, "0060", 300)
        before = c.money_state()
        verdict = await c.service.verify_receipt(paid.trans_id, "0060")
        assert verdict.refusal is ReceiptRefusal.TOO_OLD, verdict
        assert verdict.message.startswith(f"Too old: receipt {paid.trans_id} was paid at ")
        assert "before sale 0060 began" in verdict.message
        assert c.money_state() == before


@pytest.mark.parametrize("how", ["no result", "queue timeout"])
async def test_no_answer_says_so_and_changes_nothing(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, how: str
) -> None:
    async with counter(tmp_path, relay, sim, wait_s=30) as c:
        await c.failed_sale(sim, "0070", 250)
        paid = await sim.pay_till(c.shortcode, unique_phone(), 250)
        if how == "no result":
            await sim.set_async_results(c.shortcode, drop=True, delay_s=0)
        else:
            await sim.set_async_results(c.shortcode, timeout=True, delay_s=0)
        before = c.money_state()
        task = asyncio.create_task(c.service.verify_receipt(paid.trans_id, "0070"))
        if how == "no result":

            async def waited_out() -> bool:
                # The till's clock runs on until the check gives up (its wait may start only
                # once the request is answered, so one step might come too early).
                c.clock.advance(30)
                return task.done()

            assert await eventually(waited_out)
        verdict = await task
        if how == "no result":
            refused(
                verdict,
                ReceiptRefusal.TIMEOUT,
                "M-Pesa has not answered the receipt check within 30 s. Nothing changed: try "
                "again in a moment.",
            )
        else:
            refused(
                verdict,
                ReceiptRefusal.TIMEOUT,
                "M-Pesa's queue timed out on the receipt check. Nothing changed: try again.",
            )
        assert c.money_state() == before
        assert AttemptFlag.LATE not in AttemptFlag(before[0][3])


async def test_the_cli_pays_a_sale_with_a_receipt_and_refuses_a_malformed_code(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till, certificate = await receipt_till(tmp_path, relay, sim)
    assert till.shortcode is not None
    phone = unique_phone()
    await sim.set_phone_scenario(phone, result_code=1032)
    code, view, err = await asyncio.to_thread(finish, till.pay("0090", 400, phone, "--json"))
    assert code == 1, err
    assert view["state"] == "FAILED", err
    paid = await sim.pay_till(till.shortcode, unique_phone(), 400)

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", MAIN, "verify-receipt", *args],
            cwd=till.data_dir.parent,
            env=till.env(SMARTDUKA_DARAJA__CERTIFICATE_FILE=str(certificate)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    bad = await asyncio.to_thread(verify, "NOT-A-CODE!", "--sale", "0090")
    assert bad.returncode == 2
    assert bad.stdout.strip() == (
        "That is not an M-Pesa receipt code: 10 letters and digits, e.g. TKQ9ZZ1A2B."
    )
    good = await asyncio.to_thread(verify, paid.trans_id, "--sale", "0090", "--json")
    assert good.returncode == 0, good.stderr
    verdict = json.loads(good.stdout)
    assert verdict["accepted"] is True and verdict["amount_paid"] == "400"
    assert verdict["message"] == f"Paid: receipt {paid.trans_id}, KES 400 for sale 0090."
    assert verdict["payment"]["state"] == "COMPLETED"
    assert verdict["payment"]["receipt"] == paid.trans_id
    (attempt,) = await till.attempts()
    assert attempt.state is AttemptState.COMPLETED and attempt.receipt_number == paid.trans_id


async def test_the_cashier_is_refused_at_f5_for_another_tills_a_used_or_an_unknown_receipt(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """F5 on the real app, its checks through the real simulator and relay: a receipt paid to a
    sibling shortcode of the same Daraja app (the shop's other till), one another sale holds,
    and one M-Pesa does not know are each refused in words, attach nothing and change no money
    state; the checkout's check-only F5 says the same of the sibling's receipt."""
    async with counter(tmp_path, relay, sim) as c:
        store = await c.till.store()
        try:
            creds = await store.shops.credentials(c.till.shop_id)
        finally:
            await store.close()
        assert creds.consumer_key is not None and creds.consumer_secret is not None
        sibling = await sim.register_shortcode(
            passkey=secrets.token_hex(32),
            consumer_key=creds.consumer_key.reveal(),
            consumer_secret=creds.consumer_secret.reveal(),
        )
        elsewhere = await sim.pay_till(sibling.shortcode, unique_phone(), 600)
        # Another sale, paid by its own prompt: its receipt is held.
        held = await c.engine.start_payment("0500", 600, unique_phone())

        async def held_receipt() -> str | None:
            return (await c.engine.get(held.attempt_id)).receipt

        used = await eventually(held_receipt)
        assert used is not None

        phone = unique_phone()
        await sim.set_phone_scenario(phone, result_code=1032)
        services = AppServices(
            payments=c.engine,
            clock=c.clock,
            identity=TillIdentity(c.till.shop_id, c.till.till_id, "Receipt Duka"),
            connection=c.link.connection,
            receipt_checks=c.service,
        )
        app = make_app(c.engine.settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=SIZE) as pilot:
            checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
            await put(pilot, "#total", "600")
            await pilot.press("enter")
            await wait_for_screen(pilot, PhoneScreen)
            # The prompt is cancelled at once: the waiting screen may come and go unseen.
            await put(pilot, "#phone", "0" + phone[3:])
            await pilot.press("enter")
            failure: Any = await wait_for_screen(pilot, FailureScreen, timeout=60)
            sale = failure.view.sale_ref
            await wait_until(pilot, lambda: failure.check_action("verify_receipt", ()), "F5")
            before = c.money_state()
            await pilot.press("f5")
            dialog: Any = await wait_for_screen(pilot, VerifyReceiptScreen)

            async def typed(code: str) -> str:
                dialog.verdict = None
                await put(pilot, "#receipt-code", code)
                await pilot.press("enter")
                await wait_until(pilot, lambda: dialog.verdict is not None, "the verdict", 60)
                assert not dialog.verdict.accepted, dialog.verdict
                shown = str(dialog.query_one("#verify-result", Static).content)
                assert shown == dialog.verdict.message
                return shown

            ours = c.shortcode
            assert await typed(elsewhere.trans_id) == (
                f"Paid to another till: receipt {elsewhere.trans_id} paid "
                f"{sibling.shortcode}, not {ours}."
            )
            assert await typed(used) == f"Receipt {used} is already used for sale 0500."
            assert await typed("ZZZ9ZZ9ZZ9") == (
                "No such payment: M-Pesa knows no receipt ZZZ9ZZ9ZZ9 paid to this till."
            )
            assert c.money_state() == before
            after = await c.engine.get(failure.view.attempt_id)
            assert after.state is AttemptState.FAILED and after.receipt is None
            assert isinstance(app.screen, VerifyReceiptScreen)

            # The checkout's F5 (a check only, no sale) refuses the sibling's receipt too.
            await pilot.press("escape")
            await wait_for_screen(pilot, FailureScreen)
            await pilot.press("escape")
            await wait_for_screen(pilot, CheckoutScreen)
            await pilot.press("f5")
            dialog = await wait_for_screen(pilot, VerifyReceiptScreen)
            assert await typed(elsewhere.trans_id) == (
                f"Paid to another till: receipt {elsewhere.trans_id} paid "
                f"{sibling.shortcode}, not {ours}."
            )
            assert c.money_state() == before
        assert sale not in {
            a.sale_ref
            for a in await c.engine.store.attempts.by_receipt(c.till.shop_id, elsewhere.trans_id)
        }
