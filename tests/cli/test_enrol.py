"""`smartduka enrol FILE` against what the real `smartduka-relay` prints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from callback_relay.cli import main as relay_main
from smartduka_tui.mpesa import callback_path
from smartduka_tui.store import open_till_store
from tests.store.canaries import register_canary
from tests.support.cli import Runner


@pytest.fixture
def relay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `smartduka-relay ARGS --json` in process; returns the JSON it printed. The secrets in
    it are registered as canaries: the till must never write them in the clear."""
    db = tmp_path / "relay" / "relay.db"
    db.parent.mkdir()

    def invoke(*args: str) -> dict[str, Any]:
        capsys.readouterr()
        assert relay_main([*args, "--json", "--db", str(db)]) == 0
        printed: dict[str, Any] = json.loads(capsys.readouterr().out)
        for name in ("till_key", "callback_secret"):
            if name in printed:
                register_canary(printed[name])
        return printed

    return invoke


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def _till_secrets(data_dir: Path, shop_id: str, till_id: str) -> Any:
    async def read() -> Any:
        async with open_till_store(data_dir) as store:
            return await store.tills.credentials(shop_id, till_id)

    return asyncio.run(read())


@pytest.fixture
def keyed(smartduka: Runner) -> Runner:
    assert smartduka("keys", "init").code == 0
    return smartduka


def _add_shop(run: Runner, shop_id: str) -> None:
    result = run(
        "shop", "add", "--id", shop_id, "--name", "Kibanda", "--type", "platform", "--prefix", "KB"
    )
    assert result.code == 0, result.err


def test_enrols_what_the_relay_printed(
    keyed: Runner, relay: Any, data_dir: Path, tmp_path: Path
) -> None:
    printed = relay("shop", "add", "Kibanda", "--public-url", "http://127.0.0.1:9")
    _add_shop(keyed, printed["shop_id"])
    file = _write(tmp_path / "enrol.json", printed)
    result = keyed("enrol", str(file))
    file.unlink()  # as the command tells the user to
    assert result.code == 0, result.err
    assert f"Till {printed['till_id']} of shop {printed['shop_id']} enrolled" in result.out
    assert "delete it now" in result.out
    assert printed["till_key"] not in result.text
    assert printed["callback_secret"] not in result.text

    creds = _till_secrets(data_dir, printed["shop_id"], printed["till_id"])
    assert creds.till_key.reveal() == printed["till_key"]
    assert creds.active_callback_kid == printed["callback_kid"]
    assert creds.relay_url == "http://127.0.0.1:9"
    # The stored secret signs paths the relay's own check accepts.
    signed = callback_path.sign_new_attempt(
        creds.active_callback_secret.reveal(),
        printed["shop_id"],
        printed["till_id"],
        creds.active_callback_kid,
    )
    assert callback_path.verify(signed, {printed["callback_kid"]: printed["callback_secret"]})


def test_second_till_and_a_rekey_after_rotation(keyed: Runner, relay: Any, data_dir: Path) -> None:
    first = relay("shop", "add", "Kibanda", "--public-url", "http://127.0.0.1:9")
    _add_shop(keyed, first["shop_id"])
    assert keyed("enrol", "-", stdin=json.dumps(first)).code == 0
    second = relay("till", "add", first["shop_id"], "--public-url", "http://127.0.0.1:9")
    assert keyed("enrol", "-", stdin=json.dumps(second)).code == 0

    # The shop secret stays at the relay: each till moves to the new kid with its own rekey.
    rotated = relay("shop", "rotate-secret", first["shop_id"])
    assert "callback_secret" not in rotated
    for enrolled in (first, second):
        rekeyed = relay("till", "rekey", enrolled["till_id"], "--public-url", "http://127.0.0.1:9")
        assert rekeyed["callback_kid"] == f"{rotated['shop_kid']}-r2"
        result = keyed("enrol", "-", "--json", stdin=json.dumps(rekeyed))
        assert result.code == 0, result.err
        [till] = json.loads(result.out)
        assert till["till_id"] == enrolled["till_id"]
        assert till["active_callback_kid"] == rekeyed["callback_kid"]
        assert enrolled["callback_kid"] in till["callback_kids"]
        creds = _till_secrets(data_dir, first["shop_id"], enrolled["till_id"])
        assert creds.active_callback_secret.reveal() == rekeyed["callback_secret"]
        assert creds.till_key.reveal() == rekeyed["till_key"]
        assert rekeyed["callback_secret"] not in result.text


def test_unknown_shop_is_refused_with_the_command_to_add_it(
    keyed: Runner, relay: Any, data_dir: Path
) -> None:
    printed = relay("shop", "add", "Kibanda", "--public-url", "http://127.0.0.1:9")
    result = keyed("enrol", "-", stdin=json.dumps(printed))
    assert result.code == 2
    assert f'smartduka shop add --id {printed["shop_id"]} --name "Kibanda"' in result.err
    assert printed["till_key"] not in result.text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("callback_secret"), "callback_secret: field required"),
        (lambda d: d.pop("till_key"), "till_key: field required"),
        (lambda d: d.update(shop_id=42), "shop_id: must be text"),
        (lambda d: d.update(format="smartduka-enrolment/9"), "this SmartDuka reads"),
        (lambda d: d.update(callback_kid="bad kid!"), "kid: must be 1 to 16"),
        (lambda d: d.update(relay_url="ftp://x"), "relay_url: must be an http"),
        (lambda d: d.update(callback_secret="c2hvcnQ"), "shorter than 128 bits"),
        (lambda d: d.update(relay_url=None), "has no relay_url and none is configured"),
    ],
)
def test_bad_enrolment_is_refused_and_nothing_stored(
    keyed: Runner, relay: Any, data_dir: Path, mutate: Any, message: str
) -> None:
    printed = relay("shop", "add", "Kibanda", "--public-url", "http://127.0.0.1:9")
    _add_shop(keyed, printed["shop_id"])
    data = dict(printed)
    mutate(data)
    result = keyed("enrol", "-", stdin=json.dumps(data))
    assert result.code == 2, result.text
    assert message in result.err
    assert printed["till_key"] not in result.text
    assert printed["callback_secret"] not in result.text
    shown = json.loads(keyed("shop", "show", printed["shop_id"], "--json").out)
    assert shown["tills"] == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "is not JSON"),
        (b"[1, 2]", "must hold one JSON object"),
        (b"{" + b" " * 70_000 + b"}", "larger than 64 KiB"),
    ],
)
def test_files_that_are_not_enrolments(
    keyed: Runner, tmp_path: Path, raw: bytes, message: str
) -> None:
    file = tmp_path / "x.json"
    file.write_bytes(raw)
    result = keyed("enrol", str(file))
    assert result.code == 2 and message in result.err
    missing = keyed("enrol", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "cannot read" in missing.err


def test_relay_url_flag_fills_a_missing_url_and_extra_fields_are_ignored(
    keyed: Runner, relay: Any, data_dir: Path
) -> None:
    printed = relay("shop", "add", "Kibanda")
    assert printed["relay_url"] is None
    _add_shop(keyed, printed["shop_id"])
    data = {**printed, "future_field": {"anything": 1}}
    result = keyed("enrol", "-", "--relay-url", "https://relay.example.com", stdin=json.dumps(data))
    assert result.code == 0, result.err
    assert "enrolled with https://relay.example.com" in result.out


def test_production_needs_an_https_relay(
    keyed: Runner, relay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = relay("shop", "add", "Kibanda", "--public-url", "http://relay.example.com")
    _add_shop(keyed, printed["shop_id"])
    monkeypatch.setenv("SMARTDUKA_MODE", "production")
    result = keyed("enrol", "-", stdin=json.dumps(printed))
    assert result.code == 2 and "https:// URL in production" in result.err


OLD_FILES = Path(__file__).parents[1] / "data" / "enrolment"


def test_files_older_relays_wrote_still_enrol(keyed: Runner) -> None:
    _add_shop(keyed, "sfixtureshopa")
    first = keyed(
        "enrol",
        str(OLD_FILES / "shop_add_before_per_till_keys.json"),
        "--relay-url",
        "https://relay.example.com",
        "--json",
    )
    assert first.code == 0, first.err
    assert [t["callback_kids"] for t in json.loads(first.out)] == [["k1"]]
    rotated = keyed("enrol", str(OLD_FILES / "rotate_secret_before_per_till_keys.json"), "--json")
    assert rotated.code == 0, rotated.err
    [till] = json.loads(rotated.out)
    assert (till["till_id"], till["active_callback_kid"]) == ("tfixturetilla", "k2")
    assert set(till["callback_kids"]) == {"k1", "k2"}
    second = keyed("enrol", str(OLD_FILES / "till_add_per_till_keys.json"), "--json")
    assert second.code == 0, second.err
    [other] = json.loads(second.out)
    assert (other["till_id"], other["active_callback_kid"]) == ("tfixturetillb", "k2-r1")
    assert other["relay_url"] == "https://relay.example.com"
