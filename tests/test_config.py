"""Settings: the example file stays generated from the model, loads, and bad values are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from smartduka_tui.config import Mode, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "smartduka.example.toml"


def test_example_config_is_what_the_script_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "scripts/example_config.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == EXAMPLE.read_text(), "run scripts/example_config.py > smartduka.example.toml"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = []
    for name, info in Settings.model_fields.items():
        sub = getattr(info.annotation, "model_fields", None)
        keys = [f"{name}.{child}" for child in sub] if sub else [name]
        missing += [key for key in keys if f"`{key}`" not in readme]
    assert missing == []


def test_example_loads_with_defaults_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMARTDUKA_TIMINGS__ATTEMPT_EXPIRY_S", "240")
    settings = load_settings(EXAMPLE)
    assert settings.mode is Mode.SANDBOX
    assert settings.timings.attempt_expiry_s == 240
    assert settings.timings.prompt_countdown_s == 60
    assert settings.data_dir == Path.home() / ".local" / "share" / "smartduka"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SMARTDUKA_MODE", "live", "mode"),
        ("SMARTDUKA_TIMINGS__ATTEMPT_EXPIRY_S", "5", "attempt_expiry_s"),
        ("SMARTDUKA_LIMITS__MAX_RETRIES", "-1", "max_retries"),
    ],
)
def test_bad_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_production_needs_an_https_relay() -> None:
    with pytest.raises(ValidationError, match="https"):
        Settings(mode=Mode.PRODUCTION, relay={"url": "http://relay.example"})
    assert Settings(mode=Mode.PRODUCTION, relay={"url": "https://relay.example"}).confirm_by_query
