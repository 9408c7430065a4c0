"""Real server processes for tests: started on port 0, the port read from a ready file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


class ServerProcess:
    """A uvicorn-served app in its own process, bound to loopback on an OS-chosen port.

    `module` is run as `python -m MODULE serve --host HOST --port 0 --ready-file F ARGS...`.
    Output goes to `log_path` so a failing test can show it.
    """

    def __init__(
        self,
        module: str,
        workdir: Path,
        args: Sequence[str] = (),
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        port: int = 0,
        scheme: str = "http",
    ) -> None:
        self.module = module
        self.workdir = workdir
        self.args = list(args)
        self.host = host
        self.env = env
        self.port = port
        self.scheme = scheme
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{module.replace('.', '_')}.log"
        self.ready_file = workdir / f"{module.replace('.', '_')}.port"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.ready_file.unlink(missing_ok=True)
        env = {**os.environ, **(self.env or {})}
        cmd = [
            sys.executable,
            "-m",
            self.module,
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ready-file",
            str(self.ready_file),
            *self.args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it while it runs
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if self.ready_file.exists():
                text = self.ready_file.read_text().strip()
                if text:
                    self.port = int(text)
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.module} did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, keep_port: bool = True) -> ServerProcess:
        """Stop (if running) and start again, on the same port unless told otherwise."""
        self.stop()
        if not keep_port:
            self.port = 0
        return self.start()
