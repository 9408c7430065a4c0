"""Statement protocol benchmark: the protocol layer's share of the statement targets.

Run: `.venv/bin/python bench/statement_protocol.py [--payments N] [--page-size P]`

- Pull: N direct payments are made on an in-process simulator (ManualClock), then read back
  through `DarajaClient.pull_transactions`, page by page, as the reconciler will; the wall time
  covers HTTP in process, the simulator's paging and the till's parsing (issue #14 gives 2 s
  for a pull of 10,000 matched against 100,000 attempts; matching is not built yet).
- C2B: `parse_c2b_payment` on the repo's masked-MSISDN sample, per confirmation (p50/p99).
- QR: a QR API answer drawn as half blocks (`qr_to_half_blocks`), per image (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartduka_tui.clock import ManualClock
from smartduka_tui.mpesa.client import DarajaClient
from smartduka_tui.mpesa.qr import qr_to_half_blocks
from smartduka_tui.mpesa.requests import DarajaCredentials, MerchantConfig, MerchantKind
from smartduka_tui.mpesa.statement import parse_c2b_payment
from smartduka_tui.mpesa.statement_requests import (
    build_pull_query,
    build_pull_register,
    build_qr_code,
)
from smartduka_tui.simulator.app import create_app
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.engine import SimulatorConfig

SAMPLE = (
    Path(__file__).resolve().parent.parent
    / "tests/data/daraja/payloads/c2b_confirmation_v2_masked_msisdn.json"
)


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"


async def bench_pull(payments: int, page_size: int) -> None:
    clock = ManualClock()
    app = create_app(SimulatorConfig(), clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        SimulatorControl("http://sim.bench", transport=transport) as sim,
        DarajaClient("http://sim.bench", clock, transport=transport) as client,
    ):
        view = await sim.register_shortcode(
            passkey="bench",
            consumer_key="benchkey",
            consumer_secret="benchsecret",
            settings={"pull_page_size": page_size},
        )
        merchant = MerchantConfig(
            kind=MerchantKind.PAYBILL,
            business_shortcode=view.shortcode,
            passkey="bench",
            credentials=DarajaCredentials(consumer_key="benchkey", consumer_secret="benchsecret"),
        )
        await client.register_pull(
            merchant,
            build_pull_register(
                view.shortcode, nominated_number="254712345678", callback_url="http://127.0.0.1:9/p"
            ),
        )
        seeded = time.perf_counter()
        for n in range(payments):
            await sim.pay_till(view.shortcode, f"2547{n:08d}", str(1 + n % 500))
        seeding = time.perf_counter() - seeded
        now = clock.now() + timedelta(seconds=1)
        start = time.perf_counter()
        rows = pages = 0
        while True:
            request = build_pull_query(
                view.shortcode, start=now - timedelta(hours=47), end=now, offset=rows, now=now
            )
            page = await client.pull_transactions(merchant, request)
            if page.empty:
                break
            pages += 1
            rows += len(page.transactions)
        elapsed = time.perf_counter() - start
        print(
            f"pull: {rows:,} transactions in {pages} pages of {page_size} in {elapsed:.2f} s "
            f"({rows / elapsed:,.0f} rows/s; seeding {payments:,} payments took {seeding:.1f} s)"
        )
        answer = await client.generate_qr(
            merchant,
            build_qr_code(
                merchant_name="Bench Duka", reference="SALE-1", amount=150, cpi=view.shortcode
            ),
        )
        png = base64.b64decode(answer.qr_code)
        samples = []
        for _ in range(50):
            began = time.perf_counter()
            lines = qr_to_half_blocks(png)
            samples.append(time.perf_counter() - began)
        print(f"qr: {len(lines[0])}x{len(lines)} characters, {_percentiles(samples)} per image")


def bench_c2b(repeats: int) -> None:
    body = SAMPLE.read_bytes()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        parse_c2b_payment(body)
        samples.append(time.perf_counter() - began)
    print(f"c2b: parse_c2b_payment {_percentiles(samples)} per confirmation ({repeats:,} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    bench_c2b(20_000)
    asyncio.run(bench_pull(args.payments, args.page_size))


if __name__ == "__main__":
    main()
