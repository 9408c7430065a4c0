"""`smartduka shop add|set|show`: secrets from stdin and environment, never from the command line
and never echoed; every bad field named by its flag, and nothing saved."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartduka_tui.model import ShopType, VerificationStatus
from smartduka_tui.store import acquire_data_dir_lock, open_till_store
from tests.store.canaries import new_canary
from tests.support.cli import Result, Runner

PAYBILL = ("--name", "Mama Mboga", "--type", "paybill", "--shortcode", "174379", "--prefix", "DUKA")
SECRET_NAMES = ("consumer_key", "consumer_secret", "passkey")


def _fresh_secrets() -> dict[str, str]:
    return {name: new_canary(name[:2]) for name in SECRET_NAMES}


def _flags(values: dict[str, str]) -> list[str]:
    """`--consumer-key - ...` for each secret in `values` (read from stdin in that order)."""
    return [part for name in values for part in (f"--{name.replace('_', '-')}", "-")]


def _lines(values: dict[str, str]) -> str:
    return "".join(f"{value}\n" for value in values.values())


def _add_paybill(run: Runner, shop_id: str, *extra: str) -> tuple[Result, dict[str, str]]:
    """`shop add` of a paybill shop with fresh canary credentials on standard input."""
    values = _fresh_secrets()
    result = run(
        "shop", "add", "--id", shop_id, *PAYBILL, *_flags(values), *extra, stdin=_lines(values)
    )
    return result, values


def _stored(data_dir: Path, shop_id: str) -> dict[str, str | None]:
    async def read() -> dict[str, str | None]:
        async with open_till_store(data_dir) as store:
            found = {}
            for name in SECRET_NAMES:
                secret = await store.credentials.get(shop_id, name)
                found[name] = None if secret is None else secret.reveal()
            return found

    return asyncio.run(read())


def _shop_count(data_dir: Path) -> int:
    async def count() -> int:
        async with open_till_store(data_dir, require_keys=False) as store:
            return len(await store.shops.list_ids())

    return asyncio.run(count())


def _no_leak(result: Result, values: dict[str, str]) -> None:
    for value in values.values():
        assert value not in result.text


@pytest.fixture
def keyed(smartduka: Runner) -> Runner:
    assert smartduka("keys", "init").code == 0
    return smartduka


def test_add_shows_only_masked_secrets(keyed: Runner, data_dir: Path) -> None:
    result, values = _add_paybill(keyed, "shop1")
    assert result.code == 0, result.err
    assert "Shop shop1 added." in result.out
    assert f"****{values['passkey'][-4:]}" in result.out
    _no_leak(result, values)
    assert _stored(data_dir, "shop1") == values


def test_secrets_from_stdin_and_environment(
    keyed: Runner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _fresh_secrets()
    monkeypatch.setenv("SMARTDUKA_SHOP_PASSKEY", values["passkey"])
    result = keyed(
        "shop",
        "add",
        "--id",
        "shop2",
        *PAYBILL,
        "--consumer-key",
        "-",
        "--consumer-secret",
        "-",
        "--secrets-from-env",
        stdin=f"{values['consumer_key']}\n{values['consumer_secret']}\r\n",
    )
    assert result.code == 0, result.err
    _no_leak(result, values)
    assert _stored(data_dir, "shop2") == values


def test_environment_is_read_only_when_asked(
    keyed: Runner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, values = _add_paybill(keyed, "shop3")
    monkeypatch.setenv("SMARTDUKA_SHOP_PASSKEY", new_canary("stray"))
    assert keyed("shop", "set", "shop3", "--name", "Renamed").code == 0
    assert _stored(data_dir, "shop3") == values


def test_missing_stdin_line_is_refused(keyed: Runner, data_dir: Path) -> None:
    values = _fresh_secrets()
    del values["passkey"]
    result = keyed(
        "shop",
        "add",
        "--id",
        "shop4",
        *PAYBILL,
        *_flags(values),
        "--passkey",
        "-",
        stdin=_lines(values),
    )
    assert result.code == 2
    assert "expected the passkey on standard input" in result.err
    assert _shop_count(data_dir) == 0


BAD_FLAGS = [
    (("--id", "no/slash"), "--id: must be 1 to 64 letters"),
    (("--name", " "), "--name: must not be empty"),
    (("--shortcode", "12"), "--shortcode: must be 5 to 7 digits"),
    (("--till-number", "5501234"), "--till-number: applies only to till"),
    (("--prefix", "TOOLONG"), "--prefix: must be 1 to 4 letters or digits"),
    (("consumer_key", "with space inside"), "--consumer-key: must be letters and digits"),
    (("passkey", "short1"), "--passkey: must be 16 to 256 characters, got 6"),
    (("consumer_secret", ""), "the consumer secret given is empty"),
]


@pytest.mark.parametrize(("override", "message"), BAD_FLAGS)
def test_bad_flag_is_named_and_nothing_is_saved(
    keyed: Runner, data_dir: Path, override: tuple[str, str], message: str
) -> None:
    values = _fresh_secrets()
    args = dict(zip(("--name", "--type", "--shortcode", "--prefix"), PAYBILL[1::2], strict=True))
    args["--id"] = "shop5"
    given = dict(values)
    if override[0] in given:
        given[override[0]] = override[1]
    else:
        args[override[0]] = override[1]
    flat = [part for pair in args.items() for part in pair]
    result = keyed("shop", "add", *flat, *_flags(given), stdin=_lines(given))
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.text
    _no_leak(result, values)
    if override[0] in values and override[1]:
        assert override[1] not in result.text  # a bad secret is described, never repeated
    assert _shop_count(data_dir) == 0


@pytest.mark.parametrize("flag", ["--consumer-key", "--consumer-secret", "--passkey"])
def test_a_secret_given_on_the_command_line_is_refused_saying_how_to_pass_it(
    keyed: Runner, data_dir: Path, flag: str
) -> None:
    values = _fresh_secrets()
    name = flag[2:].replace("-", "_")
    others = {k: v for k, v in values.items() if k != name}
    result = keyed(
        "shop",
        "add",
        "--id",
        "shop11",
        *PAYBILL,
        *_flags(others),
        flag,
        values[name],
        stdin=_lines(others),
    )
    assert result.code == 2
    assert f"{flag} takes no value on the command line" in result.err
    assert f"Give `{flag} -`" in result.err and "--secrets-from-env" in result.err
    assert f"SMARTDUKA_SHOP_{name.upper()}" in result.err
    _no_leak(result, values)
    assert _shop_count(data_dir) == 0


def test_a_bare_secret_flag_reads_standard_input(keyed: Runner, data_dir: Path) -> None:
    values = _fresh_secrets()
    result = keyed(
        "shop",
        "add",
        "--id",
        "shop12",
        *PAYBILL,
        "--consumer-key",
        "--consumer-secret",
        "--passkey",
        stdin=_lines(values),
    )
    assert result.code == 0, result.err
    assert _stored(data_dir, "shop12") == values


def test_till_shop_needs_its_till_number(keyed: Runner, data_dir: Path) -> None:
    result = keyed(
        "shop",
        "add",
        "--id",
        "t1",
        "--name",
        "Kiosk",
        "--type",
        "till",
        "--shortcode",
        "1850908",
        "--prefix",
        "KSK",
        "--disabled",
    )
    assert result.code == 2
    assert "--till-number: is required for a till (Buy Goods) shop" in result.err
    assert _shop_count(data_dir) == 0


def test_add_with_secrets_but_no_key_stops_and_saves_nothing(
    smartduka: Runner, data_dir: Path
) -> None:
    result, values = _add_paybill(smartduka, "shop6")
    assert result.code == 1
    assert "no encryption key" in result.err and "smartduka keys init" in result.err
    _no_leak(result, values)
    assert _shop_count(data_dir) == 0


def test_platform_shop_needs_no_key(smartduka: Runner) -> None:
    result = smartduka(
        "shop",
        "add",
        "--id",
        "plat1",
        "--name",
        "Kibanda",
        "--type",
        "platform",
        "--prefix",
        "KB",
        "--json",
    )
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["type"] == "platform" and shown["enabled"] is True
    assert shown["credentials"] == dict.fromkeys(SECRET_NAMES)


def test_set_changes_only_what_is_given(keyed: Runner, data_dir: Path) -> None:
    _, values = _add_paybill(keyed, "shop7")
    new_passkey = new_canary("pk2")
    result = keyed(
        "shop",
        "set",
        "shop7",
        "--prefix",
        "MM",
        "--passkey",
        "-",
        "--json",
        stdin=new_passkey + "\n",
    )
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["account_prefix"] == "MM" and shown["business_shortcode"] == "174379"
    assert shown["credentials"]["passkey"] == f"****{new_passkey[-4:]}"
    _no_leak(result, {**values, "new": new_passkey})
    assert _stored(data_dir, "shop7") == {**values, "passkey": new_passkey}


def test_set_to_platform_with_cleared_credentials(keyed: Runner, data_dir: Path) -> None:
    _add_paybill(keyed, "shop8")
    refused = keyed("shop", "set", "shop8", "--type", "platform", "--shortcode", "")
    assert refused.code == 2
    assert "--consumer-key: must not be set for a platform shop" in refused.err
    done = keyed(
        "shop",
        "set",
        "shop8",
        "--type",
        "platform",
        "--shortcode",
        "",
        "--clear-credentials",
        "--json",
    )
    assert done.code == 0, done.err
    assert json.loads(done.out)["type"] == ShopType.PLATFORM.value
    assert _stored(data_dir, "shop8") == dict.fromkeys(SECRET_NAMES)


def test_set_unknown_shop_and_show_unknown_shop(keyed: Runner) -> None:
    assert "no shop 'ghost'" in keyed("shop", "set", "ghost", "--name", "x").err
    result = keyed("shop", "show", "ghost")
    assert result.code == 2 and "no shop 'ghost'" in result.err


def test_show_lists_and_describes(keyed: Runner) -> None:
    _, values = _add_paybill(keyed, "shop9")
    listed = keyed("shop", "show")
    assert "shop9  Mama Mboga  (paybill)" in listed.out
    shown = keyed("shop", "show", "shop9")
    assert "paid into        paybill 174379" in shown.out
    assert f"passkey          ****{values['passkey'][-4:]}" in shown.out
    assert f"verification     {VerificationStatus.PENDING.value}" in shown.out
    _no_leak(shown, values)


def test_another_process_holding_the_folder_is_named(keyed: Runner, data_dir: Path) -> None:
    with acquire_data_dir_lock(data_dir):
        result = keyed("shop", "show")
    assert result.code == 1
    assert f"in use by process {os.getpid()}" in result.err


def test_keyring_readable_by_others_is_refused(keyed: Runner, data_dir: Path) -> None:
    (data_dir / "keyring").chmod(0o640)
    result, values = _add_paybill(keyed, "shop10")
    assert result.code == 1
    assert f"chmod 600 {data_dir / 'keyring'}" in result.err
    _no_leak(result, values)
    (data_dir / "keyring").chmod(0o600)
    assert _shop_count(data_dir) == 0


def test_bad_setting_is_one_line_without_traceback(
    smartduka: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTDUKA_MODE", "staging")
    result = smartduka("shop", "show")
    assert result.code == 2
    assert result.err.startswith("smartduka: error: setting mode:")
    assert "Traceback" not in result.text
    monkeypatch.delenv("SMARTDUKA_MODE")
    missing = smartduka("--config", "nope.toml", "shop", "show")
    assert missing.code == 2 and "configuration file not found: nope.toml" in missing.err


def test_shop_types_on_the_command_line_match_the_store() -> None:
    from smartduka_tui.cli.shop import SECRET_FLAGS, SHOP_TYPES

    assert tuple(t.value for t in ShopType) == SHOP_TYPES
    assert tuple(SECRET_FLAGS) == SECRET_NAMES


def test_registering_these_commands_does_not_load_the_store() -> None:
    """`smartduka --help` stays fast: the store is imported by handlers, not by register()."""
    code = (
        "import argparse, sys\n"
        "from smartduka_tui.cli import common, enrol, keys, shop\n"
        "commands = argparse.ArgumentParser().add_subparsers()\n"
        "for module in (shop, enrol, keys):\n"
        "    module.register(commands)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('smartduka_tui.store',\n"
        "    'smartduka_tui.config', 'pydantic', 'aiosqlite', 'cryptography'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
