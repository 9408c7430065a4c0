"""`smartduka demo` and `smartduka` as a user runs them: real processes, a real terminal (pty)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from smartduka_tui.cli.app import till_services
from smartduka_tui.cli.demo import (
    DEMO_CASHIER,
    DEMO_FLOAT,
    DemoError,
    Served,
    _stop_servers_now,
    demo_environment,
    live_payments,
    stop_servers,
    watch_servers,
)
from smartduka_tui.clock import SystemClock
from smartduka_tui.manager import ActionRefused
from smartduka_tui.model import AttemptFlag, AttemptState
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.secret import Secret
from smartduka_tui.till import open_till
from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.services import UiOptions
from smartduka_tui.words import verdict_words
from tests.integration.support import clean_env, eventually

SMARTDUKA = [
    sys.executable,
    "-c",
    "import sys; from smartduka_tui.cli import main; sys.exit(main())",
]
FIRST_SCREEN = b"Sale reference"
# The checkout paints while the servers boot; the status bar names the shop once the till is open.
TILL_OPEN = b"Demo Duka"


def children_of(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return {int(line) for line in found.stdout.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; its parent has simply not reaped it yet.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


class Terminal:
    """`smartduka ARGS` in a pseudo-terminal of 80x24, as a cashier's shell would run it."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.environ.clear()
            os.environ.update({**env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"})
            os.execv(sys.executable, [*SMARTDUKA, *args])  # noqa: S606 - our own program
        self.output = b""

    def read_until(self, marker: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    break
        return marker in self.output

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read_until(b"\x00never", 0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"smartduka did not exit; it printed: {self.output[-2000:]!r}")


def test_headless_check_pays_end_to_end_and_stops_its_servers() -> None:
    result = subprocess.run(
        [*SMARTDUKA, "demo", "--headless-check", "--keep"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "outcome: COMPLETED (paid)" in result.stdout
    assert "receipt: " in result.stdout
    assert "Traceback" not in result.stderr
    folder = Path(result.stderr.split("kept at ", 1)[1].strip())
    try:
        assert (folder / "till" / "till.db").exists()
        # The servers' command lines name their ready files in the folder: none is left.
        left = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, check=False)
        assert left.stdout == b""
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("stop", ["ctrl+q", "SIGTERM"])
def test_demo_opens_the_app_and_stops_its_servers_on_exit(stop: str) -> None:
    terminal = Terminal("demo", env=clean_env())
    assert terminal.read_until(FIRST_SCREEN, timeout=60), terminal.output[-2000:]
    servers = children_of(terminal.pid)
    assert len(servers) == 2  # the simulator and the relay
    if stop == "ctrl+q":
        os.write(terminal.fd, b"\x11")
    else:
        os.kill(terminal.pid, signal.SIGTERM)
    code = terminal.wait(timeout=30)
    assert code in (0, 130)
    assert b"Traceback" not in terminal.output
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in servers)


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_demo_restarts_a_server_that_died_and_says_so() -> None:
    """Issue case 8: the demo never noticed its simulator or relay had died."""
    terminal = Terminal("demo", env=clean_env())
    try:
        assert terminal.read_until(TILL_OPEN, timeout=60), terminal.output[-2000:]
        for name, module in (("relay", "callback_relay"), ("simulator", "smartduka_tui.simulator")):
            (victim,) = [p for p in children_of(terminal.pid) if module in command_line(p)]
            os.kill(victim, signal.SIGKILL)
            said = f"{name} stopped".encode()
            assert terminal.read_until(said, timeout=60), terminal.output[-3000:]
            assert terminal.read_until(b"restarted", timeout=30), terminal.output[-3000:]
            servers = children_of(terminal.pid)
            assert victim not in servers and len(servers) == 2
            assert all(alive(pid) for pid in servers)
            terminal.output = b""
        os.write(terminal.fd, b"\x11")
        assert terminal.wait(timeout=30) in (0, 130)
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(terminal.pid, signal.SIGKILL)
            os.waitpid(terminal.pid, 0)
    assert b"Traceback" not in terminal.output


async def test_the_demo_keeps_its_folder_while_a_payment_is_live(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue case 5: quitting the demo with a payment in flight removed its folder (and the
    payment with it). A folder with nothing live is still removed."""
    async with demo_environment() as idle:
        assert live_payments(idle.folder / "till") == 0
    assert not idle.folder.exists()
    async with demo_environment() as demo, open_till(demo.settings) as till:
        # The simulator's "never answers" number: the prompt stays open.
        view = await till.engine.start_payment("LIVE1", 10, "254700000007")
        assert view.is_live
    try:
        assert live_payments(demo.folder / "till") == 1
        assert f"1 payment(s) still await an outcome; the demo folder is kept at {demo.folder}" in (
            capsys.readouterr().err
        )
    finally:
        shutil.rmtree(demo.folder)


async def test_the_servers_are_told_to_stop_as_soon_as_the_app_is_told_to_exit() -> None:
    """Issue #18: the servers stopped only after the app had closed, one shutdown after the
    other. Now SIGTERM goes at the app's exit, before it has closed, and the watcher that
    restarts a dead server is off by then (it must not restart them)."""
    told: list[str] = []
    async with demo_environment() as demo:
        watcher = asyncio.create_task(watch_servers(demo, told.append))
        app = make_app(options=UiOptions(cursor_blink=False))
        app.when_closing(lambda: _stop_servers_now(demo, watcher))
        async with app.run_test(size=(80, 24)):
            await app.painted.wait()
            assert demo.simulator.stop_by is None and demo.relay.stop_by is None
            app.exit()
            assert demo.simulator.stop_by is not None and demo.relay.stop_by is not None
            assert app.is_running  # still closing
            with pytest.raises(DemoError, match="the relay is being stopped"):
                demo.relay.restart()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            assert watcher.cancelled()
    assert demo.simulator.proc.poll() is not None and demo.relay.proc.poll() is not None
    assert told == []


async def test_a_server_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    ignores = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", ignores], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ignoring\n"
    proc.stdout.close()
    stubborn = Served("stubborn", proc, tmp_path / "port", tmp_path / "log", [])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    already = Served("already", gone, tmp_path / "port2", tmp_path / "log2", [])
    await stop_servers([stubborn, already])
    assert proc.returncode == -signal.SIGKILL
    assert gone.returncode == 0


async def test_the_demo_relay_ends_on_sigterm_while_its_till_long_polls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #18: the relay outlived its SIGTERM while the till's long-poll was open (uvicorn
    waited for it, then cancelled it), so the demo's quit always ended in SIGKILL. The grace is
    made long here: only a hang would reach it, and the relay must not need its own graceful
    timeout either."""
    monkeypatch.setenv("SMARTDUKA_RELAY_LOG_LEVEL", "debug")  # the feed logs each open poll

    async def poll_open() -> bool:
        return "long-poll open" in demo.relay.log_file.read_text(errors="replace")

    async with demo_environment() as demo, open_till(demo.settings, clock=SystemClock()):
        assert await eventually(poll_open, timeout=60)
        demo.relay.terminate(grace_s=60)
        await stop_servers([demo.relay])
        log = demo.relay.log_file.read_text(errors="replace")
    assert demo.relay.proc.returncode == -signal.SIGTERM
    assert "timeout graceful shutdown exceeded" not in log
    assert "killed" not in log


async def test_the_demo_till_takes_cash_in_its_open_shift() -> None:
    """Cash needs an open shift (issue #15); the demo opens one with its float, so F10 works in
    the demo at once and the X report counts the cash."""
    async with (
        demo_environment() as demo,
        till_services(demo.settings, help_sections=demo.help_sections) as services,
    ):
        engine = services.payments
        assert isinstance(engine, PaymentEngine)
        taken = await engine.sales.take_cash("DEMO8", 350, 500)
        assert (taken.completed, taken.change) == (True, 150)
        shift = await engine.store.shifts.current(engine.shop_id, engine.till_id)
        assert shift is not None and (shift.cashier, shift.opening_float) == (
            DEMO_CASHIER,
            DEMO_FLOAT,
        )


async def test_the_demo_checks_a_receipt_code_and_reverses_the_payment() -> None:
    """Issue #14: the demo had no initiator, so F5 and V answered "not set up". Through the
    demo's own composition (its environment and the app's services): a receipt the customer
    shows pays a failed sale, and a manager reverses it, M-Pesa's results via the relay."""
    async with (
        demo_environment() as demo,
        till_services(demo.settings, help_sections=demo.help_sections) as services,
    ):
        engine = services.payments
        assert isinstance(engine, PaymentEngine) and services.receipt_checks is not None
        # The simulator's "cancels the prompt" number: the sale is left unpaid.
        view = await engine.start_payment("DEMO7", 450, "254700000001")

        async def settled() -> bool:
            return not (await engine.get(view.attempt_id)).is_live

        assert await eventually(settled, timeout=60)
        assert (await engine.get(view.attempt_id)).state is AttemptState.FAILED
        async with SimulatorControl(demo.simulator.url) as sim:
            paid = await sim.pay_till(demo.shortcode, "254712345678", 450)

        verdict = await services.receipt_checks.verify_receipt(paid.trans_id, "DEMO7")
        assert verdict.accepted, verdict
        assert verdict.receipt == paid.trans_id and verdict.sale_ref == "DEMO7"
        assert verdict.amount_paid == Decimal(450)
        assert verdict_words(verdict) == f"Paid: receipt {paid.trans_id}, KES 450 for sale DEMO7."
        attempt = await engine.store.attempts.get(engine.shop_id, int(view.attempt_id))
        assert attempt is not None and attempt.receipt_number == paid.trans_id

        manager = services.manager
        assert manager is not None
        assert (await manager.set_first_pin(Secret("4826"), Secret("4826"))).accepted
        done = await manager.reverse(f"A{attempt.id}", "customer paid twice: STK and till")
        assert done.message == (
            f"Reversed: KES 450 of receipt {paid.trans_id} (sale DEMO7) went back to the customer."
        )
        reversed_ = await engine.store.attempts.get(engine.shop_id, attempt.id)
        assert reversed_ is not None and AttemptFlag.REVERSED in reversed_.flags
        with pytest.raises(ActionRefused, match=r"^it is already reversed$"):
            await manager.reverse(f"A{attempt.id}", "asked again")
        # The help says how to pay the demo till directly, for a code to type at F5.
        (receipt_help,) = [s for s in services.help_sections if "F5" in s.title]
        assert f"pay-till --url {demo.simulator.url} {demo.shortcode}" in receipt_help.rows[0][1]


def test_demo_interrupted_while_starting_leaves_nothing_behind() -> None:
    terminal = Terminal("demo", env=clean_env())
    deadline = time.monotonic() + 30
    servers: set[int] = set()
    while len(servers) < 2 and time.monotonic() < deadline:
        servers = children_of(terminal.pid)
        time.sleep(0.02)
    assert len(servers) == 2
    os.kill(terminal.pid, signal.SIGINT)
    assert terminal.wait(timeout=30) == 130
    assert b"Traceback" not in terminal.output
    assert b"shut down" in terminal.output
    time.sleep(0.2)
    assert not any(alive(pid) for pid in servers)


def test_smartduka_without_a_till_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        SMARTDUKA,
        capture_output=True,
        text=True,
        env=clean_env(SMARTDUKA_DATA_DIR=str(tmp_path)),
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("smartduka: error: no encryption key")
    assert "smartduka keys init" in result.stderr
    assert "Traceback" not in result.stderr


def test_smartduka_at_a_terminal_without_a_till_paints_then_says_what_to_do(
    tmp_path: Path,
) -> None:
    """At a terminal the checkout paints before the till opens (issue #18): a till that cannot
    open closes the app again and then says why, as it does without a terminal."""
    terminal = Terminal(env=clean_env(SMARTDUKA_DATA_DIR=str(tmp_path)))
    assert terminal.read_until(b"opening the till", timeout=60), terminal.output[-2000:]
    assert terminal.wait(timeout=60) == 3
    said = terminal.output.rsplit(b"\x1b[?1049l", 1)[-1]  # after the app left the screen
    assert b"smartduka: error: no encryption key" in said
    assert b"Traceback" not in terminal.output
