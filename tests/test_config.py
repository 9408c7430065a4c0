"""Settings: the example file stays generated from the model, loads, and bad values are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from smartduka_tui.config import Settings, load_settings
from smartduka_tui.model import Mode
from smartduka_tui.store import InputError

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
        ("SMARTDUKA_DARAJA__QUERY_RETRIES", "-1", "query_retries"),
        ("SMARTDUKA_DARAJA__QUERY_RETRIES", "11", "query_retries"),
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


@pytest.mark.parametrize(
    ("section", "url", "words"),
    [
        ("relay", "http://relay.example", "relay.url must be an https:// URL in production mode"),
        (
            "daraja",
            "http://api.safaricom.co.ke",
            "daraja.base_url must be an https:// URL in production mode",
        ),
        ("relay", "https://127.0.0.1:8443", "relay.url must not be a loopback address"),
        ("daraja", "https://localhost:9000", "daraja.base_url must not be a loopback address"),
        ("daraja", "https://[::ffff:127.0.0.1]", "daraja.base_url must not be a loopback address"),
        ("relay", "ftp://relay.example", "relay.url must be an http:// or https:// URL"),
    ],
)
def test_production_refuses_http_and_loopback_endpoints(section: str, url: str, words: str) -> None:
    endpoint: dict[str, Any] = {section: {"url" if section == "relay" else "base_url": url}}
    with pytest.raises(ValidationError, match=words):
        Settings(mode=Mode.PRODUCTION, **endpoint)


def test_sandbox_takes_loopback_http_for_the_simulator_and_a_local_relay() -> None:
    settings = Settings(
        mode=Mode.SANDBOX,
        relay={"url": "http://127.0.0.1:8080"},
        daraja={"base_url": "http://localhost:9000"},
    )
    assert settings.daraja_base_url == "http://localhost:9000"
    assert settings.relay_url_for("https://ignored.example") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("enrolled", "words"),
    [
        ("http://relay.example", "must be an https:// URL in production mode"),
        ("https://127.0.0.1:8080", "must not be a loopback address in production mode"),
    ],
)
def test_production_refuses_an_enrolled_relay_url_it_would_refuse_in_settings(
    enrolled: str, words: str
) -> None:
    """The vault's relay URL (from enrolment in sandbox) is checked where it is used."""
    settings = Settings(mode=Mode.PRODUCTION)
    with pytest.raises(InputError) as refused:
        settings.relay_url_for(enrolled)
    assert refused.value.field == "relay_url" and words in refused.value.message
    assert enrolled in refused.value.message
    assert settings.relay_url_for("https://relay.example/") == "https://relay.example"
