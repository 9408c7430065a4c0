"""The receipt-code screen (F5) on the real app, engine and simulator, driven with Pilot, with
80x24 snapshots of each of its states. The simulator posts Transaction Status results to the
till's signed result URL at the loopback receiver, which (standing in for the relay's intake
only as far as STK callbacks go) refuses them: the test plays the relay's feed and hands the
result the simulator sent to the till, as `RelayClient` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.gateway import daraja_client
from smartduka_tui.payments.statement import ResultEvent, StatementService
from smartduka_tui.simulator.statement_schemas import NoticeKind
from smartduka_tui.store.secret import Secret
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.failure import FailureScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.verify_receipt import VerifyReceiptScreen
from tests.manager.screen_text import screen_lines
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess
from tests.ui.conftest import SIZE, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import answer, put, script, start_sale
from tests.ui.test_snapshots import shot, svg  # noqa: F401 - the fixture

INITIATOR = ("apiop1", "Initiator-Pass1")


@pytest.fixture
async def receipt_till(
    tmp_path: Path, simulator: ServerProcess
) -> AsyncIterator[tuple[TillHarness, StatementService]]:
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=False) as harness:
        await harness.sim.set_initiator(harness.shortcode, *INITIATOR)
        await harness.sim.set_async_results(harness.shortcode, delay_s=0)
        certificate = tmp_path / "simulator.pem"
        certificate.write_bytes(await harness.sim.certificate())
        async with harness.store.write() as tx:
            await harness.store.initiators.set(tx, harness.shop_id, *(Secret(v) for v in INITIATOR))
        daraja = harness.settings.daraja.model_copy(update={"certificate_file": certificate})
        harness.engine.settings = harness.settings.model_copy(update={"daraja": daraja})
        service = StatementService(
            harness.engine, daraja_client(harness.engine.settings, harness.clock)
        )
        try:
            yield harness, service
        finally:
            await service.aclose()


async def play_relay(pilot: Any, harness: TillHarness, service: StatementService) -> None:
    """Hand the till the result the simulator sent for its open request (found by receipt)."""
    row = None
    while row is None:
        row = await harness.store.db.fetchone(
            "SELECT request_ref, receipt FROM statement_requests WHERE state = 'sent'"
        )
        await pilot.pause(0.05)
    payloads: list[str] = []
    while not payloads:
        notices = await harness.sim.notices(
            shortcode=harness.shortcode, kind=NoticeKind.TRANSACTION_STATUS_RESULT
        )
        payloads = [n.payload for n in notices if row["receipt"] in n.payload]
        await pilot.pause(0.05)
    await service.accept_result(
        ResultEvent(
            harness.shop_id, harness.till_id, row["request_ref"], False, payloads[0].encode()
        )
    )


async def test_a_receipt_code_on_the_failure_screen_pays_the_sale(
    receipt_till: tuple[TillHarness, StatementService],
    svg: SnapshotAssertion,  # noqa: F811
) -> None:
    harness, service = receipt_till
    phone = await script(harness, "254712000909", result_code=1032)
    app = build_app(harness)
    app.services.receipt_checks = service
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 450, phone)
        await answer(harness)
        failure: Any = await wait_for_screen(pilot, FailureScreen)
        await wait_until(pilot, lambda: failure.check_action("verify_receipt", ()), "F5")
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert "f5 Receipt code" in footer and len(footer.rstrip()) <= SIZE[0], footer
        await pilot.press("f5")
        dialog: Any = await wait_for_screen(pilot, VerifyReceiptScreen)
        await put(pilot, "#receipt-code", "tkq9 zz1a2b")
        await shot(pilot, svg, "verify_receipt_typed")

        await pilot.press("enter")
        await play_relay(pilot, harness, service)
        await wait_until(pilot, lambda: dialog.verdict is not None, "the verdict")
        assert dialog.verdict.message == (
            "No such payment: M-Pesa knows no receipt TKQ9ZZ1A2B paid to this till."
        )
        await shot(pilot, svg, "verify_receipt_no_such_payment")
        assert (await harness.engine.get(failure.view.attempt_id)).state is AttemptState.FAILED

        # The customer's real receipt: the sale is paid and the receipt screen follows.
        paid = await harness.sim.pay_till(harness.shortcode, "254712000910", 450)
        await put(pilot, "#receipt-code", paid.trans_id)
        await pilot.press("enter")
        await play_relay(pilot, harness, service)
        success: Any = await wait_for_screen(pilot, SuccessScreen)
        assert success.view.receipt == paid.trans_id and success.view.late


async def test_the_checkout_offers_a_check_only(
    receipt_till: tuple[TillHarness, StatementService],
    svg: SnapshotAssertion,  # noqa: F811
) -> None:
    harness, service = receipt_till
    app = build_app(harness)
    app.services.receipt_checks = service
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await pilot.press("f5")
        await wait_for_screen(pilot, VerifyReceiptScreen)
        await put(pilot, "#receipt-code", "TKQ9-ZZ1")
        await pilot.press("enter")
        dialog: Any = pilot.app.screen
        await wait_until(pilot, lambda: dialog.verdict is not None, "the verdict")
        assert dialog.verdict.message == (
            "That is not an M-Pesa receipt code: 10 letters and digits, e.g. TKQ9ZZ1A2B."
        )
        await shot(pilot, svg, "verify_receipt_check_only_malformed")
        await pilot.press("escape")
        await wait_for_screen(pilot, CheckoutScreen)


async def test_without_receipt_checks_the_key_is_not_offered(
    receipt_till: tuple[TillHarness, StatementService],
) -> None:
    harness, _ = receipt_till
    app = build_app(harness)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        assert checkout.check_action("verify_receipt", ()) is False
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(pilot.app.screen, CheckoutScreen)
