"""Store benchmark: 100,000 attempts with their audit entries, then the manager's queries.

Run: `.venv/bin/python bench/store.py [--attempts N] [--repeats R]`

Every attempt goes through the repositories as the engine drives it: created, push accepted
(PENDING), then its final state (or left live), each step with its audit entry. Two insert
figures are printed:
- one transaction per step, as the engine commits (synchronous=FULL: one fsync per commit),
  measured on a sample, because at that rate 100,000 attempts take many minutes;
- the 100,000 loaded in batches of steps per transaction (same statements, fewer fsyncs).
Then the problem-payments list (first page, a later page, filtered) and the daily summary are
timed over the full table (p50/p99 over repeats); DESIGN.md section 9 sets 50 ms for both.
Last, the keyed audit chain's full verify, the quick_check every start runs, and a backup.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import LIVE, Actor, AttemptFlag, AttemptState, ShopType
from smartduka_tui.store import (
    AttemptFilter,
    Enrolment,
    NewAttempt,
    Secret,
    ShopConfig,
    ShopSecrets,
    Store,
    create_keyring,
)
from smartduka_tui.store.backup import backup_database

NAIROBI = ZoneInfo("Africa/Nairobi")
DAYS = 30
# (final state, result code, flags, weight): roughly a busy shop's month.
MIX = [
    (AttemptState.COMPLETED, "0", AttemptFlag.NONE, 690),
    (AttemptState.COMPLETED, "0", AttemptFlag.RECEIPT_PENDING, 10),
    (AttemptState.COMPLETED, "0", AttemptFlag.LATE, 5),
    (AttemptState.FAILED, "1032", AttemptFlag.NONE, 120),
    (AttemptState.FAILED, "1", AttemptFlag.NONE, 40),
    (AttemptState.FAILED, "2001", AttemptFlag.NONE, 25),
    (AttemptState.FAILED, "1037", AttemptFlag.NONE, 30),
    (AttemptState.FAILED, "17", AttemptFlag.NONE, 5),
    (AttemptState.EXPIRED, None, AttemptFlag.NONE, 50),
    (AttemptState.NEEDS_REVIEW, "9999", AttemptFlag.NONE, 8),
    (AttemptState.PENDING, None, AttemptFlag.NONE, 12),
    (AttemptState.UNKNOWN, None, AttemptFlag.NONE, 5),
]


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000
    return f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"


async def open_bench_store(folder: Path, clock: ManualClock) -> tuple[Store, str, list[str]]:
    """A fresh store with the bench shop ("benchshop", a paybill) and its tills till1, till2."""
    store = await Store.open(
        folder / "till.db", clock=clock, keyring=create_keyring(folder / "keyring")
    )
    shop_id, tills = "benchshop", ["till1", "till2"]
    async with store.write() as tx:
        await store.shops.add(
            tx,
            ShopConfig(shop_id, "Bench Duka", ShopType.PAYBILL, "BD", "174379"),
            ShopSecrets(
                Secret(secrets.token_hex(20)),
                Secret(secrets.token_hex(20)),
                Secret(secrets.token_hex(32)),
            ),
        )
        for till_id in tills:
            await store.tills.enrol(
                tx,
                Enrolment(
                    shop_id,
                    till_id,
                    "http://127.0.0.1:1",
                    Secret(secrets.token_urlsafe(32)),
                    "c1",
                    Secret(secrets.token_urlsafe(32)),
                ),
            )
    return store, shop_id, tills


class Loader:
    """Drives attempts through create -> PENDING -> final, as the engine would."""

    def __init__(
        self, store: Store, clock: ManualClock, shop_id: str, tills: list[str], total: int
    ):
        self.store, self.clock, self.shop_id, self.tills = store, clock, shop_id, tills
        self.total = total
        self.rng = random.Random(7)
        self.live_phones: set[tuple[str, str]] = set()
        self.count = 0
        self.step = DAYS * 86_400 / 100_000

    def _phone(self, till_id: str, live: bool) -> str:
        while True:
            phone = f"2547{self.rng.randrange(10**8):08d}"
            if (till_id, phone) not in self.live_phones:
                if live:
                    self.live_phones.add((till_id, phone))
                return phone

    async def steps(self) -> list[Callable[..., Awaitable[object]]]:
        """The three steps of one attempt, each to run in a transaction given to it."""
        state, code, flags, _ = self.rng.choices(MIX, weights=[m[3] for m in MIX])[0]
        till_id = self.rng.choice(self.tills)
        self.count += 1
        if state in LIVE and self.count < self.total - 20:
            state = AttemptState.EXPIRED  # what expiry does to them after five minutes
        self.clock.advance(self.step)
        new = NewAttempt(
            shop_id=self.shop_id,
            till_id=till_id,
            sale_ref=f"S{self.count:07d}",
            amount=self.rng.choice((50, 120, 250, 480, 1_000, 2_350, 15_000)),
            phone=self._phone(till_id, state in LIVE),
            idempotency_key=secrets.token_hex(12),
            attempt_ref=secrets.token_hex(10),
            expires_at=self.clock.now() + timedelta(minutes=5),
        )
        holder: dict[str, int] = {}
        store, shop = self.store, self.shop_id

        async def create(tx: object) -> None:
            holder["id"] = (await store.attempts.create(tx, new)).id  # type: ignore[arg-type]

        async def push(tx: object) -> None:
            await store.attempts.transition(
                tx,  # type: ignore[arg-type]
                shop,
                holder["id"],
                {AttemptState.CREATED},
                AttemptState.UNKNOWN if state is AttemptState.UNKNOWN else AttemptState.PENDING,
                Actor.CASHIER,
                checkout_request_id=f"ws_CO_{self.count:012d}",
                merchant_request_id=f"{self.count}-1",
                push_sent_at=self.clock.now(),
            )

        async def finish(tx: object) -> None:
            if state in LIVE:
                return
            await store.attempts.transition(
                tx,  # type: ignore[arg-type]
                shop,
                holder["id"],
                LIVE,
                state,
                Actor.CALLBACK,
                result_code=code,
                receipt_number=None if code != "0" else f"R{self.count:09d}",
                add_flags=flags,
            )

        return [create, push, finish]


async def _insert_per_step(loader: Loader, attempts: int) -> float:
    started = time.perf_counter()
    for _ in range(attempts):
        for step in await loader.steps():
            async with loader.store.write() as tx:
                await step(tx)
    return attempts / (time.perf_counter() - started)


async def _insert_batched(loader: Loader, attempts: int, per_tx: int) -> float:
    started = time.perf_counter()
    done = 0
    while done < attempts:
        async with loader.store.write() as tx:
            for _ in range(min(per_tx, attempts - done)):
                for step in await loader.steps():
                    await step(tx)
                done += 1
        if done % 10_000 < per_tx:
            print(f"  ... {done:,} attempts", flush=True)
    return attempts / (time.perf_counter() - started)


async def _time(repeats: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    await call()  # warm the page cache and the statement cache
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def main(attempts: int, sample: int, repeats: int) -> None:
    clock = ManualClock()
    with tempfile.TemporaryDirectory(prefix="smartduka-bench-") as tmp:
        folder = Path(tmp)
        store, shop_id, tills = await open_bench_store(folder, clock)
        loader = Loader(store, clock, shop_id, tills, attempts)
        print(f"store benchmark: {attempts:,} attempts, 3 audited steps each, {DAYS} days")
        per_step = await _insert_per_step(loader, sample)
        print(
            f"insert, one transaction per step (engine path, {sample:,} attempts): "
            f"{per_step:8.0f} attempts/s ({per_step * 3:.0f} commits/s)"
        )
        batched = await _insert_batched(loader, attempts - sample, per_tx=500)
        print(
            f"insert, 500 attempts per transaction ({attempts - sample:,} attempts): "
            f"{batched:8.0f} attempts/s"
        )
        rows = await store.db.fetchone("SELECT count(*) FROM attempts")
        audit = await store.db.fetchone("SELECT count(*) FROM audit_log")
        size = (folder / "till.db").stat().st_size + (folder / "till.db-wal").stat().st_size
        print(
            f"rows: {rows[0]:,} attempts, {audit[0]:,} audit entries; file {size / 1e6:.1f} MB"
            if rows and audit
            else "rows: ?"
        )
        first_day = (clock.now() - timedelta(days=DAYS - 1)).astimezone(NAIROBI).date()
        busy_day = first_day + timedelta(days=DAYS // 2)
        problems = await store.attempts.problems(shop_id)
        cursor = problems.next_cursor
        for _ in range(9):
            page = await store.attempts.problems(shop_id, cursor=cursor)
            cursor = page.next_cursor
        some_phone = problems.items[0].phone
        queries: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("problem payments, first page (50)", lambda: store.attempts.problems(shop_id)),
            ("problem payments, page 11", lambda: store.attempts.problems(shop_id, cursor=cursor)),
            (
                "problem payments, code 1032",
                lambda: store.attempts.problems(
                    shop_id, AttemptFilter(result_codes=frozenset({"1032"}))
                ),
            ),
            (
                "problem payments, one phone",
                lambda: store.attempts.problems(shop_id, AttemptFilter(phone=some_phone)),
            ),
            (
                "history, one phone",
                lambda: store.attempts.history(
                    shop_id, AttemptFilter(phone=some_phone, include_resolved=True)
                ),
            ),
            ("history, first page (50)", lambda: store.attempts.history(shop_id)),
            (
                "daily summary (one day)",
                lambda: store.attempts.daily_summary(shop_id, busy_day, NAIROBI),
            ),
            (
                "summary, whole month",
                lambda: store.attempts.summary(
                    shop_id, clock.now() - timedelta(days=DAYS + 1), clock.now()
                ),
            ),
            ("live attempts of a till", lambda: store.attempts.live(shop_id, tills[0])),
        ]
        print(f"queries over {rows[0] if rows else '?':,} attempts ({repeats} repeats each):")
        for name, call in queries:
            print(f"  {name:<36} {_percentiles(await _time(repeats, call))}")
        day = await store.attempts.daily_summary(shop_id, busy_day, NAIROBI)
        print(
            f"  (the day: {day.attempts:,} attempts, {day.paid:,} paid, KES "
            f"{day.amount_paid:,}, failure rate {day.failure_rate:.1%})"
        )
        started = time.perf_counter()
        report = await store.audit.verify_chain()
        print(
            f"verify chain (HMAC walk of {report.entries:,} entries, intact={report.intact}): "
            f"{time.perf_counter() - started:.2f} s"
        )
        await store.close()
        started = time.perf_counter()
        with sqlite3.connect(folder / "till.db") as conn:
            finding = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        print(f"quick_check at start ({finding}): {(time.perf_counter() - started) * 1000:.0f} ms")
        started = time.perf_counter()
        size = backup_database(folder / "till.db", folder / "backup.db")
        print(
            f"smartduka backup ({size / 1e6:.1f} MB, checked): "
            f"{time.perf_counter() - started:.2f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument(
        "--sample", type=int, default=1_000, help="attempts inserted one transaction per step"
    )
    parser.add_argument("--repeats", type=int, default=200)
    options = parser.parse_args()
    asyncio.run(main(options.attempts, options.sample, options.repeats))
