from __future__ import annotations

from smartduka_tui.model import AttemptState
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness


async def test_paid_by_callback(shop_till: TillHarness) -> None:
    phone = unique_phone()
    view = await shop_till.engine.start_payment("S1", 10, phone)
    assert view.state is AttemptState.PENDING
    await shop_till.sim.advance_clock(5)
    await shop_till.settle()
    view = await shop_till.engine.get(view.attempt_id)
    assert view.state is AttemptState.COMPLETED, view
    assert view.receipt
