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
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_SET_UP,
    CliError,
    collector_paused,
    load_modules,
    run,
    run_guarded,
    settings_for,
)

if TYPE_CHECKING:
    from smartduka_tui.clock import Clock
    from smartduka_tui.config import Settings
    from smartduka_tui.till import Till, TillNotReady
    from smartduka_tui.ui.app import SmartDukaApp
    from smartduka_tui.ui.services import AppServices, HelpSection

LOG_FILE = Path("logs") / "till.log"
# What the app loads before its first screen (see `load_modules`).
APP_MODULES = (
    "smartduka_tui.config",
    "smartduka_tui.till",
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
    # The first screen builds many objects that live as long as the app: the collector
    # scanned them again and again while it mounted (about 30 collections).
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


async def until_painted(app: SmartDukaApp, running: asyncio.Task[Any]) -> None:
    """Wait until `app`'s checkout has painted, or the app has stopped (whichever first)."""
    painted = asyncio.create_task(app.painted.wait())
    await asyncio.wait((running, painted), return_when=asyncio.FIRST_COMPLETED)
    painted.cancel()


async def open_and_run(settings: Settings) -> int:
    """Run the app on the current event loop until the cashier quits."""
    from smartduka_tui.ui.app import make_app

    async with till_services(settings) as services:
        app = make_app(settings, services)
        await app.run_async()
        return app.return_code or 0


def log_to_file(data_dir: Path) -> logging.FileHandler:
    """Send this process's log records to `<data_dir>/logs/till.log` (the terminal belongs to
    the app); the handler, for the caller that takes it off again."""
    path = Path(data_dir) / LOG_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


@asynccontextmanager
async def opened_till(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Till]:
    """The till, opened by the composition root (`smartduka_tui.till.open_till`); a till that
    cannot open becomes a CliError: exit 3 when it is not set up yet (no keyring, no shop or
    till), 2 for a setting it refuses, 1 when its data folder failed."""
    from smartduka_tui.till import TillNotReady, open_till

    async with AsyncExitStack() as stack:
        try:
            till = await stack.enter_async_context(open_till(settings, clock=clock))
        except TillNotReady as error:
            raise CliError(*_not_ready(error)) from None
        yield till


def _not_ready(error: TillNotReady) -> tuple[str, int]:
    if error.why == "no_shop":
        return f"this till cannot take payments yet: {error.message}", EXIT_NOT_SET_UP
    if error.why == "no_keys":
        # No keyring yet: a till never set up, which `smartduka pay` also exits 3 for.
        return error.message, EXIT_NOT_SET_UP
    if error.why == "bad_setting":
        return error.message, EXIT_BAD_INPUT
    return error.message, EXIT_FAILED


@asynccontextmanager
async def till_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    help_sections: tuple[HelpSection, ...] = (),
) -> AsyncIterator[AppServices]:
    """This till, opened, as the app's services: the till's own parts, and what only the app
    adds (its log file, the F1 help, the receipt printer's desk)."""
    # The log file is this till's: taken off when the till closes, so a process that opens
    # another till (or removes this data folder) never writes into a folder that is gone.
    log = log_to_file(settings.data_dir)
    try:
        async with opened_till(settings, clock) as till:
            yield app_services(till, help_sections, Path(settings.data_dir) / LOG_FILE)
    finally:
        logging.getLogger().removeHandler(log)
        log.close()


def app_services(
    till: Till, help_sections: tuple[HelpSection, ...] = (), log_path: Path | None = None
) -> AppServices:
    """The app's view of an opened till."""
    from smartduka_tui.receipts.desk import ReceiptDesk
    from smartduka_tui.ui.services import AppServices, TillIdentity

    engine = till.engine
    return AppServices(
        payments=engine,
        clock=till.clock,
        identity=TillIdentity(
            engine.shop_id, engine.till_id, engine.shop.name, engine.shop.account_prefix
        ),
        connection=till.connection,
        help_sections=help_sections,
        log_path=log_path,
        manager_tools=till.manager_tools,
        c2b=till.c2b,
        receipt_checks=till.receipt_checks,
        receipts=ReceiptDesk(till.store, engine.shop_id, engine.till_id, till.settings.printer),
    )
