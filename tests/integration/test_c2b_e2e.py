"""C2B end to end over loopback: the real simulator's customer pays the till directly, its
confirmation reaches the real relay process at the URL `smartduka-relay c2b token` made, and
every till of the shop reads it from its feed; the first till's claim wins."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from callback_relay import cli as relay_cli
from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.model import ProblemKind
from smartduka_tui.payments.c2b import C2BDesk
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.relay_client import (
    EventOutcome,
    HandledEvent,
    RelayClient,
    c2b_claimer,
)
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.schemas import ShortcodeKind
from smartduka_tui.simulator.statement_schemas import NoticeKind
from smartduka_tui.store.c2b import C2BAttachError
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.qr import QrScreen
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from smartduka_tui.ui.widgets.c2b_panel import C2BPanel
from smartduka_tui.ui.widgets.notice import Notice
from tests.conftest import unique_phone
from tests.integration.support import (
    MAIN,
    PlatformCreds,
    RelayHandle,
    Till,
    eventually,
    make_till,
    unique_name,
)
from tests.simulator.support import Daraja, register_shop
from tests.support.processes import ServerProcess
from tests.ui.conftest import SIZE, wait_for_screen, wait_until
from tests.ui.test_flows import put


async def token_url(relay: RelayHandle, shortcode: str, shop_id: str) -> str:
    def run() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            args = ["c2b", "token", shortcode, "--shop", shop_id, "--json", "--db", str(relay.db)]
            assert relay_cli.main(args) == 0
        url: str = json.loads(out.getvalue())["url"]
        return url

    printed = await asyncio.to_thread(run)
    return relay.url.rstrip("/") + printed[printed.index("/hooks/c2b/") :]


async def next_events(http: httpx.AsyncClient, till: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-poll the till's feed until something arrives (the relay wakes it on commit)."""
    headers = {"Authorization": f"Bearer {till['till_key']}"}
    for _ in range(20):
        response = await http.get("/v1/events", params={"wait": 5}, headers=headers)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        if events:
            for event in events:
                ack = await http.post(f"/v1/events/{event['id']}/ack", headers=headers)
                assert ack.status_code == 200
            return events
    raise AssertionError("no event reached the till's feed")


async def test_a_direct_payment_reaches_every_till_and_one_claim_wins(
    relay: RelayHandle, simulator: ServerProcess, sim: SimulatorControl
) -> None:
    shop = await relay.enrol("shop", "add", unique_name("c2b"))
    second = await relay.enrol("till", "add", shop["shop_id"])
    merchant = await register_shop(sim, ShortcodeKind.TILL)
    url = await token_url(relay, merchant.shortcode, shop["shop_id"])
    async with httpx.AsyncClient(base_url=simulator.base_url, trust_env=False) as sim_http:
        daraja = Daraja(sim_http, merchant)
        registered = await sim_http.post(
            "/mpesa/c2b/v2/registerurl",
            json={
                "ShortCode": merchant.shortcode,
                "ResponseType": "Completed",
                "ConfirmationURL": url,
            },
            headers=await daraja.bearer(),
        )
        assert registered.status_code == 200, registered.text
    paid = await sim.pay_till(merchant.shortcode, unique_phone(), 150, first_name="MARY")
    async with httpx.AsyncClient(base_url=relay.url, trust_env=False, timeout=30) as http:
        for till in (shop, second):
            [event] = await next_events(http, till)
            body = json.loads(event["body"])
            assert (event["kind"], event["attempt_ref"]) == ("c2b", paid.trans_id)
            assert (body["TransAmount"], body["FirstName"]) == ("150.00", "MARY")
            assert "*" in body["MSISDN"]
        first = await http.post(
            f"/v1/c2b/{paid.trans_id}/claim",
            json={"sale_ref": "S-1"},
            headers={"Authorization": f"Bearer {second['till_key']}"},
        )
        assert first.status_code == 200, first.text
        late = await http.post(
            f"/v1/c2b/{paid.trans_id}/claim",
            json={"sale_ref": "S-9"},
            headers={"Authorization": f"Bearer {shop['till_key']}"},
        )
        assert late.status_code == 409
        assert late.json()["error"] == (
            f"{paid.trans_id} is already attached to sale S-1 at till {second['till_id']}"
        )


async def registered_till_pair(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> tuple[Till, Till, str]:
    """Two tills of one own-shortcode shop, the shortcode's ConfirmationURL at the relay."""
    merchant = await register_shop(sim, ShortcodeKind.TILL)
    creds = PlatformCreds(merchant.consumer_key, merchant.consumer_secret, merchant.passkey)
    shop = await relay.enrol("shop", "add", unique_name("c2b till "))
    second = await relay.enrol("till", "add", shop["shop_id"])
    tills = [
        await make_till(
            tmp_path / name, sim.base_url, enrolment, prefix="OWN",
            shortcode=merchant.shortcode, creds=creds,
        )
        for name, enrolment in (("a", shop), ("b", second))
    ]  # fmt: skip
    url = await token_url(relay, merchant.shortcode, shop["shop_id"])
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as sim_http:
        daraja = Daraja(sim_http, merchant)
        registered = await sim_http.post(
            "/mpesa/c2b/v2/registerurl",
            json={"ShortCode": merchant.shortcode, "ResponseType": "Completed",
                  "ConfirmationURL": url},
            headers=await daraja.bearer(),
        )  # fmt: skip
        assert registered.status_code == 200, registered.text
    return tills[0], tills[1], url


async def drain(engine: PaymentEngine, relay: RelayHandle) -> list[HandledEvent]:
    client = RelayClient(engine, engine.store, engine.till, relay.url, SystemClock())
    seen: list[HandledEvent] = []
    client.on_event(seen.append)
    try:
        await eventually(client.drain)
    finally:
        await client.close()
    return seen


def desk(engine: PaymentEngine, till: Till, relay: RelayHandle) -> C2BDesk:
    claim = c2b_claimer(relay.url, str(till.enrolment["till_key"]))
    return C2BDesk(engine.store, till.shop_id, till.till_id, SystemClock(), claim)


async def test_tills_keep_the_payment_and_the_first_attach_wins_shop_wide(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, second, _ = await registered_till_pair(tmp_path, relay, sim)
    paid = await sim.pay_till(first.shortcode or "", unique_phone(), 150, first_name="MARY")
    async with first.engine() as engine:
        [handled] = await drain(engine, relay)
        assert handled.outcome is EventOutcome.APPLIED
        till_desk = desk(engine, first, relay)
        [kept] = await till_desk.unattached()
        assert (kept.trans_id, kept.amount, kept.first_name) == (paid.trans_id, 150, "MARY")
        assert "*" in kept.payer and kept.payer != paid.phone
        suggested = await till_desk.suggest(150, kept.paid_at)
        assert suggested is not None and suggested.trans_id == paid.trans_id
        assert await till_desk.suggest(151, kept.paid_at) is None
        attached = await till_desk.attach(paid.trans_id, "S-1")
        assert (attached.sale_ref, attached.attached_till) == ("S-1", first.till_id)
        entries = await engine.store.audit.entries(first.shop_id, limit=20)
        assert [e.detail for e in entries if e.action == "c2b.attached"] == [
            {"trans_id": paid.trans_id, "sale_ref": "S-1", "till_id": first.till_id}
        ]
    async with second.engine() as engine:
        await drain(engine, relay)
        other_desk = desk(engine, second, relay)
        with pytest.raises(C2BAttachError) as refused:
            await other_desk.attach(paid.trans_id, "S-7")
        assert refused.value.message == (
            f"{paid.trans_id} is already attached to sale S-1 at till {first.till_id}"
        )
        # Not offered here again: it is known to be the other till's.
        assert await other_desk.unattached() == []
        row = await engine.store.c2b.get(second.shop_id, paid.trans_id)
        assert row is not None and (row.sale_ref, row.attached_till) == ("S-1", first.till_id)


async def test_attach_refuses_bad_input_and_changes_nothing(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, _, _ = await registered_till_pair(tmp_path, relay, sim)
    paid = await sim.pay_till(first.shortcode or "", unique_phone(), 90)
    async with first.engine() as engine:
        await drain(engine, relay)
        till_desk = desk(engine, first, relay)
        cases = [
            ("TKX0000000", "S-1", "no direct payment TKX0000000 has reached this till"),
            (paid.trans_id, "S 1", "must be 1 to 64 letters, digits, '.', '_' or '-'"),
        ]
        for trans_id, sale_ref, message in cases:
            with pytest.raises(C2BAttachError) as refused:
                await till_desk.attach(trans_id, sale_ref)
            assert refused.value.message == message
        [row] = await till_desk.unattached()
        assert row.trans_id == paid.trans_id and row.sale_ref is None
        audit = await engine.store.audit.entries(first.shop_id, limit=50)
        assert not [e for e in audit if e.action == "c2b.attached"]


async def test_a_second_body_for_a_kept_receipt_goes_to_the_manager(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, _, url = await registered_till_pair(tmp_path, relay, sim)
    paid = await sim.pay_till(first.shortcode or "", unique_phone(), 60)
    async with first.engine() as engine:
        await drain(engine, relay)
        [notice] = await sim.notices(shortcode=first.shortcode, kind=NoticeKind.C2B_CONFIRMATION)
        forged = json.loads(notice.payload)
        forged["TransAmount"] = "6000.00"
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.post(url, json=forged)).status_code == 200
        [handled] = await drain(engine, relay)
        assert handled.outcome is EventOutcome.PROBLEM
        row = await engine.store.c2b.get(first.shop_id, paid.trans_id)
        assert row is not None and row.amount == 60
    [problem] = await first.problems()
    assert problem.kind is ProblemKind.UNAPPLIED_EVENT
    assert problem.detail["reason"] == (
        f"a different confirmation body for C2B receipt {paid.trans_id}"
    )


def smartduka(till: Till, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        cwd=till.data_dir.parent,
        env=till.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_c2b_commands_list_and_attach_and_refuse_with_words(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, second, _ = await registered_till_pair(tmp_path, relay, sim)
    paid = await sim.pay_till(first.shortcode or "", unique_phone(), 250, first_name="ANN")
    for till in (first, second):
        async with till.engine() as engine:
            await drain(engine, relay)
    listed = smartduka(first, "c2b", "list", "--unattached", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["trans_id"], row["amount"], row["first_name"]) == (paid.trans_id, 250, "ANN")
    assert row["sale_ref"] is None and paid.phone not in listed.stdout
    table = smartduka(first, "c2b", "list")
    assert paid.trans_id in table.stdout and "KES     250" in table.stdout
    attached = smartduka(first, "c2b", "attach", paid.trans_id.lower(), "S-42")
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.strip() == f"{paid.trans_id} (KES 250) attached to sale S-42"
    refused = smartduka(second, "c2b", "attach", paid.trans_id, "S-43")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"smartduka: error: {paid.trans_id} is already attached to sale S-42 "
        f"at till {first.till_id}"
    )
    unknown = smartduka(first, "c2b", "attach", "TKX0000001", "S-44")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        2,
        "smartduka: error: no direct payment TKX0000001 has reached this till",
    )
    assert json.loads(smartduka(first, "c2b", "list", "--unattached", "--json").stdout) == []
    [kept] = json.loads(smartduka(second, "c2b", "list", "--json").stdout)
    assert (kept["sale_ref"], kept["till_id"]) == ("S-42", first.till_id)


async def test_the_checkout_shows_a_direct_payment_live_and_f6_attaches_it(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, _, _ = await registered_till_pair(tmp_path, relay, sim)
    clock = SystemClock()
    async with first.opened(clock=clock) as opened:
        engine, link = opened.engine, opened.link
        services = AppServices(
            payments=engine,
            clock=clock,
            identity=TillIdentity(engine.shop_id, engine.till_id, "C2B Duka", "OWN"),
            connection=link.connection,
            c2b=opened.c2b,
        )
        app = make_app(engine.settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=SIZE) as pilot:
            checkout = await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
            sale_ref = checkout.sale_ref
            panel = checkout.query_one(C2BPanel)
            paid = await sim.pay_till(first.shortcode or "", unique_phone(), 320, first_name="JO")
            await wait_until(pilot, lambda: bool(panel.waiting), "the payment on the checkout")
            assert paid.trans_id in str(panel.content)
            await put(pilot, "#total", "320")
            await wait_until(pilot, lambda: panel.suggested is not None, "the suggestion")
            await pilot.press("f6")
            notice = checkout.query_one("#notice", Notice)
            await wait_until(pilot, lambda: "PAID directly" in notice.text, "the paid notice")
            assert notice.text == (
                f"✔ PAID directly: sale {sale_ref}, KES 320, M-Pesa receipt {paid.trans_id}."
            )
            row = await engine.store.c2b.get(engine.shop_id, paid.trans_id)
            assert row is not None and row.sale_ref == sale_ref
            await wait_until(pilot, lambda: not panel.waiting, "the panel emptied")
            # The next sale gets the next number: the attached payment holds this one (it was
            # offered again when only STK attempts counted).
            await wait_until(
                pilot, lambda: checkout.sale_ref not in ("", sale_ref), "the next sale number"
            )
            assert await engine.sales.ref_in_use(sale_ref)
            assert not await engine.sales.ref_in_use(checkout.sale_ref)


async def test_the_panel_shows_a_payment_when_the_feed_stores_it_not_at_the_next_tick(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """The app's clock is stopped here, so its tick never re-reads the store: the payment
    can reach the checkout only because the feed tells the panel it stored one."""
    first, _, _ = await registered_till_pair(tmp_path, relay, sim)
    clock = SystemClock()
    stopped = ManualClock()
    async with first.opened(clock=clock) as opened:
        engine, link = opened.engine, opened.link
        services = AppServices(
            payments=engine,
            clock=stopped,
            identity=TillIdentity(engine.shop_id, engine.till_id, "C2B Duka", "OWN"),
            connection=link.connection,
            c2b=opened.c2b,
        )
        app = make_app(engine.settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=SIZE) as pilot:
            checkout = await wait_for_screen(pilot, CheckoutScreen)
            panel = checkout.query_one(C2BPanel)
            await wait_until(pilot, lambda: "none waiting" in str(panel.content), "the panel")
            paid = await sim.pay_till(first.shortcode or "", unique_phone(), 410, first_name="AL")
            await wait_until(pilot, lambda: bool(panel.waiting), "the payment on the checkout")
            assert paid.trans_id in str(panel.content)
            assert stopped.sleepers >= 1  # the tick is still parked on the stopped clock
            second = await sim.pay_till(first.shortcode or "", unique_phone(), 411)
            await wait_until(pilot, lambda: len(panel.waiting) == 2, "the second payment")
            assert second.trans_id in str(panel.content)


async def test_the_sales_qr_is_shown_and_its_payment_is_attached_to_the_sale(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, _, _ = await registered_till_pair(tmp_path, relay, sim)
    clock = SystemClock()
    async with first.opened(clock=clock) as opened:
        engine, link = opened.engine, opened.link
        desk_ = opened.c2b
        assert desk_ is not None and desk_.offers_qr
        services = AppServices(
            payments=engine,
            clock=clock,
            identity=TillIdentity(engine.shop_id, engine.till_id, "QR Duka", "OWN"),
            connection=link.connection,
            c2b=desk_,
        )
        app = make_app(engine.settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=SIZE) as pilot:
            checkout = await wait_for_screen(pilot, CheckoutScreen)
            await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
            sale_ref = checkout.sale_ref
            await put(pilot, "#total", "275")
            await pilot.press("f7")
            shown = await wait_for_screen(pilot, QrScreen)
            assert (shown.qr.sale_ref, shown.qr.amount) == (sale_ref, 275)
            assert shown.qr.request_id
            # Readable at 80x24: every line fits, and the code leaves room for its caption.
            assert all(len(line) <= 80 for line in shown.qr.lines)
            assert len(shown.qr.lines) <= 22 and set("".join(shown.qr.lines)) <= set("█▀▄ ")
            paid = await sim.pay_till(
                first.shortcode or "", unique_phone(), 275, qr_request_id=shown.qr.request_id
            )
            await pilot.press("escape")
            await wait_for_screen(pilot, CheckoutScreen)
            panel = checkout.query_one(C2BPanel)
            await wait_until(
                pilot,
                lambda: panel.suggested is not None and panel.suggested.trans_id == paid.trans_id,
                "the QR payment suggested for the sale",
            )
            await pilot.press("f6")
            await wait_until(pilot, lambda: not panel.waiting, "the payment attached")
            row = await engine.store.c2b.get(engine.shop_id, paid.trans_id)
            assert row is not None and (row.sale_ref, row.amount) == (sale_ref, 275)
