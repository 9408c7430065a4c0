"""`smartduka` run in this process, as the CLI tests run it: a private data folder that none of
the caller's SMARTDUKA settings reach, and a runner that captures what a command printed."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from smartduka_tui.cli import main

# Settings a developer's shell may hold that would change what a command does.
ENV_TO_CLEAR = (
    "SMARTDUKA_CONFIG",
    "SMARTDUKA_ENCRYPTION_KEY",
    "MPESA_ENCRYPTION_KEY",
    "SMARTDUKA_SHOP_CONSUMER_KEY",
    "SMARTDUKA_SHOP_CONSUMER_SECRET",
    "SMARTDUKA_SHOP_PASSKEY",
    "SMARTDUKA_KEYRING_FILE",
    "SMARTDUKA_MODE",
    "SMARTDUKA_FAULT",
    "SMARTDUKA_MANAGER_PIN",
    "SMARTDUKA_SHOP_ID",
)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


Runner = Callable[..., Result]


def private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`tmp_path/data` as SMARTDUKA_DATA_DIR (not created), run from `tmp_path`, with the
    settings above and any printer setting cleared."""
    for name in [*ENV_TO_CLEAR, *(n for n in os.environ if n.startswith("SMARTDUKA_PRINTER"))]:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "data"
    monkeypatch.setenv("SMARTDUKA_DATA_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Run `smartduka ARGS...` in this process, with `stdin` as its standard input."""

    def invoke(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
