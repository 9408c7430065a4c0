"""`smartduka-relay platform set|show`, `shop set` and `shop add --platform`: every bad input is
named, nothing changes, and the platform's secrets are never printed nor stored in the clear."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from callback_relay import cli
from tests.integration.support import PlatformCreds

KEY = "7d" * 32


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMARTDUKA_RELAY_ENCRYPTION_KEY", KEY)
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "PASSKEY"):
        monkeypatch.delenv(f"SMARTDUKA_RELAY_PLATFORM_{name}", raising=False)
    return tmp_path / "relay.db"


def run(
    db: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main([*args, "--db", str(db)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql).fetchall())


def secrets_of(creds: PlatformCreds) -> str:
    return f"{creds.key}\n{creds.secret}\n{creds.passkey}\n"


def test_platform_set_refuses_bad_input_by_name_and_stores_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = PlatformCreds()
    cases = [
        (["--shortcode", "12ab"], secrets_of(good), "shortcode: must be 5 to 7 digits"),
        (["--shortcode", "600111", "--daraja-url", "ftp://example.com"], secrets_of(good),
         "daraja url: must be an http:// or https:// URL"),
        (["--shortcode", "600111", "--daraja-url", "https://u:p@example.com"], secrets_of(good),
         "must not carry a user name, password"),
        (["--shortcode", "600111"], f"{good.key}\n", "consumer secret: expected on standard input"),
        (["--shortcode", "600111"], f"{good.key}\n\n{good.passkey}\n",
         "consumer secret: the value given is empty"),
        (["--shortcode", "600111"], f"bad:key\n{good.secret}\n{good.passkey}\n",
         "consumer key: must not contain ':'"),
        (["--shortcode", "600111"], f"{good.key}\n{good.secret}\npass key with spaces\n",
         "passkey: must be printable text without spaces"),
    ]  # fmt: skip
    for args, stdin, words in cases:
        code, out, err = run(db, capsys, monkeypatch, "platform", "set", *args, stdin=stdin)
        assert code == 2, (args, out, err)
        assert words in err, (args, err)
        assert "Traceback" not in err
        assert good.key not in err + out and good.passkey not in err + out
        assert "pass key with spaces" not in err
    code, out, _ = run(db, capsys, monkeypatch, "platform", "show", "--json")
    assert code == 0 and json.loads(out)["configured"] is False


def test_platform_secrets_are_encrypted_masked_and_bound_to_their_field(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = PlatformCreds()
    code, out, err = run(
        db, capsys, monkeypatch, "platform", "set", "--shortcode", "600111", stdin=secrets_of(creds)
    )
    assert code == 0, err
    code, out, err = run(db, capsys, monkeypatch, "platform", "show", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["shortcode"] == "600111"
    assert shown["credentials"]["passkey"] == "****" + creds.passkey[-4:]
    for secret in (creds.key, creds.secret, creds.passkey):
        assert secret not in out
        assert secret.encode() not in db.read_bytes()
        wal = db.with_name(db.name + "-wal")
        assert not wal.exists() or secret.encode() not in wal.read_bytes()
    # A ciphertext moved to another field does not open: the field is in its associated data.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE platform_account SET passkey = consumer_key")
    code, out, err = run(db, capsys, monkeypatch, "platform", "show")
    assert code == 2 and "failed its integrity check" in err
    assert creds.key not in out + err


def test_shop_platform_flags_refuse_bad_input_and_change_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(db, capsys, monkeypatch, "shop", "add", "Mama", "--platform")
    assert code == 2 and "--prefix is required with --platform" in err
    code, out, err = run(db, capsys, monkeypatch, "shop", "add", "Mama", "--prefix", "MM")
    assert code == 2 and "--prefix and --pushes-per-minute need --platform" in err
    code, out, err = run(
        db, capsys, monkeypatch, "shop", "add", "Mama", "--platform", "--prefix", "TOO-LONG"
    )
    assert code == 2 and "prefix: must be 1 to 4 letters or digits" in err
    assert not db.exists() or rows(db, "SELECT count(*) FROM shops") == [(0,)]

    code, out, err = run(db, capsys, monkeypatch, "shop", "add", "Mama", "--json")
    assert code == 0, err
    shop_id = json.loads(out)["shop_id"]
    cases = [
        (["s22222222222z", "--platform", "--prefix", "AB"], "no shop with id 's22222222222z'"),
        ([shop_id, "--platform", "--prefix", "A B"], "prefix: must be 1 to 4 letters"),
        ([shop_id, "--platform", "--prefix", "AB", "--pushes-per-minute", "0"],
         "pushes per minute: must be from 1 to 600, got 0"),
        ([shop_id, "--platform"], "--prefix is required with --platform"),
        ([shop_id], "say --platform --prefix XX, or --own-credentials"),
        ([shop_id, "--own-credentials", "--platform"], "cannot be combined"),
    ]  # fmt: skip
    for args, words in cases:
        code, out, err = run(db, capsys, monkeypatch, "shop", "set", *args)
        assert code == 2, (args, out, err)
        assert words in err, (args, err)
    assert rows(db, "SELECT count(*) FROM platform_shops") == [(0,)]

    code, out, err = run(
        db, capsys, monkeypatch, "shop", "set", shop_id, "--platform", "--prefix", "MM"
    )
    assert code == 0 and "prefix MM, 20 pushes a minute" in out
    assert rows(db, "SELECT shop_id, prefix, pushes_per_minute FROM platform_shops") == [
        (shop_id, "MM", 20)
    ]
    code, out, err = run(db, capsys, monkeypatch, "shop", "set", shop_id, "--own-credentials")
    assert code == 0 and "no longer uses" in out
    assert rows(db, "SELECT count(*) FROM platform_shops") == [(0,)]

    code, out, err = run(
        db, capsys, monkeypatch, "shop", "add", "Kiosk", "--platform", "--prefix", "KS", "--json"
    )
    assert code == 0, err
    kiosk = json.loads(out)["shop_id"]
    assert rows(db, "SELECT shop_id, prefix FROM platform_shops") == [(kiosk, "KS")]
