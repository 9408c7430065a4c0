"""CLI test fixtures: a private data folder per test and an in-process `smartduka` runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.conftest import no_canary_on_disk  # noqa: F401 - the end-of-session scan
from tests.support.cli import Runner, in_process, private_data_dir


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_data_dir(tmp_path, monkeypatch)


@pytest.fixture
def smartduka(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    """Run `smartduka ARGS...` in this process, with `stdin` as its standard input."""
    return in_process(capsys, monkeypatch)
