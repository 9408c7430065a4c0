"""The relay's settings (callback_relay/settings.py): from the environment, the published
allowlist, and every setting documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from callback_relay.settings import SAFARICOM_CALLBACK_ADDRESSES, RelaySettings
from tests.support.daraja import REFERENCE


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTDUKA_RELAY_MODE", "production")
    monkeypatch.setenv("SMARTDUKA_RELAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    monkeypatch.setenv("SMARTDUKA_RELAY_ALLOWLIST", '["196.201.214.200"]')
    settings = RelaySettings()
    assert settings.mode == "production"
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]
    assert [str(n) for n in settings.allowlist] == ["196.201.214.200/32"]
    monkeypatch.setenv("SMARTDUKA_RELAY_MODE", "live")
    with pytest.raises(ValidationError, match="mode"):
        RelaySettings()


def test_default_allowlist_is_the_published_twelve() -> None:
    """The default allowlist is exactly REFERENCE.md section 4's list of 12 addresses."""
    text = REFERENCE.read_text()
    start = text.index("the official list is these 12 addresses")
    published = set(re.findall(r"196\.201\.\d+\.\d+", text[start : text.index("- The same 12")]))
    assert len(published) == 12
    settings = RelaySettings()
    assert {str(n.network_address) for n in settings.allowlist} == published
    assert set(SAFARICOM_CALLBACK_ADDRESSES) == published


def test_every_setting_is_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "callback_relay" / "README.md").read_text()
    for name in RelaySettings.model_fields:
        assert f"`SMARTDUKA_RELAY_{name.upper()}`" in readme, name
