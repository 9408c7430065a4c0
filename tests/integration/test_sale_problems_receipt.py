"""A receipt code the customer shows for a sale left part paid (issue #15), on the real relay
and simulator: the receipt pays the M-Pesa part the cancelled prompt did not, so the sale is
paid and its "Part paid" problem resolved in the same transaction, naming the receipt."""

from __future__ import annotations

from pathlib import Path

from smartduka_tui.model import ProblemKind, SaleState, TenderKind
from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle
from tests.integration.test_verify_receipt import counter
from tests.shifts.conftest import open_test_shift


async def test_a_receipt_code_for_a_part_paid_sale_pays_it_and_resolves_its_problem(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    async with counter(tmp_path, relay, sim) as c:
        engine = c.engine
        await open_test_shift(engine.store, engine.shop_id, engine.till_id)
        await engine.sales.take_cash("0071", 1000, 400, part=400)
        await c.failed_sale(sim, "0071", 600)  # the customer cancelled the prompt
        await engine.sales.abandon("0071")  # and the cashier moved on
        # The customer comes back having paid the till directly, and shows the receipt.
        paid = await sim.pay_till(c.shortcode, unique_phone(), 600)
        verdict = await c.service.verify_receipt(paid.trans_id, "0071")
        assert verdict.accepted, verdict
        sale = await engine.sales.get("0071")
        assert sale is not None and (sale.state, sale.owed) == (SaleState.PAID, 0)
        assert [(t.kind, t.amount, t.receipt) for t in sale.tenders] == [
            (TenderKind.CASH, 400, None),
            (TenderKind.MPESA_STK, 600, paid.trans_id),
        ]
        problems = await engine.store.problems.list(engine.shop_id, include_resolved=True)
        [problem] = [p for p in problems if p.kind is ProblemKind.ABANDONED_SALE]
        assert problem.resolved_at is not None
        assert problem.resolution_note == f"Paid in full by late M-Pesa receipt {paid.trans_id}"
