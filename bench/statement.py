"""Statement benchmark: a C2B confirmation at the relay to the till's store, on loopback; and a
pull of the M-Pesa statement matched against the till's attempts.

Run: `.venv/bin/python bench/statement.py [--count N] [--rate R] [--pulled N] [--attempts N]`
(a few minutes by default; `--count 0` or `--pulled 0` skips a half).

**C2B half.**
The relay is a real process (`python -m callback_relay serve`, SQLite `synchronous=FULL`); the
till is this process: its real store, its relay client long-polling the feed, and the real
cashier app (headless, 80x24) on the checkout, whose direct-payments panel is wired to the
feed as `smartduka` wires it (`smartduka_tui.till.open_till`). The benchmark plays Safaricom:
it POSTs `--count` distinct v2 confirmations (the repo's masked-MSISDN sample, fresh TransIDs)
to the shortcode's token URL at `--rate` a second. Two latencies per confirmation, from the relay's
`received_at` for that event: to the till's `c2b_payments.received_at` (the store), and to the
moment the checkout's panel first drew it (shown). All are millisecond wall-clock stamps on
this machine.

**Pull half.** An in-process simulator (ASGI, the till's ManualClock) holds `--pulled` direct
payments; the till's real SQLite store holds `--attempts` attempts over the last 48 hours
(written straight into the table, without audit entries: seeding, not the thing measured).
Of the pulled rows, 90% are receipts attempts already hold, 5% fit a paid attempt still without
a receipt (filled through the engine), 5% nothing knows (money without a sale); of the other
attempts 70% are paid with receipts of their own and 30% failed (the candidates a receipt-less
row is matched against). Timed: one `StatementPull.pull()` end to end (registration, every
page through the real client and simulator, the matching, the writes), then the same pull
again (all rows known: the idempotent case).

With `--shop-wide`, two more pulls of the same data ask the shop's receipt index at a relay
app in process (ASGI, its own SQLite store with `synchronous=FULL`), where another till of the
shop holds half of the rows nothing here knows: a catch-up pull (a new `StatementPull`, so it
publishes every receipt this till holds, about 95% of the rows) and one more with the same pull
(steady state: only the unknown rows are asked about). Each is printed with its ratio to the
second pull without the check, from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import RELAY_ENV, make_till, percentile, relay_cli, server

from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.payments.pull import CLOCK_SKEW, PullReport, StatementPull
from smartduka_tui.relay_client import RelayShopReceipts
from smartduka_tui.simulator.app import create_app
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.engine import SimulatorConfig
from smartduka_tui.store.records import AttemptFlag, to_ms
from smartduka_tui.store.store import database_path
from smartduka_tui.till import open_till
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from smartduka_tui.ui.widgets.c2b_panel import C2BPanel
from tests.support.daraja import PAYLOADS

SHORTCODE = "5501234"


def confirmation(number: int) -> bytes:
    body = json.loads((PAYLOADS / "c2b_confirmation_v2_masked_msisdn.json").read_text())
    body["TransID"] = f"TKB{number:07d}"
    body["TransAmount"] = f"{10 + number % 900}.00"
    return json.dumps(body).encode()


def latencies(
    data_dir: Path, relay_db: Path, till_id: str, shown: dict[str, float]
) -> tuple[list[float], list[float]]:
    """(relay -> till store, relay -> shown on the checkout) in ms, one per confirmation."""
    with sqlite3.connect(relay_db) as relay:
        received = dict(
            relay.execute(
                "SELECT attempt_ref, received_at FROM events WHERE till_id = ? AND kind = 'c2b'",
                (till_id,),
            ).fetchall()
        )
    with sqlite3.connect(database_path(data_dir)) as till:
        kept = dict(till.execute("SELECT trans_id, received_at FROM c2b_payments").fetchall())
    if set(received) != set(kept):
        raise RuntimeError(f"relay has {len(received)} confirmations, the till {len(kept)}")
    if set(received) != set(shown):
        raise RuntimeError(f"relay has {len(received)} confirmations, the panel drew {len(shown)}")
    return (
        [float(kept[ref] - received[ref]) for ref in kept],
        [shown[ref] - received[ref] for ref in kept],
    )


def stamp_when_drawn(panel: C2BPanel, shown: dict[str, float]) -> None:
    """Note, for each TransID, the wall-clock ms when the panel first drew it."""
    draw = panel._show

    def drawn() -> None:
        draw()
        now = time.time() * 1000
        for record in panel.waiting:
            shown.setdefault(record.trans_id, now)

    panel._show = drawn  # type: ignore[method-assign]


async def bench_c2b(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="smartduka-statement-") as tmp:
        workdir = Path(tmp)
        relay_db = workdir / "relay.db"
        with server(
            workdir,
            "relay",
            ["callback_relay", "serve", "--db", str(relay_db), "--mode", "sandbox"],
            RELAY_ENV,
        ) as relay:
            enrolment = relay_cli(relay_db, "shop", "add", "Bench C2B", "--public-url", relay.url)
            token = relay_cli(relay_db, "c2b", "token", SHORTCODE, "--shop", enrolment["shop_id"])
            path = token["url"][token["url"].index("/hooks/c2b/") :]
            data_dir = workdir / "till"
            await make_till(data_dir, enrolment, SHORTCODE, ("k" * 24, "s" * 24, "p" * 64))
            settings = Settings(data_dir=data_dir, daraja={"base_url": "http://127.0.0.1:9"})
            clock = SystemClock()
            shown: dict[str, float] = {}
            async with (
                open_till(
                    settings, clock=clock, run_reconciler=False, probe_daraja=False, poll_wait_s=25
                ) as till,
                httpx.AsyncClient(base_url=relay.url, trust_env=False) as http,
            ):
                assert till.relay is not None
                engine = till.engine
                services = AppServices(
                    payments=engine,
                    clock=clock,
                    identity=TillIdentity(engine.shop_id, engine.till_id, "Bench C2B"),
                    connection=till.connection,
                    c2b=till.c2b,
                )
                app = make_app(settings, services, options=UiOptions(cursor_blink=False))
                async with app.run_test(size=(80, 24)) as pilot:
                    while not isinstance(app.screen, CheckoutScreen):
                        await pilot.pause(0.05)
                    stamp_when_drawn(app.screen.query_one(C2BPanel), shown)
                    sent_s = await offer(args, http, path, shown)
            store_ms, shown_ms = latencies(data_dir, relay_db, enrolment["till_id"], shown)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"C2B confirmation at the relay to the till, loopback ({os.cpu_count()} CPUs, "
        f"load average {load} at the end)"
    )
    print(
        f"  confirmations kept    {len(store_ms)} of {args.count}, offered at {args.rate:.0f}/s "
        f"(all shown after {sent_s:.1f} s)"
    )
    for label, values in (("relay -> till store", store_ms), ("relay -> shown     ", shown_ms)):
        print(
            f"  {label}   p50 {percentile(values, 0.50):6.1f} ms   "
            f"p90 {percentile(values, 0.90):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms   "
            f"max {max(values):6.1f} ms"
        )
    p99 = percentile(shown_ms, 0.99)
    print(f"target p99 <= 100 ms (shown): {'meets' if p99 <= 100 else 'MISSES'} ({p99:.1f} ms)")


async def offer(
    args: argparse.Namespace,
    http: httpx.AsyncClient,
    path: str,
    shown: dict[str, float],
) -> float:
    """POST the confirmations at the rate asked; seconds until the panel had drawn them all."""
    started = time.perf_counter()
    for number in range(args.count):
        wait = started + number / args.rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        response = await http.post(path, content=confirmation(number))
        if response.status_code != 200:
            raise RuntimeError(f"relay answered {response.status_code}")
    deadline = time.monotonic() + 60
    while len(shown) < args.count:
        if time.monotonic() > deadline:
            raise RuntimeError("not every confirmation reached the checkout in 60 s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


def seed_attempts(
    db: Path, shop_id: str, till_id: str, count: int, paid: list[tuple[str, str, int]], now_ms: int
) -> None:
    """`count` attempts straight into the table: the first ones hold (or, receipt pending,
    fit) the pulled payments `paid` (receipt, phone, amount), the rest spread over 48 hours."""
    known, pending = int(len(paid) * 0.9), int(len(paid) * 0.05)
    rows = []
    spread = 48 * 3600 * 1000 // max(1, count)
    for n in range(count):
        if n < known + pending:
            receipt, phone, amount = paid[n]
            created = now_ms - 60_000
            state, flags = "COMPLETED", 0 if n < known else int(AttemptFlag.RECEIPT_PENDING)
            receipt_kept: str | None = receipt if n < known else None
        else:
            phone, amount, created = f"2541{n:08d}", 1 + n % 900, now_ms - n * spread
            state = "COMPLETED" if n % 10 < 7 else "FAILED"
            receipt_kept, flags = (f"BQ{n:08d}" if state == "COMPLETED" else None), 0
        rows.append(
            (
                shop_id,
                till_id,
                f"B{n:07d}",
                amount,
                phone,
                f"key-{n}",
                f"ref{n}",
                state,
                receipt_kept,
                created,
                created + 1000,
                created + 300_000,
                created + 2000,
                flags,
            )
        )
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO attempts (shop_id, till_id, sale_ref, amount, phone, idempotency_key,"
            " attempt_ref, attempt_number, state, receipt_number, created_at, push_sent_at,"
            " expires_at, updated_at, flags) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def bench_pull(args: argparse.Namespace) -> None:
    clock = ManualClock()
    sim_app = create_app(SimulatorConfig(), clock=clock)
    transport = httpx.ASGITransport(app=sim_app)
    with tempfile.TemporaryDirectory(prefix="smartduka-pull-") as tmp:
        data_dir = Path(tmp) / "till"
        async with (
            sim_app.router.lifespan_context(sim_app),
            SimulatorControl("http://sim.bench", transport=transport) as sim,
        ):
            creds = ("benchkey" * 3, "benchsecret" * 2, "p" * 64)
            view = await sim.register_shortcode(
                passkey=creds[2],
                consumer_key=creds[0],
                consumer_secret=creds[1],
                settings={"pull_page_size": args.page_size},
            )
            enrolment = {
                "shop_id": "benchpull",
                "till_id": "till1",
                "relay_url": "http://127.0.0.1:9",
                "till_key": "t" * 43,
                "callback_kid": "k1",
                "callback_secret": "c" * 43,
            }
            await make_till(data_dir, enrolment, view.shortcode, creds)
            began = time.perf_counter()
            paid = []
            for n in range(args.pulled):
                phone = f"2547{n:08d}"
                made = await sim.pay_till(view.shortcode, phone, 1 + n % 500)
                paid.append((made.trans_id, phone, 1 + n % 500))
            seed_attempts(
                database_path(data_dir),
                "benchpull",
                "till1",
                args.attempts,
                paid,
                to_ms(clock.now()),
            )
            seeding = time.perf_counter() - began
            settings = Settings(
                data_dir=data_dir,
                shop_id="benchpull",
                daraja={"base_url": "http://sim.bench"},
                relay={"url": "http://127.0.0.1:9"},
                pull={"nominated_number": "254708374149", "interval_s": 0},
            )
            shop_wide: list[tuple[str, float, float, PullReport]] = []
            # The till as `smartduka pull` opens it (no feed, no probe; the relay a closed
            # port), its Daraja the simulator in process.
            async with open_till(
                settings,
                clock=clock,
                run_reconciler=False,
                probe_daraja=False,
                read_feed=False,
                no_relay_url=settings.relay.url,
                daraja_transport=transport,
            ) as till:
                pull = till.statement_pull()
                assert pull is not None, "the bench shop has its own shortcode"
                started, cpu = time.perf_counter(), time.process_time()
                first = await pull.pull()
                first_s, first_cpu = time.perf_counter() - started, time.process_time() - cpu
                started, cpu = time.perf_counter(), time.process_time()
                again = await pull.pull()
                again_s, again_cpu = time.perf_counter() - started, time.process_time() - cpu
                if args.shop_wide:
                    since = first.start - CLOCK_SKEW
                    unknown = await till.store.pull.unknown("benchpull", since)
                    theirs = [r.transaction_id for r in unknown[: len(unknown) // 2]]
                    shop_wide = await pulls_shop_wide(Path(tmp), pull, theirs)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"Pull of {args.pulled:,} transactions against {args.attempts:,} attempts, in process "
        f"({os.cpu_count()} CPUs, load average {load} at the end; seeding took {seeding:.1f} s)"
    )
    # CPU time is this process's (till and simulator): on a shared machine it says how much
    # of the wall time was the pull's own work and how much was waiting for a core.
    print(
        f"  first pull   {first_s:6.2f} s ({first_cpu:.2f} s CPU)  {first.rows:,} rows in "
        f"{first.pages} pages of "
        f"{args.page_size}: {first.new_rows:,} new, {first.receipts_filled:,} receipts filled, "
        f"{first.money_without_sale:,} money without a sale, {first.paid_twice:,} paid twice"
    )
    print(
        f"  pull again   {again_s:6.2f} s ({again_cpu:.2f} s CPU)  {again.rows:,} rows: "
        f"{again.new_rows:,} new, "
        f"{again.problems_found:,} problems (idempotent)"
    )
    print(f"target <= 2 s: {'meets' if first_s <= 2 else 'MISSES'} ({first_s:.2f} s)")
    for name, seconds, cpu_s, report in shop_wide:
        print(
            f"  {name:<12} {seconds:6.2f} s ({cpu_s:.2f} s CPU, {seconds / again_s:.2f}x the "
            f"pull again)  {report.known_elsewhere:,} known at another till, "
            f"{report.money_without_sale:,} new money without a sale, "
            f"{report.resolved_elsewhere:,} problems resolved"
            + (f"; NOT CHECKED: {report.shop_check}" if report.shop_check else "")
        )


async def pulls_shop_wide(
    tmp: Path, till_pull: StatementPull, theirs: list[str]
) -> list[tuple[str, float, float, PullReport]]:
    """The catch-up and steady-state pulls against the shop's receipt index, in process,
    with another till of the shop holding `theirs`."""
    from callback_relay.app import make_app as make_relay
    from callback_relay.registry import Registry, open_box
    from callback_relay.settings import RelaySettings

    key = "5f" * 32
    relay_settings = RelaySettings(
        db=tmp / "relay.db", mode="sandbox", encryption_key=key,
        ack_rate_burst=100_000, ack_rate_per_s=100_000,
    )  # fmt: skip
    relay_app = make_relay(relay_settings)
    found: list[tuple[str, float, float, PullReport]] = []
    async with relay_app.router.lifespan_context(relay_app):
        store = relay_app.state.relay.store
        box = await open_box(store, relay_settings.db, key, create=True)
        assert box is not None
        registry = Registry(store, box, SystemClock())
        here = await registry.add_shop("Bench shop")
        there = await registry.add_till(here.shop_id)
        transport = httpx.ASGITransport(app=relay_app, client=("10.0.0.2", 40000))

        def index(till_key: str) -> RelayShopReceipts:
            return RelayShopReceipts("http://relay.bench", till_key, transport=transport)

        await index(there.till_key).register([(r, "OTHER1") for r in theirs])
        pull = StatementPull(till_pull.engine, till_pull.source, index(here.till_key))
        for name in ("catch-up", "steady"):
            started, cpu = time.perf_counter(), time.process_time()
            report = await pull.pull()
            found.append((name, time.perf_counter() - started, time.process_time() - cpu, report))
    return found


async def main_async(args: argparse.Namespace) -> None:
    if args.count:
        await bench_c2b(args)
    if args.pulled:
        await bench_pull(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="confirmations (500)")
    parser.add_argument("--rate", type=float, default=10.0, help="confirmations per second (10)")
    parser.add_argument("--pulled", type=int, default=10_000, help="pulled transactions (10,000)")
    parser.add_argument("--attempts", type=int, default=100_000, help="attempts (100,000)")
    parser.add_argument("--page-size", type=int, default=100, help="pull page size (100)")
    parser.add_argument(
        "--shop-wide",
        action="store_true",
        help="also time pulls that ask the shop's receipt index (a relay app in process)",
    )
    args = parser.parse_args()
    if args.count < 0 or args.rate <= 0 or args.pulled < 0 or args.page_size < 1:
        parser.error("--count, --pulled and --page-size must be 0 or more, --rate positive")
    if args.attempts < args.pulled:
        parser.error("--attempts must be at least --pulled")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
