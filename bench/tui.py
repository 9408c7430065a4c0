"""Cashier app benchmark: start to first interactive screen, and memory after 100 sales.

Run: `.venv/bin/python bench/tui.py [--starts N] [--sales N]`

Both run on the demo stack (`smartduka demo`'s simulator and relay as real processes on
loopback, a demo shop in a throwaway folder).

1. Start: `smartduka` (the real console script, a new Python process) is started N times in a
   pseudo-terminal of 80x24 against the demo till, and so is a bare Textual app (an Input, a
   label and a footer), alternately, in the same run. Printed: the median and worst time from
   the spawn to the first frame of the interactive checkout (its total field focused and taking
   keys; the till still loading behind it), the same for the bare app and their ratio (target
   <= 1.5 x bare and <= 0.6 s), and the time until the till is open (its sale reference filled
   in: the engine, store and relay link up).
2. Memory: the app runs in this process (headless, `run_test`) on the same till, its engine,
   relay client and probe included, and a cashier is scripted through N sales (total, Enter,
   phone, Enter, wait for the paid screen, Enter) each paid through the relay's feed. Keys are
   posted to the app as the terminal driver posts them (Pilot's `press` would also wait for the
   process to look idle after each key, which a busy till rarely does). VmRSS is read from
   /proc/self/status before the first sale, after the first, every 10 and after the last, with
   the peak (VmHWM). Target 150 MB (DESIGN.md section 9; issue #18 asks for 100 MB). The app
   runs in a Python process of its own (`in_till_process`) that loads what a till loads: this
   one also holds the demo's set-up (it enrols the till with the relay's own modules) and the
   simulator's control client, which no till has.

Both sides of the start are timed the same way. The machine sets `PYTHONDONTWRITEBYTECODE=1`
and the children inherit it, so nothing is cached as they import: the bare app's libraries come
compiled from site-packages (pip compiled them at install), while the till's own sources (an
editable install) would be compiled from source on every start, a cost no installed till pays.
So the bench first compiles the project once (`compile_project`: `compileall` into the normal
`__pycache__` folders, the files pip would write), and both children read compiled files.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events

from smartduka_tui.cli.app import till_services
from smartduka_tui.clock import SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.services import UiOptions

if TYPE_CHECKING:
    # The parent's side only (the demo's servers): the till's process never imports them.
    from smartduka_tui.cli.demo import Demo

SMARTDUKA = "import sys; from smartduka_tui.cli import main; sys.exit(main())"
# The baseline: the least a Textual 8 app with a focused field shows, started the same way.
BARE_TEXTUAL = """
from textual.app import App
from textual.widgets import Footer, Input, Label

class Bare(App[None]):
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def compose(self):
        yield Label("Total (KES)")
        yield Input(id="total")
        yield Footer()

Bare().run()
"""
CHECKOUT_PAINTED = b"Total (KES)"
ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("smartduka_tui", "callback_relay")
PAYS = "0700000000"


def compile_project() -> None:
    """Compile the project's packages into their `__pycache__` folders, as pip does for an
    installed package, so that the started till reads compiled files as the bare app's
    libraries do (see the module's docstring)."""
    for package in PROJECT_PACKAGES:
        if not compileall.compile_dir(ROOT / package, quiet=1):
            raise SystemExit(f"bench: compiling {package} failed")
    print(f"compiled {', '.join(PROJECT_PACKAGES)} once: both apps start from compiled files")


def memory_kb() -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def till_env(demo: Demo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTDUKA_")}
    env.update(
        TERM="xterm-256color",
        COLUMNS="80",
        LINES="24",
        SMARTDUKA_DATA_DIR=str(demo.settings.data_dir),
        SMARTDUKA_SHOP_ID=str(demo.settings.shop_id),
        SMARTDUKA_DARAJA__BASE_URL=demo.simulator.url,
        SMARTDUKA_RELAY__URL=demo.relay.url,
    )
    return env


def one_start(program: str, env: dict[str, str], *markers: bytes) -> list[float]:
    """Seconds from spawning `program` to the first frame showing each marker, in turn."""
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-c", program], env)  # noqa: S606
    output = b""
    seen: list[float] = []
    deadline = started + 60
    while time.monotonic() < deadline and len(seen) < len(markers):
        readable, _, _ = select.select([fd], [], [], 0.01)
        if readable:
            output += os.read(fd, 65536)
            while len(seen) < len(markers) and markers[len(seen)] in output:
                seen.append(time.monotonic() - started)
    os.write(fd, b"\x11")  # Ctrl+Q
    end = time.monotonic() + 20
    while time.monotonic() < end:
        readable, _, _ = select.select([fd], [], [], 0.05)
        if readable:
            try:
                os.read(fd, 65536)
            except OSError:
                break
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    if len(seen) < len(markers):
        raise SystemExit(f"bench: {markers[len(seen)]!r} never showed; got {output[-500:]!r}")
    return seen


def press(app: Any, key: str) -> None:
    """A key as the terminal driver delivers it."""
    app.post_message(events.Key(key, "\r" if key == "enter" else None))


async def wait_for(pilot: Any, screen_type: type) -> Any:
    deadline = time.monotonic() + 60
    # Mounted too: keys that reach a screen before it is built are ignored, as a cashier's are.
    while not (isinstance(pilot.app.screen, screen_type) and pilot.app.screen.is_mounted):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: no {screen_type.__name__}; at {pilot.app.screen!r}")
        await pilot.pause(0.01)
    return pilot.app.screen


async def ring_up(
    pilot: Any, checkout: Any, sales: int, after_sale: Callable[[int], None] | None = None
) -> None:
    """A scripted cashier: `sales` sales, each paid by M-Pesa on the simulator's paying phone,
    printing the resident size after the first and every 10 (so that a run cut short still
    says something); `after_sale(n)` is called after each, n counting from 1."""
    app = pilot.app
    for number in range(sales):
        while not checkout.sale_ref:
            await pilot.pause(0.01)
        # A different amount each time: M-Pesa refuses the same amount to the same phone
        # within two minutes (result 17).
        checkout.query_one("#total").value = str(100 + number)
        press(app, "enter")
        phone_screen = await wait_for(pilot, PhoneScreen)
        phone_screen.query_one("#phone").value = PAYS
        press(app, "enter")
        await wait_for(pilot, SuccessScreen)
        press(app, "enter")
        checkout = await wait_for(pilot, CheckoutScreen)
        if number == 0 or (number + 1) % 10 == 0:
            print(f"  {number + 1} sales, VmRSS {memory_kb()['VmRSS'] / 1024:.1f} MB", flush=True)
        if after_sale is not None:
            after_sale(number + 1)


def bench_settings(demo: Demo) -> Settings:
    """The demo till's settings with a push limit a scripted cashier does not hit: the limit
    (20 a minute by default) protects customers, and is not what is measured."""
    limits = demo.settings.limits.model_copy(update={"pushes_per_minute": 10_000})
    return demo.settings.model_copy(update={"limits": limits})


async def customer_answers_at_once(demo: Demo) -> None:
    """The simulated customer pays 50 ms after the prompt: this measures the app, not a thumb."""
    from smartduka_tui.simulator.control import SimulatorControl

    async with SimulatorControl(demo.simulator.url) as sim:
        await sim.update_settings(callback_delay_s=0.05)


TILL_PROCESS = "--till-process"


async def in_till_process(script: Path, settings: Settings, *args: str) -> None:
    """Run `script TILL_PROCESS SETTINGS_FILE *args` in a new Python process, which then opens
    the till from those settings: its resident size is a till's, not this bench's (see the
    module's docstring). Its output goes to this one's."""
    settings_file = Path(settings.data_dir) / "bench-settings.json"
    settings_file.write_text(settings.model_dump_json(), encoding="utf-8")
    command = [sys.executable, str(script), TILL_PROCESS, str(settings_file), *args]
    done = await asyncio.to_thread(subprocess.run, command, check=False)
    if done.returncode:
        raise SystemExit(f"bench: the till's process exited {done.returncode}")


def settings_from(settings_file: str) -> Settings:
    return Settings.model_validate_json(Path(settings_file).read_text(encoding="utf-8"))


async def sales_session(demo: Demo, sales: int) -> None:
    await customer_answers_at_once(demo)
    await in_till_process(Path(__file__), bench_settings(demo), "--sales", str(sales))


async def sales_in_this_process(settings: Settings, sales: int) -> None:
    """The memory part's till side (in its own process: `in_till_process`)."""
    async with till_services(settings, clock=SystemClock()) as services:
        app = make_app(settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=(80, 24)) as pilot:
            checkout = await wait_for(pilot, CheckoutScreen)
            before = memory_kb()
            print(f"  before the first sale, VmRSS {before['VmRSS'] / 1024:.1f} MB")
            started = time.monotonic()
            await ring_up(pilot, checkout, sales)
            took = time.monotonic() - started
            after = memory_kb()
    print(f"memory: {sales} sales in {took:.1f} s ({took / sales * 1000:.0f} ms per sale)")
    print(f"  VmRSS before the first sale   {before['VmRSS'] / 1024:7.1f} MB")
    print(
        f"  VmRSS after the last sale     {after['VmRSS'] / 1024:7.1f} MB"
        "  (target <= 100 MB, issue #18; DESIGN.md 150 MB)"
    )
    print(f"  VmHWM (peak resident)         {after['VmHWM'] / 1024:7.1f} MB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="app starts to time")
    parser.add_argument("--sales", type=int, default=100, help="sales in the memory session")
    parser.add_argument(TILL_PROCESS, metavar="SETTINGS_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.till_process:
        await sales_in_this_process(settings_from(args.till_process), args.sales)
        return
    from smartduka_tui.cli.demo import demo_environment

    compile_project()
    async with demo_environment() as demo:
        # Memory first: the starts below poll the relay's feed with the same till key, and
        # the relay's per-key rate limit would then slow the sales' callbacks down.
        if args.sales:
            await sales_session(demo, args.sales)
        # The starts make no sale, so each shows the next reference after the session's.
        sale_ref = f"{datetime.now(KENYA_TZ):%m%d}{args.sales + 1:03d}".encode()
        env = till_env(demo)
        if args.starts:
            await starts(env, sale_ref, args.starts)


async def starts(env: dict[str, str], sale_ref: bytes, count: int) -> None:
    # One of each first warms the file cache; not counted. Then they alternate, so that a
    # change in the machine's load falls on both alike.
    await asyncio.to_thread(one_start, SMARTDUKA, env, CHECKOUT_PAINTED, sale_ref)
    await asyncio.to_thread(one_start, BARE_TEXTUAL, env, CHECKOUT_PAINTED)
    painted, opened, bare = [], [], []
    for _ in range(count):
        till = await asyncio.to_thread(one_start, SMARTDUKA, env, CHECKOUT_PAINTED, sale_ref)
        painted.append(till[0])
        opened.append(till[1])
        bare.extend(await asyncio.to_thread(one_start, BARE_TEXTUAL, env, CHECKOUT_PAINTED))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"starts ({count} of each, in a pty of 80x24; load average {load} on {os.cpu_count()})")
    for name, times in (
        ("smartduka: checkout interactive", painted),
        ("bare Textual 8 app: interactive", bare),
        ("smartduka: till open (sale ref)", opened),
    ):
        print(f"  {name}  median {statistics.median(times):.2f} s, worst {max(times):.2f} s")
    ratio = statistics.median(painted) / statistics.median(bare)
    print(f"  checkout / bare: {ratio:.2f} (target <= 1.5, and <= 0.6 s)")


if __name__ == "__main__":
    asyncio.run(main())
