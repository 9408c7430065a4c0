"""Relay benchmarks: durable callbacks per second and the time to acknowledge a callback.

Run: `.venv/bin/python bench/relay.py` (about a minute; `--quick` for a smoke run).
`--store postgres|sqlite` runs the store comparison instead: the bare endpoint, then the relay on
that store with 1 instance and (PostgreSQL) 2 instances on one database, each with the servers'
CPU per callback (PostgreSQL's own processes included) and the load generator's share of the CPU.

Three servers, each its own process on 127.0.0.1, each one uvicorn worker with the same settings:
a trivial raw-socket responder (measures this load generator's own ceiling), a bare Starlette
endpoint that reads and parses the same JSON, and the relay with SQLite `synchronous=FULL`. The
load generator (this process) is asyncio over raw keep-alive sockets. Every callback is distinct;
after the run, the relay's stored rows must equal the 2xx answers it gave. Loopback only; bounded
in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartduka_tui.mpesa.callback_path import sign_new_attempt  # noqa: E402

HOST = "127.0.0.1"
PAYLOAD = ROOT / "tests" / "data" / "daraja" / "payloads" / "callback_success.json"
FALLBACK_PAYLOAD: dict[str, Any] = {
    "Body": {
        "stkCallback": {
            "MerchantRequestID": "2654-4b64-97ff-b827b542881d3130",
            "CheckoutRequestID": "ws_CO_0",
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {
                "Item": [
                    {"Name": "Amount", "Value": 150.0},
                    {"Name": "MpesaReceiptNumber", "Value": "TKQ4B7XJ2M"},
                    {"Name": "TransactionDate", "Value": 20261126103012},
                    {"Name": "PhoneNumber", "Value": 254708374149},
                ]
            },
        }
    }
}


# Servers --------------------------------------------------------------------------------------


def bare_app() -> Any:
    """A Starlette endpoint doing the minimum a callback needs: read and parse the JSON."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request: Request) -> Response:
        json.loads(await request.body())
        return Response(b'{"ResultCode":0,"ResultDesc":"Accepted"}', media_type="application/json")

    return Starlette(routes=[Route("/hooks/stk/{rest:path}", hook, methods=["POST"])])


def serve_bare(ready_file: str) -> None:
    import uvicorn

    from smartduka_tui.serving import bind_socket, write_ready_file

    sock = bind_socket(HOST, 0)
    write_ready_file(ready_file, sock.getsockname()[1])
    config = uvicorn.Config(
        bare_app(),
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_trivial(ready_file: str) -> None:
    """Answers every request with a fixed 200 without real HTTP parsing: the generator's ceiling."""
    from smartduka_tui.serving import write_ready_file

    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, HOST, 0)
        write_ready_file(ready_file, server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int


@contextlib.contextmanager
def server(
    name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    ready = workdir / f"{name}.port"
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child writes it while it runs
    proc = subprocess.Popen(
        [sys.executable, *argv, "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {(workdir / f'{name}.log').read_text()}")
            time.sleep(0.02)
        yield Server(name, proc, int(ready.read_text()))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# Load generator ------------------------------------------------------------------------------


def make_requests(enrolment: dict[str, Any], count: int) -> list[bytes]:
    """`count` distinct signed callbacks as raw HTTP/1.1 requests."""
    template = json.loads(PAYLOAD.read_text()) if PAYLOAD.exists() else FALLBACK_PAYLOAD
    requests = []
    for _ in range(count):
        path = sign_new_attempt(
            enrolment["callback_secret"],
            enrolment["shop_id"],
            enrolment["till_id"],
            enrolment["callback_kid"],
        ).path()
        body_data = copy.deepcopy(template)
        body_data["Body"]["stkCallback"]["CheckoutRequestID"] = f"ws_CO_{uuid.uuid4().hex[:24]}"
        body = json.dumps(body_data).encode()
        requests.append(
            f"POST {path} HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return requests


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return sum(self.statuses.values()) / self.seconds


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> Result:
    """`concurrency` connections, each sending its next request as soon as it has an answer."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    result = Result(0.0)
    position = iter(range(len(requests)))

    async def worker(conn: Connection) -> None:
        for index in position:
            result.statuses[await conn.exchange(requests[index])] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    result.seconds = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return result


async def paced(port: int, requests: list[bytes], rate: float, pool: int) -> Result:
    """Send at a fixed schedule; latency is from the scheduled moment, so queueing counts."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await Connection.open(port))
    result = Result(0.0)

    async def one(request: bytes, scheduled: float) -> None:
        conn = await idle.get()
        status = await conn.exchange(request)
        result.latencies.append(time.perf_counter() - scheduled)
        result.statuses[status] += 1
        idle.put_nowait(conn)

    started = time.perf_counter()
    tasks = []
    for i, request in enumerate(requests):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait().close()
    return result


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(target: Server, batch: list[bytes], concurrency: int) -> tuple[Result, float | None]:
    """A closed-loop run and the server's CPU microseconds per request during it."""
    before = cpu_seconds(target.proc.pid)
    result = asyncio.run(closed_loop(target.port, batch, concurrency))
    after = cpu_seconds(target.proc.pid)
    per_request = None
    if before is not None and after is not None:
        per_request = (after - before) / len(batch) * 1e6
    return result, per_request


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop_many(ports: list[int], requests: list[bytes], concurrency: int) -> Result:
    """Like `closed_loop`, the connections spread evenly over several servers."""
    connections = [await Connection.open(ports[n % len(ports)]) for n in range(concurrency)]
    result = Result(0.0)
    position = iter(range(len(requests)))

    async def worker(conn: Connection) -> None:
        for index in position:
            result.statuses[await conn.exchange(requests[index])] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    result.seconds = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return result


def postgres_cpu(data_dir: Path) -> float:
    """CPU seconds of the bench's own PostgreSQL server (its postmaster and the processes it
    started; Linux), not of other clusters on a shared machine."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Figures:
    rate: float
    server_us: float
    generator_share: float
    ok: int


def measure_many(
    servers: list[Server], batch: list[bytes], concurrency: int, pg_data: Path | None
) -> Figures:
    def server_cpu() -> float:
        own = sum(cpu_seconds(s.proc.pid) or 0.0 for s in servers)
        return own + (postgres_cpu(pg_data) if pg_data is not None else 0.0)

    before, gen_before = server_cpu(), time.process_time()
    result = asyncio.run(closed_loop_many([s.port for s in servers], batch, concurrency))
    spent, gen_spent = server_cpu() - before, time.process_time() - gen_before
    return Figures(
        rate=result.rate,
        server_us=spent / len(batch) * 1e6,
        generator_share=gen_spent / max(1e-9, gen_spent + spent),
        ok=result.statuses[200],
    )


BENCH_KEY = "7e" * 32


def store_comparison(store: str, count: int, rounds: int, concurrency: int) -> int:
    pg = store == "postgres"
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        db = work / "relay.db"
        env = {"SMARTDUKA_RELAY_ENCRYPTION_KEY": BENCH_KEY}
        cluster: Any = None
        if pg:
            from tests.relay.postgres import PostgresCluster, find_pg_bin

            bin_dir = find_pg_bin()
            if bin_dir is None:
                print("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
                return 1
            cluster = PostgresCluster(bin_dir).start()
            env["SMARTDUKA_RELAY_DATABASE_URL"] = cluster.url()
        try:
            enrolment = enrol(db, env)
            instances = 2 if pg else 1
            total = 300 * (1 + instances) + count * rounds * (1 + instances)
            print(f"preparing {total} distinct signed callbacks...", flush=True)
            requests = make_requests(enrolment, total)
            batches = iter(requests[i : i + count] for i in range(0, len(requests), count))
            me = str(Path(__file__).resolve())
            relay_argv = [
                "-m", "callback_relay", "serve", "--host", HOST, "--port", "0", "--db", str(db),
                "--mode", "production", "--allowlist", HOST, "--log-level", "warning",
            ]  # fmt: skip
            ok = 0
            with contextlib.ExitStack() as stack:
                bare = stack.enter_context(server("bare", [me, "--serve-bare", "x"], work))
                relays = [
                    stack.enter_context(server(f"relay{n}", relay_argv, work, env))
                    for n in range(instances)
                ]
                warm = requests[-300 * (1 + instances) :]
                for n, target in enumerate([bare, *relays]):
                    run = asyncio.run(
                        closed_loop(target.port, warm[n * 300 : (n + 1) * 300], concurrency)
                    )
                    ok += run.statuses[200] if target is not bare else 0
                layouts = {"bare": [bare], "1 instance": relays[:1]}
                if pg:
                    layouts["2 instances"] = relays
                best: dict[str, Figures] = {}
                for _ in range(rounds):
                    for name, servers in layouts.items():
                        pg_data = cluster.data if pg and name != "bare" else None
                        figures = measure_many(servers, next(batches), concurrency, pg_data)
                        if name != "bare":
                            ok += figures.ok
                        if name not in best or figures.rate > best[name].rate:
                            best[name] = figures
                        print(f"  round: {name} {figures.rate:,.0f}/s", flush=True)
            stored = count_callbacks(db, env.get("SMARTDUKA_RELAY_DATABASE_URL"))
        finally:
            if cluster is not None:
                cluster.stop()
    bare_rate = best["bare"].rate
    print()
    print(f"store: {store}" + (" (synchronous_commit on, fsync on)" if pg else " (WAL, FULL)"))
    for name, figures in best.items():
        print(
            f"{name:<12} {figures.rate:>8,.0f}/s  x{figures.rate / bare_rate:.2f} of bare  "
            f"server CPU {figures.server_us:>6.0f} us/callback  "
            f"load generator {figures.generator_share:.0%} of the CPU used"
        )
    one = best["1 instance"].rate
    print(f"1 instance / bare: {one / bare_rate:.2f} (target >= 0.35 on PostgreSQL)")
    if "2 instances" in best:
        print(f"2 instances / 1 instance: {best['2 instances'].rate / one:.2f} (target >= 1.3)")
        cores = os.cpu_count() or 1
        if cores < 4:
            # The load generator, two relays and PostgreSQL each want a core of their own.
            print(f"  (on {cores} cores they share the same CPUs: 2 instances cannot scale here)")
    print(
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(f"relay 2xx answers: {ok}; callback rows stored: {stored}")
    if stored != ok:
        print("FAILED: stored rows do not match 2xx answers")
        return 1
    return 0


def count_callbacks(db: Path, url: str | None) -> int:
    if url is not None:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'callback'").fetchone()
            return int(row[0]) if row else 0
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'callback'").fetchone()[0]
        )


# The run -------------------------------------------------------------------------------------


def enrol(db: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "callback_relay",
            "shop",
            "add",
            "Bench shop",
            "--db",
            str(db),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    enrolment: dict[str, Any] = json.loads(out.stdout)
    return enrolment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="callbacks per throughput round")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds (best is kept)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections, closed loop")
    parser.add_argument("--rate", type=float, default=200.0, help="paced callbacks per second")
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="paced run length")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument(
        "--store", choices=["postgres", "sqlite"], help="run the store comparison instead"
    )
    parser.add_argument("--serve-bare", metavar="READY_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--serve-trivial", metavar="READY_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.ready_file)
        return 0
    if args.serve_trivial is not None:
        serve_trivial(args.ready_file)
        return 0
    if args.quick:
        args.count, args.rounds, args.paced_seconds = 1000, 1, 2.0
    if not 1 <= args.count <= 100_000 or not 1 <= args.paced_seconds <= 60:
        parser.error("--count must be 1..100000 and --paced-seconds 1..60")
    if args.store is not None:
        return store_comparison(args.store, args.count, args.rounds, args.concurrency)

    paced_count = int(args.rate * args.paced_seconds)
    warmup = 300
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        db = work / "relay.db"
        enrolment = enrol(db)
        total = warmup * 3 + args.count * args.rounds * 2 + paced_count
        print(f"preparing {total} distinct signed callbacks...", flush=True)
        requests = make_requests(enrolment, total)
        taken = 0

        def take(n: int) -> list[bytes]:
            nonlocal taken
            batch = requests[taken : taken + n]
            taken += n
            return batch

        relay_2xx = 0
        me = str(Path(__file__).resolve())
        relay_argv = [
            "-m", "callback_relay", "serve", "--host", HOST, "--port", "0", "--db", str(db),
            "--mode", "production", "--allowlist", HOST, "--log-level", "warning",
        ]  # fmt: skip
        with (
            server("trivial", [me, "--serve-trivial", "x"], work) as trivial,
            server("bare", [me, "--serve-bare", "x"], work) as bare,
            server("relay", relay_argv, work) as relay,
        ):
            for target in (trivial, bare, relay):
                warm = asyncio.run(closed_loop(target.port, take(warmup), args.concurrency))
                if target is relay:
                    relay_2xx += warm.statuses[200]
            ceiling = asyncio.run(
                closed_loop(trivial.port, requests[: args.count], args.concurrency)
            )
            bare_rates, relay_rates = [], []
            bare_cpu: list[float] = []
            relay_cpu: list[float] = []
            for _ in range(args.rounds):
                bare_run, bare_us = measured(bare, take(args.count), args.concurrency)
                relay_run, relay_us = measured(relay, take(args.count), args.concurrency)
                assert set(bare_run.statuses) == {200}, bare_run.statuses
                relay_2xx += relay_run.statuses[200]
                bare_rates.append(bare_run.rate)
                relay_rates.append(relay_run.rate)
                if bare_us is not None and relay_us is not None:
                    bare_cpu.append(bare_us)
                    relay_cpu.append(relay_us)
                print(
                    f"  round: bare {bare_run.rate:,.0f}/s, relay {relay_run.rate:,.0f}/s "
                    f"(relay answers {dict(relay_run.statuses)})",
                    flush=True,
                )
            paced_run = asyncio.run(paced(relay.port, take(paced_count), args.rate, pool=16))
            relay_2xx += paced_run.statuses[200]

        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'callback'").fetchone()[
                0
            ]
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]

    best_bare, best_relay = max(bare_rates), max(relay_rates)
    lat_ms = [x * 1000 for x in paced_run.latencies]
    print()
    print(f"load generator ceiling (trivial responder): {ceiling.rate:,.0f} req/s")
    print(f"bare Starlette endpoint parsing the JSON:   {best_bare:,.0f} req/s")
    print(f"relay, durable (WAL, synchronous=FULL):     {best_relay:,.0f} callbacks/s")
    print(
        f"ratio relay / bare:                         {best_relay / best_bare:.2f}  (target >= 0.6)"
    )
    if bare_cpu and relay_cpu:
        # CPU time per request barely moves with other load on the machine, unlike req/s.
        bare_us, relay_us = min(bare_cpu), min(relay_cpu)
        print(
            f"server CPU per request: bare {bare_us:.0f} us, relay {relay_us:.0f} us "
            f"(ratio by CPU {bare_us / relay_us:.2f})"
        )
    print(
        f"time to acknowledge at {args.rate:.0f}/s for {args.paced_seconds:.0f} s "
        f"({len(lat_ms)} callbacks): p50 {statistics.median(lat_ms):.1f} ms, "
        f"p99 {percentile(lat_ms, 0.99):.1f} ms, max {max(lat_ms):.1f} ms  (target p99 <= 20 ms)"
    )
    print(
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(f"relay 2xx answers: {relay_2xx}; rows stored: {stored}; integrity_check: {integrity}")
    if stored != relay_2xx or integrity != "ok":
        print("FAILED: stored rows do not match 2xx answers (or the database is damaged)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
