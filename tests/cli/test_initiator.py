"""`smartduka shop initiator SHOP`: the initiator name and password from standard input or the
environment, never from the command line; sealed in the vault, bound to the shop's shortcode;
every bad value named by its flag, and nothing saved."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from smartduka_tui.store import open_till_store
from smartduka_tui.store.initiator import InitiatorCredentials
from tests.cli.test_shop import _add_paybill
from tests.store.canaries import new_canary
from tests.support.cli import Runner


@pytest.fixture
def shop(smartduka: Runner) -> Runner:
    assert smartduka("keys", "init").code == 0
    result, _ = _add_paybill(smartduka, "shop1")
    assert result.code == 0, result.err
    return smartduka


def _stored(data_dir: Path) -> InitiatorCredentials | None:
    async def read() -> InitiatorCredentials | None:
        async with open_till_store(data_dir) as store:
            return await store.initiators.get("shop1")

    return asyncio.run(read())


def _audit_actions(data_dir: Path) -> list[str]:
    async def read() -> list[str]:
        async with open_till_store(data_dir) as store:
            return [e.action for e in await store.audit.entries("shop1", limit=50)]

    return asyncio.run(read())


def test_set_from_standard_input_seals_both_and_shows_only_a_mask(
    shop: Runner, data_dir: Path
) -> None:
    name, password = new_canary("op"), new_canary("pw")
    result = shop("shop", "initiator", "shop1", "--name", "-", "--password", "-",
                  stdin=f"{name}\n{password}\n")  # fmt: skip
    assert result.code == 0, result.err
    assert f"****{name[-4:]}" in result.out
    assert name not in result.text and password not in result.text
    stored = _stored(data_dir)
    assert stored is not None and stored.shortcode == "174379"
    assert (stored.name.reveal(), stored.password.reveal()) == (name, password)
    assert "shop.initiator_set" in _audit_actions(data_dir)
    # The canary scan at the end of the session proves neither reached a file in plain text.


def test_from_env(shop: Runner, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, password = new_canary("op"), new_canary("pw")
    monkeypatch.setenv("SMARTDUKA_SHOP_INITIATOR_NAME", name)
    monkeypatch.setenv("SMARTDUKA_SHOP_INITIATOR_PASSWORD", password)
    assert shop("shop", "initiator", "shop1", "--from-env").code == 0
    stored = _stored(data_dir)
    assert stored is not None and stored.password.reveal() == password


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("--name", "apiop", "--password", "-"),
            "pw\n",
            "--name takes no value on the command line",
        ),
        (
            ("--name", "-", "--password", "-"),
            "api op\npw\n",
            "--name: must be 1 to 64 letters, digits, '_', '.' or '-'",
        ),
        (("--name", "-"), "apiop\n", "the initiator password is missing"),
        (("--name", "-", "--password", "-"), "apiop\n", "expected the initiator password"),
    ],
)
def test_bad_input_is_named_and_nothing_is_saved(
    shop: Runner, data_dir: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    result = shop("shop", "initiator", "shop1", *args, stdin=stdin)
    assert result.code == 2
    assert message in result.err
    assert _stored(data_dir) is None
    assert "shop.initiator_set" not in _audit_actions(data_dir)


def test_a_platform_shop_has_no_initiator(smartduka: Runner, data_dir: Path) -> None:
    assert smartduka("keys", "init").code == 0
    added = smartduka("shop", "add", "--id", "plat", "--name", "P", "--type", "platform",
                      "--prefix", "PL")  # fmt: skip
    assert added.code == 0, added.err
    result = smartduka("shop", "initiator", "plat", "--name", "-", "--password", "-",
                       stdin="apiop\npw\n")  # fmt: skip
    assert result.code == 2
    assert "has no shortcode of its own (platform shops use the relay)" in result.err


def test_the_initiator_is_bound_to_the_shortcode(shop: Runner, data_dir: Path) -> None:
    assert shop("shop", "initiator", "shop1", "--name", "-", "--password", "-",
                stdin="apiop\nsecret-pass\n").code == 0  # fmt: skip
    assert shop("shop", "set", "shop1", "--shortcode", "600999").code == 0
    # Another shortcode needs its own initiator: the old one is not sent for it.
    assert _stored(data_dir) is None
    assert shop("shop", "set", "shop1", "--shortcode", "174379").code == 0
    stored = _stored(data_dir)
    assert stored is not None and stored.name.reveal() == "apiop"


def test_a_sealed_password_moved_to_another_field_does_not_open(
    shop: Runner, data_dir: Path
) -> None:
    from smartduka_tui.store.errors import StoreError

    assert shop("shop", "initiator", "shop1", "--name", "-", "--password", "-",
                stdin="apiop\nsecret-pass\n").code == 0  # fmt: skip

    async def swap() -> None:
        async with open_till_store(data_dir) as store:
            async with store.write() as tx:
                await tx.execute(
                    "UPDATE secrets SET blob = (SELECT blob FROM secrets WHERE field = ?) "
                    "WHERE field = ?",
                    ("initiator_password:174379", "initiator_name:174379"),
                )
            with pytest.raises(StoreError):
                await store.initiators.get("shop1")

    asyncio.run(swap())
