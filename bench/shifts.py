"""Shift reports benchmark: the X report and the close (Z number, expected cash, the Z report
stored) of one till's shift holding many sales, beside the pulled statement, through the
shift desk the CLI and the Shifts screen call.

Run: `.venv/bin/python bench/shifts.py [--sales N] [--repeats R]`

A busy shift is written straight into the sales tables (a third cash with change, a third
M-Pesa, a sixth split, a sixth direct; one in fifty refunded), with the statement's rows for
its M-Pesa receipts (one in a hundred missing, a few the till does not know) and another
till's sales beside it. Then the X report is timed (p50/p99 over repeats, after one warm-up),
its text rendering, and one close. The machine's load is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store import open_bench_store
from smartduka_tui.clock import ManualClock
from smartduka_tui.config import PrinterSettings
from smartduka_tui.payments.shift_report import ReportKind, render_text
from smartduka_tui.payments.shifts import ShiftDesk
from smartduka_tui.store import Store
from smartduka_tui.store.records import to_ms


async def fill(store: Store, shop_id: str, tills: list[str], clock: ManualClock, n: int) -> None:
    start = to_ms(clock.now())
    sales: list[list[object]] = []
    tenders: list[list[object]] = []
    pulled: list[list[object]] = []
    for i in range(n):
        till = tills[0] if i % 5 else tills[1]
        at = start + 1000 + i * 1000
        ref = f"B{i:07d}"
        total = 50 + (i * 37) % 2000
        state = "REFUNDED" if i % 50 == 7 else "PAID"
        sales.append([ref, till, total, state, at])
        kind = i % 6
        if kind in (0, 1):
            tenders.append([ref, till, "CASH", total, total + 100, 100, None, at])
        elif kind in (2, 3):
            tenders.append([ref, till, "MPESA_C2B", total, None, None, f"R{i:09d}", at])
        else:
            half = total // 2
            tenders.append([ref, till, "CASH", half, half, 0, None, at])
            tenders.append([ref, till, "MPESA_C2B", total - half, None, None, f"R{i:09d}", at])
        if kind >= 2 and i % 100 != 3:
            amount = total if kind < 4 else total - total // 2
            pulled.append([f"R{i:09d}", amount, at])
        if i % 500 == 11:
            pulled.append([f"U{i:09d}", 100, at])
    async with store.write() as tx:
        await tx.execute(
            "INSERT INTO sales (shop_id, till_id, sale_ref, total, state, opened_at, closed_at,"
            " updated_at) SELECT ?, value ->> 1, value ->> 0, value ->> 2, value ->> 3,"
            " value ->> 4, value ->> 4, value ->> 4 FROM json_each(?)",
            (shop_id, json.dumps(sales)),
        )
        await tx.execute(
            "INSERT INTO sale_tenders (shop_id, sale_ref, till_id, kind, amount, cash_given,"
            " change_given, receipt_number, at) SELECT ?, value ->> 0, value ->> 1, value ->> 2,"
            " value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7 FROM json_each(?)",
            (shop_id, json.dumps(tenders)),
        )
        await tx.execute(
            "INSERT INTO pulled_transactions (shop_id, transaction_id, shortcode, amount,"
            " paid_at, payer, bill_ref, transaction_type, pulled_at) SELECT ?, value ->> 0,"
            " '174379', value ->> 1, value ->> 2, '2547****000', '', 'Pay Bill', ? FROM"
            " json_each(?)",
            (shop_id, start, json.dumps(pulled)),
        )
    clock.advance(n + 60)


async def main(n: int, repeats: int) -> None:
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as folder:
        store, shop_id, tills = await open_bench_store(Path(folder), clock)
        try:
            desk = ShiftDesk(store, shop_id, tills[0], PrinterSettings())
            await desk.open(5000, "Bench")
            loading = time.perf_counter()
            await fill(store, shop_id, tills, clock, n)
            print(f"wrote {n:,} sales in {time.perf_counter() - loading:.1f} s")
            await desk.x_report(via="bench")  # warm-up
            times, reads = [], []
            shift = await desk.current()
            assert shift is not None
            for _ in range(repeats):
                began = time.perf_counter()
                report = await desk.x_report(via="bench")
                times.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                # The report alone, without the audited write ("X viewed") around it.
                await desk._build(shift, ReportKind.X, clock.now(), reader=None)
                reads.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            text = render_text(report)
            render_ms = (time.perf_counter() - began) * 1000
            clock.advance(timedelta(minutes=1).total_seconds())
            began = time.perf_counter()
            closed = await desk.close(report.expected_cash, via="bench")
            close_ms = (time.perf_counter() - began) * 1000
        finally:
            await store.close()

    def p99(values: list[float]) -> float:
        return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]

    print(
        f"this till's sales in the report: {report.sales:,}; statement receipts only on the "
        f"statement {len(report.statement.only_statement)}, only on the till "
        f"{len(report.statement.only_till)}; report text {len(text.splitlines()):,} lines"
    )
    print(
        f"X report, audited: p50 {statistics.median(times):.1f} ms, p99 {p99(times):.1f} ms; "
        f"its reads and build alone: p50 {statistics.median(reads):.1f} ms, "
        f"p99 {p99(reads):.1f} ms ({repeats} runs)"
    )
    print(f"text rendering: {render_ms:.1f} ms")
    print(f"close (Z {closed.shift.z_number}, report stored): {close_ms:.1f} ms")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=20)
    options = parser.parse_args()
    asyncio.run(main(options.sales, options.repeats))
