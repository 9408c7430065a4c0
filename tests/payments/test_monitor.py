"""The monitor: repeated failures for a phone or a shop within a window become one problem
for the manager each time the count reaches its threshold."""

from __future__ import annotations

from pathlib import Path

from smartduka_tui.model import AttemptState, ProblemKind
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess

MONITOR = {"failures_per_phone": 2, "failures_per_shop": 3, "window_s": 60}


async def fail_once(h: TillHarness, sale: str, phone: str) -> None:
    await h.sim.set_phone_scenario(phone, result_code=1032)
    view = await h.engine.start_payment(sale, 10, phone)
    await h.advance_sim(2)
    assert (await h.view(view.attempt_id)).state is AttemptState.FAILED


async def patterns(h: TillHarness) -> list[str]:
    problems = await h.store.problems.list(h.shop_id)
    return sorted(
        str(p.detail["pattern"]) for p in problems if p.kind is ProblemKind.SUSPICIOUS_PATTERN
    )


async def test_failures_for_one_phone_are_reported_once(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url, monitor=MONITOR) as h:
        phone = unique_phone()
        await fail_once(h, "M1", phone)
        assert await patterns(h) == []
        await fail_once(h, "M2", phone)
        assert await patterns(h) == ["failures_for_phone"]
        problem = (await h.store.problems.list(h.shop_id))[0]
        assert problem.detail["phone"] != phone, "masked for the manager's list"
        await fail_once(h, "M3", phone)
        assert await patterns(h) == ["failures_for_phone", "failures_for_shop"]


async def test_failures_spread_beyond_the_window_are_not_reported(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url, monitor=MONITOR) as h:
        phone = unique_phone()
        await fail_once(h, "W1", phone)
        h.clock.advance(61)
        await fail_once(h, "W2", phone)
        h.clock.advance(61)
        await fail_once(h, "W3", unique_phone())
        assert await patterns(h) == []


async def test_failures_across_phones_add_up_for_the_shop(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url, monitor=MONITOR) as h:
        for n in range(3):
            await fail_once(h, f"S{n}", unique_phone())
        assert await patterns(h) == ["failures_for_shop"]
