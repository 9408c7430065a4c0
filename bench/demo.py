"""`smartduka demo` benchmark: start to its first screen, and the time to quit.

Run: `.venv/bin/python bench/demo.py [--runs N]`

`smartduka demo` (the real console script, a new Python process) runs N times in a pseudo-terminal
of 80x24. Printed, as median and worst: from the spawn to the first frame of the interactive
checkout (the simulator and relay still booting behind it), to the till open (its sale reference
filled in: servers up, shop enrolled, engine running), and from Ctrl+Q to the process gone with
both servers stopped (target < 1 s). A bare Textual 8 app started the same way in the same run
is the baseline, with the machine's load. As in `bench/tui.py`, the project is compiled once
first, so that the demo (and its servers) read compiled files as the bare app's libraries do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tui import BARE_TEXTUAL, CHECKOUT_PAINTED, compile_project, one_start
from smartduka_tui.mpesa.kenya_time import KENYA_TZ

DEMO = "import sys; from smartduka_tui.cli import main; sys.exit(main(['demo']))"


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTDUKA_")}
    env.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
    return env


def one_demo(env: dict[str, str], sale_ref: bytes) -> tuple[float, float, float]:
    """Seconds to the checkout, to the open till, and from Ctrl+Q to the exit."""
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-c", DEMO], env)  # noqa: S606
    output = b""
    seen: list[float] = []
    markers = (CHECKOUT_PAINTED, sale_ref)
    deadline = started + 120
    while time.monotonic() < deadline and len(seen) < len(markers):
        readable, _, _ = select.select([fd], [], [], 0.01)
        if readable:
            output += os.read(fd, 65536)
            while len(seen) < len(markers) and markers[len(seen)] in output:
                seen.append(time.monotonic() - started)
    if len(seen) < len(markers):
        os.kill(pid, signal.SIGKILL)
        raise SystemExit(f"bench: the demo never showed {markers[len(seen)]!r}: {output[-500:]!r}")
    quit_at = time.monotonic()
    os.write(fd, b"\x11")  # Ctrl+Q
    gone: float | None = None
    while time.monotonic() < quit_at + 30:
        readable, _, _ = select.select([fd], [], [], 0.005)
        if readable:
            with contextlib.suppress(OSError):
                os.read(fd, 65536)
        if os.waitpid(pid, os.WNOHANG)[0]:
            gone = time.monotonic()
            break
    os.close(fd)
    if gone is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise SystemExit("bench: the demo did not quit within 30 s")
    return seen[0], seen[1], gone - quit_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="demo runs to time")
    args = parser.parse_args()
    compile_project()
    env = demo_env()
    sale_ref = f"{datetime.now(KENYA_TZ):%m%d}001".encode()
    one_demo(env, sale_ref)  # warms the file cache; not counted
    painted, opened, quits, bare = [], [], [], []
    for _ in range(args.runs):
        checkout, till_open, quit_s = one_demo(env, sale_ref)
        painted.append(checkout)
        opened.append(till_open)
        quits.append(quit_s)
        bare.extend(one_start(BARE_TEXTUAL, env, CHECKOUT_PAINTED))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"smartduka demo ({args.runs} runs in a pty of 80x24; load average {load})")
    for name, times in (
        ("to the interactive checkout", painted),
        ("bare Textual 8 app, same way", bare),
        ("to the till open (sale ref) ", opened),
        ("Ctrl+Q to exit (target < 1 s)", quits),
    ):
        print(f"  {name}  median {statistics.median(times):.2f} s, worst {max(times):.2f} s")


if __name__ == "__main__":
    main()
