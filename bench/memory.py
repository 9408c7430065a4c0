"""Cashier app memory: resident size before the first sale, after 1, 10 and N, and what grew.

Run: `.venv/bin/python bench/memory.py [--sales N] [--top K]`

The same session as `bench/tui.py`'s memory part (the demo stack as real processes on
loopback; the app headless in a till process of its own, `in_till_process`, with its engine,
relay client and probe; a scripted cashier through N sales each paid through the relay's
feed), with `tracemalloc` on from just before the first sale. At sale 1, 10 and N it prints
VmRSS, the modules loaded since the last checkpoint (by package: memory that is code, loaded
once on first use), and the K source lines whose live allocations grew most since then (memory
that is objects: what a sale leaves behind shows here as growth between 10 and N). tracemalloc
makes everything slower and adds its own memory (not in the growth by line, but in RSS), so
the RSS figures of `bench/tui.py` are the ones to quote; this one says where memory goes. The
machine's load is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tui import (
    TILL_PROCESS,
    bench_settings,
    compile_project,
    customer_answers_at_once,
    in_till_process,
    memory_kb,
    ring_up,
    settings_from,
    wait_for,
)
from smartduka_tui.cli.app import till_services
from smartduka_tui.clock import SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.services import UiOptions


class Checkpoints:
    """What changed between sale checkpoints: resident size, modules, allocations by line."""

    def __init__(self, top: int, at: set[int]) -> None:
        self.top = top
        self.at = at
        self.modules = set(sys.modules)
        self.snapshot = tracemalloc.take_snapshot()
        self.since = "before the first sale"

    def __call__(self, sales: int) -> None:
        if sales not in self.at:
            return
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        loaded = set(sys.modules) - self.modules
        print(f"  sale {sales}: VmRSS {memory_kb()['VmRSS'] / 1024:.1f} MB (with tracemalloc)")
        by_package = Counter(name.split(".")[0] for name in loaded)
        listed = ", ".join(f"{name} {count}" for name, count in by_package.most_common(12))
        print(f"    {len(loaded)} modules loaded since {self.since}: {listed or 'none'}")
        stats = snapshot.compare_to(self.snapshot, "lineno")
        grown = sum(stat.size_diff for stat in stats)
        print(f"    live Python allocations grew {grown / 1024 / 1024:.2f} MB; most by line:")
        for stat in stats[: self.top]:
            frame = stat.traceback[0]
            where = f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
            print(f"      {stat.size_diff / 1024:9.1f} KiB  {stat.count_diff:+7d} blocks  {where}")
        self.modules |= loaded
        self.snapshot = snapshot
        self.since = f"sale {sales}"


async def session(settings: Settings, sales: int, top: int) -> None:
    """The till's side (in its own process: `in_till_process`)."""
    async with till_services(settings, clock=SystemClock()) as services:
        app = make_app(settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=(80, 24)) as pilot:
            checkout = await wait_for(pilot, CheckoutScreen)
            while not checkout.sale_ref:
                await pilot.pause(0.01)
            gc.collect()
            before = memory_kb()
            tracemalloc.start()
            checkpoints = Checkpoints(top, {1, 10, sales})
            started = time.monotonic()
            await ring_up(pilot, checkout, sales, checkpoints)
            took = time.monotonic() - started
            gc.collect()
            after = memory_kb()
            tracemalloc.stop()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"memory: {sales} sales in {took:.1f} s; load average {load} on {os.cpu_count()}")
    print(f"  VmRSS before the first sale   {before['VmRSS'] / 1024:7.1f} MB")
    print(f"  VmRSS after the last sale     {after['VmRSS'] / 1024:7.1f} MB  (with tracemalloc)")
    print(f"  VmHWM (peak resident)         {after['VmHWM'] / 1024:7.1f} MB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=100, help="sales to make")
    parser.add_argument("--top", type=int, default=8, help="source lines to list")
    parser.add_argument(TILL_PROCESS, metavar="SETTINGS_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.till_process:
        await session(settings_from(args.till_process), args.sales, args.top)
        return
    from smartduka_tui.cli.demo import demo_environment

    compile_project()
    async with demo_environment() as demo:
        await customer_answers_at_once(demo)
        extra = ("--sales", str(args.sales), "--top", str(args.top))
        await in_till_process(Path(__file__), bench_settings(demo), *extra)


if __name__ == "__main__":
    asyncio.run(main())
