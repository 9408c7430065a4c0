"""Reconciler benchmark: 1,000 pending attempts whose callbacks are lost, settled by STK query.

Run: `.venv/bin/python bench/reconcile.py [--attempts N] [--qps Q] [--concurrency C]`

The Daraja simulator runs as a real process on loopback. A till (real SQLite file, real
engine, system clock) pushes N payments to N phones; their callbacks go to a closed port, so
every one is lost, as when the relay is down. Once the simulator has settled them, one
reconciler pass queries them all, paced at Q queries per second for the shortcode with at most
C in flight. Printed: the pass's wall time, queries per attempt (from the simulator's own
request log), the peak query rate in any one-second window against the configured rate, and
how many attempts ended COMPLETED.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartduka_tui.clock import SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.demo_shop import add_simulator_shop
from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import PaymentRefused
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store import Store, create_keyring
from smartduka_tui.store.store import database_path, keyring_path
from smartduka_tui.till import open_till

CLOSED_PORT_URL = "http://127.0.0.1:9"


def start_simulator(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = workdir / "sim.port"
    log = open(workdir / "sim.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartduka_tui.simulator", "serve", "--port", "0",
         "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ready.exists() or not ready.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the simulator did not start; see " + str(workdir / "sim.log"))
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{int(ready.read_text())}"


async def set_up_till(data_dir: Path, sim: SimulatorControl) -> tuple[str, str]:
    create_keyring(keyring_path(data_dir))
    from smartduka_tui.store.vault import load_keyring

    store = await Store.open(
        database_path(data_dir), clock=SystemClock(), keyring=load_keyring(keyring_path(data_dir))
    )
    try:
        shop = await add_simulator_shop(
            store,
            sim,
            shop_id="benchshop",
            name="Bench shop",
            prefix="B",
            till_id="till1",
            relay_url=CLOSED_PORT_URL,
        )
    finally:
        await store.close()
    return shop.shop_id, shop.shortcode


def peak_per_second(stamps: list[float]) -> int:
    """The most queries that fell in any one-second window."""
    stamps.sort()
    best, start = 0, 0
    for end, moment in enumerate(stamps):
        while moment - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="smartduka-bench-reconcile-"))
    proc, sim_url = start_simulator(workdir)
    try:
        async with SimulatorControl(sim_url) as sim:
            data_dir = workdir / "till"
            data_dir.mkdir()
            shop_id, shortcode = await set_up_till(data_dir, sim)
            settings = Settings(
                data_dir=data_dir,
                shop_id=shop_id,
                daraja={"base_url": sim_url},
                timings={"reconcile_min_age_s": 0},
                limits={
                    "pushes_per_minute": 1_000_000,
                    "queries_per_second": args.qps,
                    "reconcile_concurrency": args.concurrency,
                },
            )
            # The till as the app opens it, less what the run drives itself: the reconciler
            # (its passes are timed here), the Daraja probe, and the relay (a closed port).
            async with open_till(
                settings,
                run_reconciler=False,
                probe_daraja=False,
                read_feed=False,
                no_relay_url=CLOSED_PORT_URL,
            ) as till:
                await run(till.engine, sim, shortcode, args)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def run(
    engine: PaymentEngine, sim: SimulatorControl, shortcode: str, args: argparse.Namespace
) -> None:
    n = args.attempts
    phones = [f"25479{8000000 + i:07d}"[:12] for i in range(n)]
    started = time.perf_counter()
    pending = 0
    for batch in range(0, n, 25):

        async def one(i: int) -> bool:
            try:
                view = await engine.start_payment(f"B{i}", 10 + i % 50, phones[i])
            except PaymentRefused as error:
                print(f"push {i} refused: {error.message}")
                return False
            return view.state is AttemptState.PENDING

        done = await asyncio.gather(*(one(i) for i in range(batch, min(n, batch + 25))))
        pending += sum(done)
    pushed_s = time.perf_counter() - started
    print(f"pushed {n} payments in {pushed_s:.1f} s; {pending} PENDING, callbacks all lost")
    await sim.advance_clock(5)  # every prompt answered (callbacks fail: nothing listens)
    before = await sim.requests(shortcode=shortcode)
    since = before[-1].seq if before else 0

    started = time.perf_counter()
    report = await engine.reconcile_once()
    wall = time.perf_counter() - started

    queries = [
        r for r in await sim.requests(shortcode=shortcode, since=since) if "stkpushquery" in r.path
    ]
    stamps = [r.received_at.timestamp() for r in queries]
    states = Counter(
        a.state.value for a in await engine.store.attempts.live(engine.shop_id, engine.till_id)
    )
    open_after = sum(states.values())
    print(f"reconciler pass over {report.examined} pending attempts")
    print(f"  wall time            {wall:.1f} s")
    print(f"  queries              {len(queries)} ({len(queries) / n:.2f} per attempt)")
    print(f"  settled              {report.settled} (still open: {open_after})")
    print(f"  peak query rate      {peak_per_second(stamps)} in any 1 s window (at the simulator)")
    print(f"  configured rate      {args.qps:g}/s per shortcode, {args.concurrency} in flight")
    print(f"  floor at that rate   {(n - 1) / args.qps:.1f} s (queries evenly spaced)")
    print(f"  machine load (1 min) {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--qps", type=float, default=50.0, help="queries per second allowed")
    parser.add_argument("--concurrency", type=int, default=4, help="queries in flight")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
