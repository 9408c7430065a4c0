"""`smartduka demo`: the cashier app on the bundled Daraja simulator and a local relay.

One command, nothing to configure. It starts the simulator and the callback relay as
subprocesses on loopback (port 0, read back from ready files), enrols a demo shop and till with
the relay (`smartduka-relay shop add`, its documented enrolment file), registers the shop's
shortcode on the simulator, keeps everything in a throwaway data folder with a freshly
generated encryption key, and opens the app. Callbacks travel simulator -> relay -> the till's
feed, as in production. F1 lists the simulator's magic phone numbers.

The demo shop has an M-Pesa initiator on the simulator, sealed in the till's vault like a real
one, with its password encrypted by the simulator's own certificate (written in the demo
folder, `daraja.certificate_file`): receipt codes (F5) and reversals (V, with the manager PIN the
first manager screen sets) work, their results coming through the relay.

The app starts with the two servers (issue #18): its checkout paints while they boot, and the
till opens behind it once they answer. On the way out both are stopped at once, and as soon as
the app starts to close (they stop while the app restores the terminal and the till closes):
SIGTERM, on which both end by themselves, and SIGKILL for one still up after a short grace.

While the app runs, a simulator or relay that dies is started again on the same port (the
simulator's demo shortcode registered again with the same credentials; the relay keeps its
database) and the app says so. On the way out (quit, Ctrl+C before the app is up, SIGTERM or
SIGHUP) the subprocesses are stopped and the folder removed, unless a payment is still live in
it: then the folder is kept and its path printed, so no payment is lost. On Linux the
subprocesses also die with this process if it is killed outright.

`smartduka demo --headless-check` does the same without the app: one scripted payment to the
simulator's "pays" number through the payment service, its outcome printed, exit 0 when paid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from smartduka_tui.cli.app import APP_MODULES
from smartduka_tui.cli.common import load_modules

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.store import Secret
    from smartduka_tui.store.initiator import InitiatorCredentials
    from smartduka_tui.ui.app import SmartDukaApp
    from smartduka_tui.ui.services import HelpSection

EXIT_OK = 0
EXIT_NOT_PAID = 1
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_TIMEOUT_S = 30.0
DEMO_SHOP_NAME = "Demo Duka"
DEMO_PREFIX = "DEMO"
DEMO_CASHIER = "Demo cashier"
DEMO_FLOAT = 1000
"""The demo till's shift opens with this float (KES), so F10 takes cash at once, as it would
once a manager had opened the day's shift."""
PAYS_PHONE = "254700000000"
WATCH_EVERY_S = 1.0
STOP_GRACE_S = 1.0
"""How long a server has after SIGTERM before SIGKILL. Both end on their own well within it (the
relay answers its open long-polls at once on SIGTERM, instead of waiting them out), so the quit
waits only for that; the kill is for a server that hangs, and is written to its log. Nothing is
lost by it: the relay commits each callback before it answers (SQLite, synchronous=FULL), and
the simulator's state is the demo's own, thrown away with it."""


class DemoError(Exception):
    """The demo could not start; the message says what failed (its logs are kept)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="try the cashier app on the bundled Daraja simulator and a local relay",
        description=(
            "Start the Daraja simulator and a callback relay on loopback, set up a demo shop "
            "in a throwaway folder, and open the cashier app. Nothing to configure."
        ),
    )
    parser.add_argument(
        "--headless-check",
        action="store_true",
        help="no app: send one scripted payment through everything, print it, exit 0 if paid",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the demo folder (data, logs) when done and print where it is",
    )
    parser.set_defaults(handler=run_demo)


# ---------------------------------------------------------------------------- subprocesses


def _die_with_parent() -> None:
    """In the child, before exec: be killed if the demo process dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Served:
    """A server subprocess started with `serve --port 0 --ready-file F`."""

    name: str
    proc: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path
    command: list[str]
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(
                    f"the {self.name} stopped while starting (exit {self.proc.returncode}); "
                    f"see {self.log_file}"
                )
            text = self.ready_file.read_text().strip() if self.ready_file.exists() else ""
            if text:
                self.port = int(text)
                return
            time.sleep(0.02)
        raise DemoError(
            f"the {self.name} did not start in {READY_TIMEOUT_S:.0f} s; see {self.log_file}"
        )

    stop_by: float | None = None
    """Once it is being stopped for good (`terminate`): the monotonic time its grace ends, when
    SIGKILL follows SIGTERM. `restart` then starts nothing."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def restart(self) -> None:
        """Start it again on the port it had (the till's settings name that URL)."""
        with self._lock:
            if self.stop_by is not None:
                raise DemoError(f"the {self.name} is being stopped")
            self.ready_file.unlink(missing_ok=True)
            at = self.command.index("--port") + 1
            command = [*self.command[:at], str(self.port), *self.command[at + 1 :]]
            self.proc = _spawn(command, self.log_file)
        self.wait_ready(time.monotonic() + READY_TIMEOUT_S)

    def terminate(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, for good (no restart after it); without blocking, so the app's exit can
        call it. The first call sets the grace."""
        with self._lock:
            if self.stop_by is None:
                self.stop_by = time.monotonic() + grace_s
            if self.proc.poll() is None:
                self.proc.terminate()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still up when its grace ends (for callers without an
        event loop; the demo itself uses `stop_servers`)."""
        self.terminate()
        try:
            self.proc.wait(timeout=max(0.0, (self.stop_by or 0.0) - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(self)
            self.proc.wait()


async def stop_servers(servers: Sequence[Served]) -> None:
    """Stop every server at once: SIGTERM to each (unless `terminate` already sent it), and
    SIGKILL to any still up when its grace ends. Each exit is awaited as it happens (a thread
    blocked in `waitpid`), not polled."""
    for server in servers:
        server.terminate()
    await asyncio.gather(*(_gone(server) for server in servers))


async def _gone(server: Served) -> None:
    if server.proc.poll() is not None:
        return
    exited = asyncio.ensure_future(asyncio.to_thread(server.proc.wait))
    grace = max(0.0, (server.stop_by or 0.0) - time.monotonic())
    done, _ = await asyncio.wait((exited,), timeout=grace)
    if not done:
        _kill(server)
    await exited


def _kill(server: Served) -> None:
    """SIGKILL, said in the server's own log: it should have ended on its SIGTERM."""
    server.proc.kill()
    with contextlib.suppress(OSError), server.log_file.open("a") as log:
        log.write(f"smartduka demo: the {server.name} outlived its SIGTERM grace: killed\n")


def start_server(
    name: str,
    module: str,
    folder: Path,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Served:
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / "port"
    log_file = folder / "server.log"
    command = [
        sys.executable,
        "-m",
        module,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        *extra,
    ]
    return Served(name, _spawn(command, log_file), ready, log_file, command)


def _spawn(command: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: the terminal's Ctrl+C goes to the demo, which stops it.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


# ---------------------------------------------------------------------------- the demo till


@dataclass(frozen=True)
class Demo:
    folder: Path
    settings: Settings
    simulator: Served
    relay: Served
    help_sections: tuple[HelpSection, ...]
    shortcode: str
    credentials: tuple[Secret, Secret, Secret]
    """The demo shop's consumer key, consumer secret and passkey, as the simulator has them."""
    initiator: InitiatorCredentials


def magic_phone_help() -> HelpSection:
    """The simulator's magic numbers as the F1 help shows them."""
    from smartduka_tui.mpesa.phone import format_local
    from smartduka_tui.simulator.codes import MAGIC_PHONES
    from smartduka_tui.ui.services import HelpSection

    rows = tuple((format_local(m.phone), m.summary) for m in MAGIC_PHONES.values())
    return HelpSection(
        "Demo phone numbers (the simulator plays the customer)",
        rows,
        note="Any other number pays. Prompts are answered after about 2 s.",
    )


def receipt_code_help(simulator_url: str, shortcode: str) -> HelpSection:
    """How to get a receipt code to type at F5 in the demo: pay the till "from a phone"."""
    from smartduka_tui.ui.services import HelpSection

    return HelpSection(
        "Demo receipt codes (F5) and reversals (V)",
        (
            (
                "pay the till",
                f"smartduka-sim pay-till --url {simulator_url} {shortcode} 254712345678 450",
            ),
        ),
        note="It prints the payment's TransID, a receipt code for F5. A manager reverses a paid "
        "payment with V on its detail.",
    )


def _enrol_with_relay(folder: Path, relay: Served) -> bytes:
    """`smartduka-relay shop add --out FILE`: the shop, its first till, the till key and
    callback secret, as the relay's documented enrolment JSON.

    Run in this process (a thread) rather than a third interpreter: it saves a second of start
    time. Its printout (which names the till key) goes nowhere; the file is read back.
    """
    from callback_relay import cli as relay_cli

    out = folder / "relay" / "enrolment.json"
    printed, problems = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(problems):
        code = relay_cli.main(
            [
                "shop", "add", DEMO_SHOP_NAME, "--out", str(out),
                "--db", str(folder / "relay" / "relay.db"), "--public-url", relay.url,
            ]
        )  # fmt: skip
    if code != 0:
        raise DemoError(f"enrolling the demo shop with the relay failed: {problems.getvalue()}")
    return out.read_bytes()


def certificate_file(simulator: Served) -> Path:
    """Where the demo keeps the simulator's certificate (`daraja.certificate_file`)."""
    return simulator.ready_file.parent / "certificate.pem"


async def _register_on_simulator(
    simulator: Served, deadline: float
) -> tuple[str, tuple[Secret, Secret, Secret], InitiatorCredentials]:
    """A fresh shortcode on the simulator with new random credentials and initiator."""
    from smartduka_tui.store import Secret

    await asyncio.to_thread(simulator.wait_ready, deadline)
    credentials = (
        Secret(secrets.token_hex(16)),
        Secret(secrets.token_hex(16)),
        Secret(secrets.token_hex(32)),
    )
    shortcode, initiator = await _register_shortcode(simulator, None, credentials)
    return shortcode, credentials, initiator


async def _register_shortcode(
    simulator: Served,
    shortcode: str | None,
    credentials: tuple[Secret, Secret, Secret],
    initiator: InitiatorCredentials | None = None,
) -> tuple[str, InitiatorCredentials]:
    """Register the demo shop's shortcode (a new one when `shortcode` is None) and its
    initiator (a new one when `initiator` is None), and write the simulator's certificate."""
    from smartduka_tui.demo_shop import simulator_initiator
    from smartduka_tui.simulator.control import SimulatorControl

    key, secret, passkey = credentials
    async with SimulatorControl(simulator.url) as sim:
        registered = await sim.register_shortcode(
            shortcode,
            passkey=passkey.reveal(),
            consumer_key=key.reveal(),
            consumer_secret=secret.reveal(),
        )
        made = await simulator_initiator(
            sim, registered.shortcode, certificate_file(simulator), initiator
        )
    return registered.shortcode, made


async def _enrolment(relay: Served, folder: Path, deadline: float) -> Any:
    from smartduka_tui.cli.enrol import parse_enrolment
    from smartduka_tui.mpesa.enrolment import Enrolment

    await asyncio.to_thread(relay.wait_ready, deadline)
    raw = await asyncio.to_thread(_enrol_with_relay, folder, relay)
    parsed = parse_enrolment(raw, "the relay's enrolment")
    if not isinstance(parsed, Enrolment) or parsed.relay_url is None:
        raise DemoError("the relay's enrolment has no till")
    return parsed


async def _set_up_till(
    data_dir: Path, simulator: Served, relay: Served, folder: Path
) -> tuple[str, str, tuple[Secret, Secret, Secret], InitiatorCredentials]:
    """The till's vault: a new keyring, the demo shop with its simulator credentials and
    initiator, and the till as the relay enrolled it. Returns the shop id, its shortcode,
    credentials and initiator. The three parts start together."""
    from smartduka_tui.demo_shop import OpenShift, ensure_keyring, new_till_folder
    from smartduka_tui.model import ShopType
    from smartduka_tui.store import Enrolment, Secret, ShopConfig, ShopSecrets

    deadline = time.monotonic() + READY_TIMEOUT_S
    (shortcode, credentials, initiator), parsed, _ = await asyncio.gather(
        _register_on_simulator(simulator, deadline),
        _enrolment(relay, folder, deadline),
        asyncio.to_thread(ensure_keyring, data_dir),
    )
    await new_till_folder(
        data_dir,
        ShopConfig(
            id=parsed.shop_id,
            name=parsed.shop_name or DEMO_SHOP_NAME,
            mpesa_type=ShopType.PAYBILL,
            account_prefix=DEMO_PREFIX,
            business_shortcode=shortcode,
        ),
        ShopSecrets(*credentials),
        Enrolment(
            shop_id=parsed.shop_id,
            till_id=parsed.till_id,
            relay_url=parsed.relay_url,
            till_key=Secret(parsed.till_key),
            callback_kid=parsed.callback_kid,
            callback_secret=Secret(parsed.callback_secret),
        ),
        initiator=initiator,
        # Cash needs an open shift; the demo's drawer starts with one, audited as the system's.
        shift=OpenShift(DEMO_CASHIER, DEMO_FLOAT),
    )
    return str(parsed.shop_id), shortcode, credentials, initiator


def live_payments(data_dir: Path) -> int:
    """How many payments in the till's database still await an outcome (0 without one)."""
    database = data_dir / "till.db"
    if not database.exists():
        return 0
    # Read-only and outside the store: the app has closed it, and no key is needed to count.
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM attempts WHERE state IN ('CREATED', 'PENDING', 'UNKNOWN')"
        ).fetchone()
    return int(count)


_LOST = {
    "simulator": "Prompts it had open are lost: check those sales.",
    "relay": "Callbacks it held are kept in its database.",
}


async def watch_servers(
    demo: Demo, tell: Callable[[str], None], every_s: float = WATCH_EVERY_S
) -> None:
    """Start again a simulator or relay that died, and `tell` the cashier; runs until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        for server in (demo.simulator, demo.relay):
            code = server.proc.poll()
            if code is None:
                continue
            try:
                await asyncio.to_thread(server.restart)
                if server is demo.simulator:
                    await _register_shortcode(
                        server, demo.shortcode, demo.credentials, demo.initiator
                    )
            except Exception as error:
                tell(f"The demo's {server.name} stopped and could not be restarted: {error}")
                continue
            lost = _LOST[server.name]
            tell(f"The demo's {server.name} stopped (exit {code}) and was restarted. {lost}")


@asynccontextmanager
async def demo_environment(
    *, keep: bool = False, servers_started: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[Demo]:
    """Simulator and relay running, the demo till set up; all stopped and removed after.
    `servers_started` is awaited once both are spawned, before the till's modules load (the
    app paints then)."""
    from smartduka_tui.config import Settings

    folder = Path(tempfile.mkdtemp(prefix="smartduka-demo-"))
    servers: list[Served] = []
    try:
        simulator = start_server("simulator", "smartduka_tui.simulator", folder / "simulator")
        servers.append(simulator)
        relay = start_server(
            "relay",
            "callback_relay",
            folder / "relay",
            ["--db", str(folder / "relay" / "relay.db")],
        )
        servers.append(relay)
        if servers_started is not None:
            await servers_started()
        # The till's modules load while the two servers start, on a thread: the painted
        # checkout answers keys meanwhile (as `SmartDukaApp.load_behind` does for `smartduka`).
        await asyncio.to_thread(load_modules, APP_MODULES)
        data_dir = folder / "till"
        shop_id, shortcode, credentials, initiator = await _set_up_till(
            data_dir, simulator, relay, folder
        )
        settings = Settings(
            data_dir=data_dir,
            shop_id=shop_id,
            daraja={"base_url": simulator.url, "certificate_file": certificate_file(simulator)},
            relay={"url": relay.url},
            # A file printer in the demo folder: receipts print (ESC/POS bytes) with nothing
            # to plug in, and the status bar and success screen show a working printer.
            printer={"kind": "file", "path": folder / "receipt-printer"},
        )
        yield Demo(
            folder,
            settings,
            simulator,
            relay,
            (magic_phone_help(), receipt_code_help(simulator.url, shortcode)),
            shortcode,
            credentials,
            initiator,
        )
    finally:
        # SIGTERM went to both before anything here can be interrupted (a second Ctrl+C); and
        # they die with this process anyway (`_die_with_parent`).
        await stop_servers(servers)
        live = live_payments(folder / "till")
        if live:
            print(
                f"smartduka demo: {live} payment(s) still await an outcome; the demo folder "
                f"is kept at {folder} so none is lost",
                file=sys.stderr,
            )
        elif keep:
            print(f"smartduka demo: the demo folder is kept at {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- commands


def run_demo(args: argparse.Namespace) -> int:
    try:
        code = asyncio.run(_demo(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        code = EXIT_INTERRUPTED
    except DemoError as error:
        print(f"smartduka demo: {error}", file=sys.stderr)
        return EXIT_FAILED
    if code == EXIT_INTERRUPTED:
        print("smartduka demo: stopped; the simulator and relay were shut down", file=sys.stderr)
    _leave_now(code)


def _leave_now(code: int) -> NoReturn:
    """End the process: the servers are stopped, the till closed and the folder removed (or
    kept and named). The interpreter's own teardown would then free, object by object, the
    memory of a whole till that the system frees at once: a third of a second of a quit on
    the 2-core machine, with nothing left to save. Logs and output are flushed first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


async def _demo(args: argparse.Namespace) -> int:
    running: list[SmartDukaApp] = []
    main_task = asyncio.current_task()

    def stop() -> None:
        """SIGINT, SIGTERM or SIGHUP: end like the cashier quitting (the app closes the
        terminal properly), or, before the app is up, unwind the start-up; cleanup runs either
        way. SIGINT is ours too: left to asyncio it cancels the main task, and a cancel that
        lands while Textual is starting is swallowed there (the demo would not stop)."""
        if running:
            running[0].stop(EXIT_INTERRUPTED)
        elif main_task is not None:
            main_task.cancel()

    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop)
    try:
        if args.headless_check:
            async with demo_environment(keep=args.keep) as demo:
                return await headless_check(demo)
        return await _demo_app(args, running)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def _demo_app(args: argparse.Namespace, running: list[SmartDukaApp]) -> int:
    """The app, started with the servers: it paints while they boot; its till opens after."""
    from smartduka_tui.cli.app import till_services, until_painted
    from smartduka_tui.ui.app import make_app

    app = make_app()
    running.append(app)
    app_run = asyncio.create_task(app.run_async())
    painted = partial(until_painted, app, app_run)
    try:
        async with demo_environment(keep=args.keep, servers_started=painted) as demo:
            if app_run.done():  # stopped (a signal) while the demo was setting up
                return app.return_code or 0
            watcher = asyncio.create_task(watch_servers(demo, lambda words: _tell(running, words)))
            app.when_closing(partial(_stop_servers_now, demo, watcher))
            try:
                async with till_services(
                    demo.settings, help_sections=demo.help_sections
                ) as services:
                    app.open_till(demo.settings, services)
                    await app_run
                    return app.return_code or 0
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
    except BaseException:
        # The demo could not start: the app goes first, then the error is said.
        app.exit(return_code=EXIT_FAILED)
        await asyncio.gather(app_run, return_exceptions=True)
        raise


def _stop_servers_now(demo: Demo, watcher: asyncio.Task[None]) -> None:
    """The app has begun to close: SIGTERM to both servers now, so they stop while the app
    restores the terminal and the till behind it closes, instead of after (nothing uses them
    once the cashier has quit; a payment still waiting is kept in the till's store). The
    watcher goes first, so that it restarts neither; `demo_environment` waits for them."""
    watcher.cancel()
    demo.simulator.terminate()
    demo.relay.terminate()


def _tell(running: list[SmartDukaApp], words: str) -> None:
    """On the app's screen when it is up (the terminal is its), else on standard error."""
    if running and running[0].is_running:
        running[0].notify(words, title="Demo", severity="warning", timeout=30)
    else:
        print(f"smartduka demo: {words}", file=sys.stderr)


async def headless_check(demo: Demo) -> int:
    """One payment to the simulator's "pays" number through the payment service and the
    relay; prints what happened. The CI smoke test and the README use it."""
    from smartduka_tui.cli.app import log_to_file, opened_till
    from smartduka_tui.relay_client import wait_for_outcome

    started = time.monotonic()
    log_to_file(demo.settings.data_dir)
    async with opened_till(demo.settings) as till:
        view = await till.engine.start_payment("DEMO1", 10, PAYS_PHONE)
        print(f"sent: sale {view.sale_ref}, KES {view.amount} to {view.phone_masked}", flush=True)
        view = await wait_for_outcome(till.engine, view.attempt_id, 60.0, till.link)
    took = time.monotonic() - started
    print(f"outcome: {view.state.value} ({view.stage.value}) in {took:.1f} s")
    if view.receipt:
        print(f"receipt: {view.receipt}")
    print(view.cashier_message)
    return EXIT_OK if view.is_paid else EXIT_NOT_PAID
