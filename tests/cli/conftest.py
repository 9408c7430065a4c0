"""CLI test fixtures: a private data folder per test and an in-process `smartduka` runner."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from smartduka_tui.cli import main
from tests.store.conftest import no_canary_on_disk  # noqa: F401 - the end-of-session scan

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
)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "data"
    monkeypatch.setenv("SMARTDUKA_DATA_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


Runner = Callable[..., Result]


@pytest.fixture
def smartduka(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    """Run `smartduka ARGS...` in this process, with `stdin` as its standard input."""

    def invoke(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
