"""Cashier app memory: resident size before the first sale and after N sales, and what grew.

Run: `.venv/bin/python bench/memory.py [--sales N] [--top K]`

The same session as `bench/tui.py`'s memory part (the demo stack as real processes on
loopback; the app headless in this process with its engine, relay client and probe; a scripted
cashier through N sales each paid through the relay's feed), with `tracemalloc` on from just
before the first sale: printed are VmRSS before the first sale and after the last (target
<= 100 MB), the peak (VmHWM), and the K source lines whose live allocations grew most over the
sales. tracemalloc makes everything slower and adds its own memory (not counted in the growth
by line, but in RSS), so the RSS figures of `bench/tui.py` are the ones to quote; this one says
where memory goes. The machine's load is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tui import compile_project, memory_kb, ring_up, wait_for
from smartduka_tui.cli.app import till_services
from smartduka_tui.cli.demo import Demo, demo_environment
from smartduka_tui.clock import SystemClock
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.services import UiOptions


async def session(demo: Demo, sales: int, top: int) -> None:
    async with SimulatorControl(demo.simulator.url) as sim:
        await sim.update_settings(callback_delay_s=0.05)
    limits = demo.settings.limits.model_copy(update={"pushes_per_minute": 10_000})
    settings = demo.settings.model_copy(update={"limits": limits})
    async with till_services(settings, clock=SystemClock()) as services:
        app = make_app(settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=(80, 24)) as pilot:
            checkout = await wait_for(pilot, CheckoutScreen)
            while not checkout.sale_ref:
                await pilot.pause(0.01)
            gc.collect()
            before = memory_kb()
            tracemalloc.start()
            first = tracemalloc.take_snapshot()
            started = time.monotonic()
            await ring_up(pilot, checkout, sales)
            took = time.monotonic() - started
            gc.collect()
            last = tracemalloc.take_snapshot()
            after = memory_kb()
            tracemalloc.stop()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"memory: {sales} sales in {took:.1f} s; load average {load} on {os.cpu_count()}")
    print(f"  VmRSS before the first sale   {before['VmRSS'] / 1024:7.1f} MB")
    print(f"  VmRSS after the last sale     {after['VmRSS'] / 1024:7.1f} MB  (with tracemalloc)")
    print(f"  VmHWM (peak resident)         {after['VmHWM'] / 1024:7.1f} MB")
    stats = last.compare_to(first, "lineno")
    grown = sum(stat.size_diff for stat in stats)
    print(f"  live Python allocations grew {grown / 1024 / 1024:.1f} MB; the {top} lines most:")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"    {stat.size_diff / 1024:9.1f} KiB  {stat.count_diff:+7d} blocks  {where}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=100, help="sales to make")
    parser.add_argument("--top", type=int, default=15, help="source lines to list")
    args = parser.parse_args()
    compile_project()
    async with demo_environment() as demo:
        await session(demo, args.sales, args.top)


if __name__ == "__main__":
    asyncio.run(main())
