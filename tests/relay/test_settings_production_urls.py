"""Production mode takes only https:// URLs: the relay's public URL and the platform's Daraja URL.

Plain http:// (a relay or the simulator on loopback) is for sandbox mode. Each refusal names the
setting and the fix, and changes nothing.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from callback_relay import cli
from callback_relay.settings import RelaySettings

KEY = "6e" * 32
SECRETS = "platform-key-1\nplatform-secret-1\n" + "ab" * 32 + "\n"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMARTDUKA_RELAY_ENCRYPTION_KEY", KEY)
    for name in ("MODE", "PUBLIC_URL", "DATABASE_URL"):
        monkeypatch.delenv(f"SMARTDUKA_RELAY_{name}", raising=False)
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "PASSKEY"):
        monkeypatch.delenv(f"SMARTDUKA_RELAY_PLATFORM_{name}", raising=False)
    return tmp_path / "relay.db"


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def platform_rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT shortcode, daraja_url FROM platform_account"))


@pytest.mark.parametrize(
    ("mode", "url", "problem"),
    [
        ("production", "http://127.0.0.1:8080", "must be an https:// URL in production mode"),
        ("production", "http://relay.example.com", "must be an https:// URL in production mode"),
        ("production", "https://u:p@relay.example.com", "must not carry a user name, password"),
        ("sandbox", "ftp://relay.example.com", "must be an http:// or https:// URL"),
        ("sandbox", "https://", "must be an http:// or https:// URL with a host"),
    ],
)
def test_a_public_url_the_mode_cannot_use_is_refused(mode: str, url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match="public_url") as caught:
        RelaySettings(mode=mode, public_url=url)
    assert problem in str(caught.value)


def test_sandbox_takes_http_on_loopback_and_production_takes_https() -> None:
    assert RelaySettings(mode="sandbox", public_url="http://127.0.0.1:9/").public_url == (
        "http://127.0.0.1:9"
    )
    production = RelaySettings(mode="production", public_url="https://relay.example.com")
    assert production.public_url == "https://relay.example.com"


def test_serve_in_production_refuses_an_http_public_url_before_listening(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(
        capsys, monkeypatch, "serve", "--mode", "production", "--public-url",
        "http://127.0.0.1:9", "--port", "0", "--db", str(db),
    )  # fmt: skip
    assert code == cli.EXIT_ERROR
    assert "setting public_url" in err and "https:// URL in production mode" in err
    assert "listening" not in out
    assert not db.exists()


def test_platform_set_in_production_refuses_an_http_daraja_url(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTDUKA_RELAY_MODE", "production")
    code, _, err = run(
        capsys, monkeypatch, "platform", "set", "--shortcode", "600111", "--daraja-url",
        "http://127.0.0.1:9", "--db", str(db), stdin=SECRETS,
    )  # fmt: skip
    assert code == cli.EXIT_ERROR
    assert "daraja url: must be an https:// URL in production mode" in err
    assert "platform-secret-1" not in err
    assert not db.exists() or platform_rows(db) == []


def test_serve_in_production_refuses_a_stored_http_daraja_url(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set in sandbox mode, where a simulator on loopback is fine ...
    code, _, err = run(
        capsys, monkeypatch, "platform", "set", "--shortcode", "600111", "--daraja-url",
        "http://127.0.0.1:9", "--db", str(db), stdin=SECRETS,
    )  # fmt: skip
    assert code == 0, err
    # ... then a production relay on that database will not start with it.
    code, out, err = run(
        capsys, monkeypatch, "serve", "--mode", "production", "--port", "0", "--db", str(db)
    )
    assert code == cli.EXIT_ERROR
    assert "the platform's Daraja URL must be an https:// URL in production mode" in err
    assert "platform set --daraja-url https://" in err
    assert "listening" not in out
    assert platform_rows(db) == [("600111", "http://127.0.0.1:9")]
