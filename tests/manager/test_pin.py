"""The manager PIN in the store: scrypt hash with a random salt, wrong tries, the lockout (by the
injectable clock), change, reset, and an audit entry for every try."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.store import InputError, Secret, Store, create_keyring
from smartduka_tui.store.pin import (
    LOCKOUT,
    MAX_WRONG_TRIES,
    ManagerPin,
    PinOutcome,
    hash_pin,
    pin_matches,
)

PIN = "2580"


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    clock = ManualClock()
    opened = await Store.open(
        tmp_path / "till.db", clock=clock, keyring=create_keyring(tmp_path / "keyring")
    )
    yield opened  # type: ignore[misc]
    await opened.close()


def clock_of(store: Store) -> ManualClock:
    clock = store.db.clock
    assert isinstance(clock, ManualClock)
    return clock


async def actions(store: Store) -> list[str]:
    return [e.action for e in reversed(await store.audit.system_entries(limit=1000))]


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("", "must be 4 to 12 digits (0-9) and nothing else"),
        ("12a4", "must be 4 to 12 digits (0-9) and nothing else"),
        (" 2580", "must be 4 to 12 digits (0-9) and nothing else"),
        ("258", "must be 4 to 12 digits, got 3"),
        ("2580258025802", "must be 4 to 12 digits, got 13"),
        ("7777", "must not be one digit repeated"),
        ("1234", "must not be a run of digits like 1234"),
        ("98765", "must not be a run of digits like 1234"),
    ],
)
async def test_a_weak_or_malformed_pin_is_refused_and_nothing_is_set(
    store: Store, pin: str, why: str
) -> None:
    with pytest.raises(InputError) as refused:
        await ManagerPin.of(store).set(Secret(pin))
    assert refused.value.field == "pin" and why in refused.value.message
    assert not (await ManagerPin.of(store).status()).is_set
    assert await actions(store) == []


async def test_the_hash_is_scrypt_with_a_random_salt() -> None:
    first, second = hash_pin(Secret(PIN)), hash_pin(Secret(PIN))
    assert first.startswith("scrypt$16384$8$1$") and first != second
    assert PIN not in first
    assert pin_matches(Secret(PIN), first) and pin_matches(Secret(PIN), second)
    assert not pin_matches(Secret("2581"), first)
    assert not pin_matches(Secret(PIN), "md5$nonsense")


async def test_only_the_hash_is_stored(store: Store) -> None:
    await ManagerPin.of(store).set(Secret(PIN))
    row = await store.db.fetchone("SELECT pin_hash FROM manager_pin")
    assert row is not None and row["pin_hash"].startswith("scrypt$")
    assert pin_matches(Secret(PIN), row["pin_hash"])
    for entry in await store.audit.system_entries():
        assert PIN not in str(entry.detail)


async def test_right_pin_signs_in_and_every_try_is_audited(store: Store) -> None:
    pin = ManagerPin.of(store)
    assert (await pin.verify(Secret(PIN), purpose="x")).outcome is PinOutcome.NOT_SET
    await pin.set(Secret(PIN))
    wrong = await pin.verify(Secret("9999"), purpose="problem payments")
    assert wrong.outcome is PinOutcome.WRONG and wrong.tries_left == MAX_WRONG_TRIES - 1
    assert "4 tries left" in wrong.explain()
    right = await pin.verify(Secret(PIN), purpose="problem payments")
    assert right.accepted
    assert (await pin.status()).failures == 0
    assert await actions(store) == [
        "manager.pin_set",
        "manager.sign_in_failed",
        "manager.sign_in",
    ]
    entries = await store.audit.system_entries()
    assert entries[0].detail == {"purpose": "problem payments"}
    assert entries[1].detail == {"purpose": "problem payments", "failures": 1}


async def test_five_wrong_tries_lock_it_until_the_clock_moves_on(store: Store) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    clock = clock_of(store)
    checks = [await pin.verify(Secret("1357"), purpose="x") for _ in range(MAX_WRONG_TRIES)]
    assert [c.tries_left for c in checks] == [4, 3, 2, 1, 0]
    locked = checks[-1]
    assert locked.outcome is PinOutcome.LOCKED
    assert locked.locked_until == clock.now() + LOCKOUT
    # Even the right PIN is refused while locked, and the refusal is audited.
    refused = await pin.verify(Secret(PIN), purpose="x")
    assert refused.outcome is PinOutcome.LOCKED and not refused.accepted
    assert (await pin.status()).locked_until == locked.locked_until
    clock.advance(LOCKOUT.total_seconds() - 1)
    assert (await pin.verify(Secret(PIN), purpose="x")).outcome is PinOutcome.LOCKED
    clock.advance(1)
    assert (await pin.status()).locked_until is None
    assert (await pin.verify(Secret(PIN), purpose="x")).accepted
    assert (await actions(store)).count("manager.locked_out") == 1
    assert (await actions(store)).count("manager.sign_in_refused") == 2


async def test_after_a_lock_the_count_starts_again(store: Store) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    for _ in range(MAX_WRONG_TRIES):
        await pin.verify(Secret("1357"), purpose="x")
    clock_of(store).advance(LOCKOUT.total_seconds())
    again = await pin.verify(Secret("1357"), purpose="x")
    assert again.outcome is PinOutcome.WRONG and again.tries_left == MAX_WRONG_TRIES - 1


async def test_the_lockout_survives_reopening_the_database(tmp_path: Path) -> None:
    clock = ManualClock()
    keyring = create_keyring(tmp_path / "keyring")
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    for _ in range(MAX_WRONG_TRIES):
        await pin.verify(Secret("1357"), purpose="x")
    await store.close()
    clock.advance(60)
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        status = await ManagerPin.of(store).status()
    finally:
        await store.close()
    assert status.locked_until is not None
    assert status.locked_until - clock.now() == LOCKOUT - timedelta(seconds=60)


async def test_changing_needs_the_current_pin(store: Store) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    with pytest.raises(InputError, match="a manager PIN is already set"):
        await pin.set(Secret("3691"))
    wrong = await pin.set(Secret("3691"), current_pin=Secret("1111"))
    assert wrong.outcome is PinOutcome.WRONG
    assert (await pin.verify(Secret(PIN), purpose="x")).accepted
    changed = await pin.set(Secret("3691"), current_pin=Secret(PIN))
    assert changed.accepted
    assert not (await pin.verify(Secret(PIN), purpose="x")).accepted
    assert (await pin.verify(Secret("3691"), purpose="x")).accepted
    assert "manager.pin_changed" in await actions(store)


async def test_reset_forgets_the_pin_and_its_lockout(store: Store) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    for _ in range(MAX_WRONG_TRIES):
        await pin.verify(Secret("1357"), purpose="x")
    assert await pin.reset(reason="forgotten") is True
    assert await pin.status() == type(await pin.status())(is_set=False)
    await pin.set(Secret("3691"))
    assert (await pin.verify(Secret("3691"), purpose="x")).accepted
    assert await pin.reset(reason="again") is True
    assert await pin.reset(reason="nothing left") is False
    resets = [e for e in await store.audit.system_entries() if e.action == "manager.pin_reset"]
    assert [e.detail["had_pin"] for e in reversed(resets)] == [True, True, False]
