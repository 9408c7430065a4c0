"""`smartduka` (no command) and `smartduka app`: the cashier app for the configured shop.

Opens the till's data folder, starts the payment engine (with its reconciler), the relay client
and the Daraja probe on one event loop, and runs the Textual app on that same loop, so the
engine's listeners and the app's messages never cross threads. Everything is closed again when
the app exits. Unexpected errors go to `<data_dir>/logs/till.log`; the screen shows plain words.

At a terminal the app comes first: its checkout paints (and takes the cashier's digits) before
the settings, the engine and its network clients load, which is most of the start-up time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_NOT_SET_UP,
    CliError,
    load_modules,
    run,
    run_guarded,
    settings_for,
)

if TYPE_CHECKING:
    from smartduka_tui.clock import Clock
    from smartduka_tui.config import Settings
    from smartduka_tui.payments.c2b import C2BDesk
    from smartduka_tui.payments.manager import ManagerService
    from smartduka_tui.payments.service import PaymentEngine
    from smartduka_tui.payments.statement import StatementService
    from smartduka_tui.relay_client import TillLink
    from smartduka_tui.ui.app import SmartDukaApp
    from smartduka_tui.ui.services import AppServices, HelpSection

LOG_FILE = Path("logs") / "till.log"
# What the app loads before its first screen (see `load_modules`).
APP_MODULES = (
    "smartduka_tui.config",
    "smartduka_tui.payments.bootstrap",
    "smartduka_tui.relay_client",
    "smartduka_tui.ui.app",
    # What a first sale shows, loaded while the till opens rather than at the cashier's Enter.
    "smartduka_tui.ui.screens.phone",
    "smartduka_tui.ui.screens.waiting",
    "smartduka_tui.ui.screens.success",
    "smartduka_tui.ui.screens.failure",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "app",
        help="open the cashier app (the default when no command is given)",
        description="Open the cashier app for the configured shop.",
    )
    parser.set_defaults(handler=run_app)


def run_app(args: argparse.Namespace) -> int:
    """What `smartduka` runs with no command."""
    config_file = getattr(args, "config", None)
    if not sys.stdout.isatty():
        # No terminal to paint on (a script): open the till first, so that a till that cannot
        # open says why on a clean standard error.
        load_modules(APP_MODULES)
        return run(config_file, open_and_run)
    return run_guarded(lambda: paint_then_open(config_file))


async def paint_then_open(config_file: str | None) -> int:
    """Run the app, and open the till behind it once its checkout has painted."""
    with collector_paused():
        load_modules(("smartduka_tui.ui.app",))
        from smartduka_tui.ui.app import make_app

        app = make_app()
        running = asyncio.create_task(app.run_async())
        await until_painted(app, running)
    if running.done():
        running.result()
        return app.return_code or 0
    try:
        await app.load_behind(partial(load_modules, APP_MODULES))
        settings = settings_for(config_file)
        async with till_services(settings) as services:
            app.open_till(settings, services)
            await running
    except BaseException:
        # The till could not open: the app goes, and then the error is said on the terminal.
        app.exit(return_code=1)
        await asyncio.gather(running, return_exceptions=True)
        raise
    return app.return_code or 0


@contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off until the first frame: the app's first screen builds many
    objects that live as long as it does, and the collector scanned them again and again
    while it mounted (about 30 collections). What was built is then frozen out of later
    collections, as `load_modules` does for imports."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


async def until_painted(app: SmartDukaApp, running: asyncio.Task[Any]) -> None:
    """Wait until `app`'s checkout has painted, or the app has stopped (whichever first)."""
    painted = asyncio.create_task(app.painted.wait())
    await asyncio.wait((running, painted), return_when=asyncio.FIRST_COMPLETED)
    painted.cancel()


async def open_and_run(settings: Settings) -> int:
    async with till_services(settings) as services:
        return await run_cashier_app(settings, services)


async def run_cashier_app(settings: Settings, services: AppServices) -> int:
    """Run the app on the current event loop until the cashier quits."""
    from smartduka_tui.ui.app import make_app

    app: SmartDukaApp = make_app(settings, services)
    await app.run_async()
    return app.return_code or 0


def log_to_file(data_dir: Path) -> Path:
    """Send this process's log records to `<data_dir>/logs/till.log` (the terminal belongs to
    the app). Returns the file's path, which the app names in its error messages."""
    _file_log(data_dir)
    return Path(data_dir) / LOG_FILE


def _file_log(data_dir: Path) -> logging.FileHandler:
    path = Path(data_dir) / LOG_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


@asynccontextmanager
async def open_till(
    settings: Settings, clock: Clock
) -> AsyncIterator[tuple[PaymentEngine, TillLink]]:
    """The till's running engine (with its reconciler) and its relay link and Daraja probe."""
    from smartduka_tui.payments.api import PaymentRefused
    from smartduka_tui.payments.bootstrap import running_engine
    from smartduka_tui.relay_client import till_link
    from smartduka_tui.store import KeyMissingError

    async with AsyncExitStack() as stack:
        try:
            engine = await stack.enter_async_context(running_engine(settings, clock=clock))
        except KeyMissingError as error:
            # No keyring yet: a till never set up, which `smartduka pay` also exits 3 for.
            raise CliError(str(error), EXIT_NOT_SET_UP) from None
        except PaymentRefused as error:
            raise CliError(
                f"this till cannot take payments yet: {error.message}", EXIT_NOT_SET_UP
            ) from None
        link = await stack.enter_async_context(till_link(engine, settings, clock=clock))
        yield engine, link


def manager_tools(
    engine: PaymentEngine, link: TillLink, reversals: StatementService | None = None
) -> ManagerService:
    """The manager tools for this till, loaded the first time a manager screen opens; "verify
    chain" compares against the relay's checkpoint when there is a relay, and reversals go
    through the receipt checks' service (the relay brings M-Pesa's results)."""
    from smartduka_tui.payments.manager import ManagerService

    source = link.relay.fetch_checkpoint if link.relay is not None else None
    return ManagerService.for_engine(engine, chain_checkpoint=source, reversals=reversals)


def receipt_checks(engine: PaymentEngine, link: TillLink) -> StatementService | None:
    """Receipt checks need the relay: M-Pesa's answers come through its feed."""
    from smartduka_tui.payments.statement import statement_service

    if link.relay is None:
        return None
    service = statement_service(engine)
    link.relay.results = service.accept_result
    return service


def c2b_desk(
    engine: PaymentEngine, settings: Settings, clock: Clock, link: TillLink
) -> C2BDesk | None:
    """The checkout's direct payments, claimed at this till's relay (none without a relay)."""
    from smartduka_tui.connectivity import ObservedGateway
    from smartduka_tui.payments.c2b import C2BDesk
    from smartduka_tui.payments.gateway import DirectGateway
    from smartduka_tui.relay_client import EventOutcome, HandledEvent, c2b_claimer

    if link.relay is None:
        return None
    relay_url = settings.relay_url_for(engine.till.relay_url)
    claim = c2b_claimer(relay_url, engine.till.till_key.reveal())
    gateway = engine.gateway
    if isinstance(gateway, ObservedGateway):
        gateway = gateway.inner
    # Dynamic QR needs the shop's own shortcode and credentials; platform shops have neither.
    make_qr = (
        partial(gateway.sale_qr, engine.shop.name) if isinstance(gateway, DirectGateway) else None
    )
    desk = C2BDesk(engine.store, engine.shop_id, engine.till_id, clock, claim, make_qr=make_qr)

    def stored(handled: HandledEvent) -> None:
        # The checkout's panel shows a direct payment as soon as the feed has stored it.
        if handled.event.kind == "c2b" and handled.outcome is EventOutcome.APPLIED:
            desk.arrived()

    link.relay.on_event(stored)
    return desk


@asynccontextmanager
async def till_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    help_sections: tuple[HelpSection, ...] = (),
) -> AsyncIterator[AppServices]:
    """This till, opened, as the app's services."""
    from smartduka_tui.clock import SystemClock

    the_clock = clock or SystemClock()
    # The log file is this till's: taken off when the till closes, so a process that opens
    # another till (or removes this data folder) never writes into a folder that is gone.
    log = _file_log(settings.data_dir)
    log_path = Path(settings.data_dir) / LOG_FILE
    try:
        async with _opened_services(settings, the_clock, help_sections, log_path) as services:
            yield services
    finally:
        logging.getLogger().removeHandler(log)
        log.close()


@asynccontextmanager
async def _opened_services(
    settings: Settings, the_clock: Clock, help_sections: tuple[HelpSection, ...], log_path: Path
) -> AsyncIterator[AppServices]:
    from smartduka_tui.receipts.desk import ReceiptDesk
    from smartduka_tui.ui.services import AppServices, TillIdentity

    async with open_till(settings, the_clock) as (engine, link):
        checks = receipt_checks(engine, link)
        try:
            yield AppServices(
                payments=engine,
                clock=the_clock,
                identity=TillIdentity(
                    engine.shop_id, engine.till_id, engine.shop.name, engine.shop.account_prefix
                ),
                connection=link.connection,
                help_sections=help_sections,
                log_path=log_path,
                manager_tools=partial(manager_tools, engine, link, checks),
                c2b=c2b_desk(engine, settings, the_clock, link),
                receipt_checks=checks,
                receipts=ReceiptDesk(
                    engine.store, engine.shop_id, engine.till_id, settings.printer
                ),
            )
        finally:
            if checks is not None:
                await checks.aclose()
