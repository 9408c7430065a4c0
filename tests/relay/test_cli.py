"""`smartduka-relay` commands in-process on a real SQLite file: enrolment, keys, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from callback_relay import cli, ids
from callback_relay.crypto import key_file_for
from smartduka_tui.mpesa.callback_path import BANNED_URL_WORDS, decode_secret
from tests.relay.conftest import TEST_KEY, attempt_path, cli_enrol


def snapshot(db: Path) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            for table in ("shops", "shop_secrets", "tills", "events", "meta")
        ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_shop_add_prints_a_complete_enrolment_once_and_stores_no_plaintext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "relay.db"
    code, out, _ = run(
        capsys, "shop", "add", "Mama Mboga", "--db", str(db), "--json", "--public-url", "https://r"
    )
    assert code == 0
    enrolment = json.loads(out)
    assert set(enrolment) == {
        "format",
        "shop_id",
        "shop_name",
        "till_id",
        "till_key",
        "callback_secret",
        "callback_kid",
        "relay_url",
    }
    assert enrolment["shop_name"] == "Mama Mboga"
    assert enrolment["relay_url"] == "https://r"
    # The till's own key under the shop's first secret, revision 1: never the shop secret.
    assert enrolment["callback_kid"] == "k1-r1"
    assert len(decode_secret(enrolment["callback_secret"])) == 32
    assert ids.split_till_key(enrolment["till_key"]) == enrolment["till_id"]
    key_file = key_file_for(db)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("relay.db-*"))
    assert enrolment["callback_secret"].encode() not in raw
    assert enrolment["till_key"].encode() not in raw
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT key_sha256 FROM tills").fetchone()
    assert stored == hashlib.sha256(enrolment["till_key"].encode()).digest()


def test_human_output_and_enrolment_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out_file = tmp_path / "relay.db", tmp_path / "till.json"
    code, out, _ = run(capsys, "shop", "add", "Duka", "--db", str(db), "--out", str(out_file))
    assert code == 0
    enrolment = json.loads(out_file.read_text())
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    assert enrolment["till_key"] in out and "shown only now" in out


def test_till_add_gives_the_newest_secret_and_a_distinct_key(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    shop = cli_enrol(db, "shop", "add", "Duka")
    assert cli.main(["shop", "rotate-secret", shop["shop_id"], "--db", str(db)]) == 0
    till = cli_enrol(db, "till", "add", shop["shop_id"])
    assert (till["shop_id"], till["callback_kid"]) == (shop["shop_id"], "k2-r1")
    assert till["till_id"] != shop["till_id"]
    assert till["till_key"] != shop["till_key"]


def test_ids_are_url_safe_and_free_of_banned_words() -> None:
    for _ in range(2000):
        for value in (ids.new_shop_id(), ids.new_till_id()):
            assert ids.is_id(value)
            assert not any(word in value for word in BANNED_URL_WORDS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["till", "add", "snosuchshop22"], "no shop with id"),
        (["till", "add", "../../etc"], "no shop with id"),
        (["till", "revoke", "tnosuchtill22"], "no till with id"),
        (["till", "rekey", "tnosuchtill22"], "no till with id"),
        (["till", "rekey", "{till}", "--out", "{db}"], "refusing to overwrite"),
        (["shop", "rotate-secret", "snosuchshop22"], "no shop with id"),
        (["shop", "retire-kid", "{shop}", "k7"], "has no kid"),
        (["shop", "retire-kid", "{shop}", "k1"], "only active secret"),
        (["shop", "add", "   "], "must not be empty"),
        (["shop", "add", "x" * 65], "at most 64 characters"),
        (["shop", "add", "bad\x07name"], "control characters"),
        (["replay", "--till", "tnosuchtill22"], "no till with id"),
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = tmp_path / "relay.db"
    shop = cli_enrol(db, "shop", "add", "Duka")
    before = snapshot(db)
    args = [
        a.replace("{shop}", shop["shop_id"])
        .replace("{till}", shop["till_id"])
        .replace("{db}", str(db))
        for a in argv
    ]
    code, out, err = run(capsys, *args, "--db", str(db))
    assert code == cli.EXIT_ERROR
    assert message in err
    assert out == ""
    assert snapshot(db) == before


def test_till_rekey_keeps_the_till_id_and_hands_over_new_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "relay.db"
    shop = cli_enrol(db, "shop", "add", "Duka")
    code, out, _ = run(capsys, "shop", "rotate-secret", shop["shop_id"], "--db", str(db), "--json")
    # The shop's secrets stay at the relay: rotation names the kid, tills move by rekeying.
    assert (code, json.loads(out)) == (0, {"shop_id": shop["shop_id"], "shop_kid": "k2"})
    rekeyed = cli_enrol(db, "till", "rekey", shop["till_id"])
    assert (rekeyed["shop_id"], rekeyed["till_id"]) == (shop["shop_id"], shop["till_id"])
    assert rekeyed["callback_kid"] == "k2-r2"
    assert rekeyed["till_key"] != shop["till_key"]
    assert rekeyed["callback_secret"] != shop["callback_secret"]
    with sqlite3.connect(db) as conn:
        stored_hash = conn.execute("SELECT key_sha256 FROM tills").fetchone()[0]
    assert stored_hash == hashlib.sha256(rekeyed["till_key"].encode()).digest()
    code, out, _ = run(capsys, "till", "rekey", shop["till_id"], "--db", str(db))
    assert code == 0
    assert "Till rekeyed." in out and "refused from now on" in out
    assert rekeyed["till_key"] not in out


def test_revoke_twice_and_retire_twice_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "relay.db"
    shop = cli_enrol(db, "shop", "add", "Duka")
    assert run(capsys, "till", "revoke", shop["till_id"], "--db", str(db))[0] == 0
    code, _, err = run(capsys, "till", "revoke", shop["till_id"], "--db", str(db))
    assert (code, "already revoked" in err) == (cli.EXIT_ERROR, True)
    assert run(capsys, "shop", "rotate-secret", shop["shop_id"], "--db", str(db))[0] == 0
    assert run(capsys, "shop", "retire-kid", shop["shop_id"], "k1", "--db", str(db))[0] == 0
    code, _, err = run(capsys, "shop", "retire-kid", shop["shop_id"], "k1", "--db", str(db))
    assert (code, "already retired" in err) == (cli.EXIT_ERROR, True)


def test_wrong_or_missing_relay_key_stops_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "relay.db"
    shop = cli_enrol(db, "shop", "add", "Duka")
    before = snapshot(db)
    monkeypatch.setenv("SMARTDUKA_RELAY_ENCRYPTION_KEY", "ab" * 32)
    code, _, err = run(capsys, "till", "add", shop["shop_id"], "--db", str(db))
    assert code == cli.EXIT_ERROR and "does not match" in err
    monkeypatch.setenv("SMARTDUKA_RELAY_ENCRYPTION_KEY", "not-hex")
    code, _, err = run(capsys, "till", "add", shop["shop_id"], "--db", str(db))
    assert code == cli.EXIT_ERROR and "64 hexadecimal" in err and "not-hex" not in err
    monkeypatch.delenv("SMARTDUKA_RELAY_ENCRYPTION_KEY")
    key_file = key_file_for(db)
    key_file.chmod(0o644)
    code, _, err = run(capsys, "till", "add", shop["shop_id"], "--db", str(db))
    assert code == cli.EXIT_ERROR and "chmod 600" in err
    key_file.unlink()
    code, _, err = run(capsys, "till", "add", shop["shop_id"], "--db", str(db))
    assert code == cli.EXIT_ERROR and "no relay key was found" in err
    assert snapshot(db) == before


def test_a_moved_ciphertext_does_not_decrypt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "relay.db"
    first = cli_enrol(db, "shop", "add", "One")
    second = cli_enrol(db, "shop", "add", "Two")
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute(
            "SELECT ciphertext FROM shop_secrets WHERE shop_id = ?", (first["shop_id"],)
        ).fetchone()
        conn.execute(
            "UPDATE shop_secrets SET ciphertext = ? WHERE shop_id = ?", (blob, second["shop_id"])
        )
    code, _, err = run(capsys, "till", "add", second["shop_id"], "--db", str(db))
    assert code == cli.EXIT_ERROR
    assert "tampered with or moved" in err


def test_newer_database_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "relay.db"
    cli_enrol(db, "shop", "add", "Duka")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    code, _, err = run(capsys, "replay", "--db", str(db))
    assert code == cli.EXIT_ERROR and "newer relay" in err


def test_bad_settings_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "serve", "--db", str(tmp_path / "r.db"), "--allowlist", "1.2.3.4,not-an-ip"
    )
    assert code == cli.EXIT_ERROR
    assert "allowlist" in err and "not an IP address" in err
    assert not (tmp_path / "r.db").exists()


def test_out_refuses_to_overwrite_and_a_bad_out_enrols_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "relay.db"
    first = tmp_path / "first.json"
    assert run(capsys, "shop", "add", "Duka", "--db", str(db), "--out", str(first))[0] == 0
    shop_id = json.loads(first.read_text())["shop_id"]
    kept = first.read_text()
    before = snapshot(db)
    code, out, err = run(capsys, "till", "add", shop_id, "--db", str(db), "--out", str(first))
    assert code == 2
    assert "already exists: refusing to overwrite" in err
    assert "till_key" not in out + err
    assert first.read_text() == kept
    missing = tmp_path / "no-such-folder" / "till.json"
    code, _, err = run(capsys, "till", "add", shop_id, "--db", str(db), "--out", str(missing))
    assert code == 2
    assert "cannot create" in err
    assert not missing.exists()
    code, _, err = run(capsys, "shop", "add", "Other", "--db", str(db), "--out", str(first))
    assert (code, first.read_text()) == (2, kept)
    assert snapshot(db) == before


async def test_stats_gives_the_per_shop_figures_metrics_do_not(harness: Any) -> None:
    busy = await harness.shop("Busy")
    await harness.till(busy.shop_id)
    quiet = await harness.shop("Quiet")
    for _ in range(3):
        assert (await harness.post(attempt_path(busy))).status_code == 200
    assert (await harness.post(attempt_path(quiet))).status_code == 200
    (event,) = (await harness.feed(quiet)).json()["events"]
    assert (await harness.ack(quiet, event["id"])).status_code == 200
    db = harness.relay.settings.db
    env = {"SMARTDUKA_RELAY_ENCRYPTION_KEY": TEST_KEY}
    if harness.relay.settings.database_url is not None:
        env["SMARTDUKA_RELAY_DATABASE_URL"] = harness.relay.settings.database_url.get_secret_value()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callback_relay", "stats", "--json", "--db", str(db),
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert json.loads(out) == [{"shop_id": busy.shop_id, "tills": 1, "unacked": 3, "dead": 0}]


def test_platform_prefixes_are_unique_and_prefix_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "relay.db"

    def shop_add(prefix: str) -> tuple[int, str]:
        code, _, err = run(
            capsys, "shop", "add", f"Shop {prefix}", "--db", str(db), "--json",
            "--platform", "--prefix", prefix,
        )  # fmt: skip
        return code, err

    assert shop_add("AB")[0] == 0

    def prefixes() -> list[tuple[str, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT prefix FROM platform_shops ORDER BY prefix").fetchall()

    kept = prefixes()
    for clash in ("AB", "ab", "ABC", "A"):
        code, err = shop_add(clash)
        assert code == 2, clash
        assert "clashes with prefix 'AB'" in err
        assert "must be unique and none may start another" in err
        assert prefixes() == kept
    # A refused shop's till was never handed over: it is revoked, not left live.
    with sqlite3.connect(db) as conn:
        live = conn.execute("SELECT COUNT(*) FROM tills WHERE revoked_at IS NULL").fetchone()[0]
    assert live == 1
    assert shop_add("AC")[0] == 0
    assert prefixes() == [("AB",), ("AC",)]
