"""A split with a direct payment over loopback: part of a sale in cash, the rest paid by the
customer straight to the shortcode (the real simulator), its confirmation through the real
relay's feed, and F6's attach claiming it at the relay. The direct payment must be exactly what
the sale still owes; one that is not is refused before any claim, and nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartduka_tui.model import SaleState, TenderKind
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.c2b import C2BAttachError
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle
from tests.integration.test_c2b_e2e import desk, drain, registered_till_pair
from tests.shifts.conftest import open_test_shift


async def test_part_cash_then_a_direct_payment_of_exactly_the_rest(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    first, _, _ = await registered_till_pair(tmp_path, relay, sim)
    shortcode = first.shortcode or ""
    short = await sim.pay_till(shortcode, unique_phone(), 90)
    exact = await sim.pay_till(shortcode, unique_phone(), 150)
    async with first.engine() as engine:
        await drain(engine, relay)
        till_desk = desk(engine, first, relay)
        await open_test_shift(engine.store, engine.shop_id, engine.till_id)  # cash needs one
        taken = await engine.sales.take_cash("SPLIT1", 500, 400, part=350)
        assert (taken.change, taken.sale.owed) == (50, 150)
        with pytest.raises(C2BAttachError) as refused:
            await till_desk.attach(short.trans_id, "SPLIT1")
        assert refused.value.message == (
            "KES 90 is not the KES 150 still owed on sale SPLIT1: a direct payment must pay "
            "exactly the rest"
        )
        row = await engine.store.c2b.get(first.shop_id, short.trans_id)
        assert row is not None and row.sale_ref is None
        sale = await engine.sales.get("SPLIT1")
        assert sale is not None and (sale.state, sale.owed) == (SaleState.OPEN, 150)
        attached = await till_desk.attach(exact.trans_id, "SPLIT1")
        assert attached.sale_ref == "SPLIT1"
        sale = await engine.sales.get("SPLIT1")
        assert sale is not None
        assert sale.state is SaleState.PAID
        assert [(t.kind, t.amount, t.receipt) for t in sale.tenders] == [
            (TenderKind.CASH, 350, None),
            (TenderKind.MPESA_C2B, 150, exact.trans_id),
        ]
        # The payment that did not fit is still there for another sale.
        assert [r.trans_id for r in await till_desk.unattached()] == [short.trans_id]
