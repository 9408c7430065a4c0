"""The manager PIN in the store: a peppered scrypt hash bound to the vault key, wrong tries,
the escalating lockout (by the injectable clock), change, reset, tampering (of the hash and of
the lockout's counters, by editing the database file), and an audit entry for every try."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.store import (
    InputError,
    KeyMissingError,
    Keyring,
    Secret,
    Store,
    TamperedPinError,
    create_keyring,
)
from smartduka_tui.store.audit import entry_hash
from smartduka_tui.store.pin import (
    LOCKOUT,
    LOCKOUT_STEPS,
    MAX_WRONG_TRIES,
    PEPPER_PURPOSE,
    ManagerPin,
    PinOutcome,
    hash_pin,
    pin_matches,
    pin_record_kid,
)

PIN = "2580"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    clock = ManualClock()
    opened = await Store.open(
        tmp_path / "till.db", clock=clock, keyring=create_keyring(tmp_path / "keyring")
    )
    yield opened
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


PEPPER = b"p" * 32


async def test_the_hash_is_peppered_scrypt_with_a_random_salt() -> None:
    first, second = hash_pin(Secret(PIN), PEPPER, "k1"), hash_pin(Secret(PIN), PEPPER, "k1")
    assert first.startswith("scrypt-hmac$k1$16384$8$1$") and first != second
    assert PIN not in first
    assert pin_matches(Secret(PIN), first, PEPPER) and pin_matches(Secret(PIN), second, PEPPER)
    assert not pin_matches(Secret("2581"), first, PEPPER)


@pytest.mark.parametrize(
    "stored",
    [
        # the old unpeppered form, which anyone can compute for a PIN of their choice
        "scrypt$16384$8$1$c2FsdA==$aGFzaA==",
        "md5$nonsense",
    ],
)
async def test_a_record_not_made_with_the_pepper_is_tampering(stored: str) -> None:
    with pytest.raises(TamperedPinError, match="fails its check against this till's encryption"):
        pin_matches(Secret(PIN), stored, PEPPER)


async def test_a_record_made_with_another_pepper_is_tampering_whatever_the_pin() -> None:
    """An attacker with their own key makes a valid-looking record for a PIN they know."""
    forged = hash_pin(Secret(PIN), b"x" * 32, "k1")
    for tried in (PIN, "2581"):
        with pytest.raises(TamperedPinError):
            pin_matches(Secret(tried), forged, PEPPER)


async def test_only_the_hash_is_stored(store: Store) -> None:
    await ManagerPin.of(store).set(Secret(PIN))
    row = await store.db.fetchone("SELECT pin_hash FROM manager_pin")
    assert row is not None and row["pin_hash"].startswith("scrypt-hmac$")
    pepper = store.credentials.derived_key(pin_record_kid(row["pin_hash"]), PEPPER_PURPOSE)
    assert pin_matches(Secret(PIN), row["pin_hash"], pepper)
    for entry in await store.audit.system_entries():
        assert PIN not in str(entry.detail)


@pytest.mark.parametrize(
    "replacement",
    [
        # what the review did: scrypt of a known PIN, no pepper
        "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGg=",
        # a peppered record under a key that is not this till's
        hash_pin(Secret("9173"), b"x" * 32, "k1", salt=b"s" * 16),
    ],
    ids=["unpeppered", "another key"],
)
async def test_a_pin_hash_replaced_in_the_database_is_refused(
    store: Store, replacement: str
) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    async with store.write() as tx:
        await tx.execute("UPDATE manager_pin SET pin_hash = ?", (replacement,))
    before = await actions(store)
    for tried in ("9173", PIN):
        with pytest.raises(TamperedPinError) as refused:
            await pin.verify(Secret(tried), purpose="x")
        assert "the database was edited" in str(refused.value)
        assert "smartduka manager reset-pin --yes" in str(refused.value)
    assert await actions(store) == before


async def test_a_deleted_pin_row_does_not_open_the_gate(store: Store) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    async with store.write() as tx:
        await tx.execute("DELETE FROM manager_pin")
    with pytest.raises(TamperedPinError, match="removed from the database although the audit"):
        await pin.status()
    with pytest.raises(TamperedPinError):
        await pin.verify(Secret(PIN), purpose="x")
    assert await pin.reset(reason="tampered") is False
    assert not (await pin.status()).is_set


async def test_a_forged_reset_entry_does_not_open_the_gate(store: Store) -> None:
    """Delete the PIN row and write a 'manager.pin_reset' entry by hand (no key, so no MAC)."""
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    last = await store.db.fetchone("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    assert last is not None
    entry_id, prev, detail = last["id"] + 1, last["hash"], '{"had_pin":true,"reason":"x"}'
    forged = entry_hash(entry_id, 0, None, "manager", "manager.pin_reset", None, detail, prev)
    async with store.write() as tx:
        await tx.execute("DELETE FROM manager_pin")
        await tx.execute(
            "INSERT INTO audit_log (id, at, shop_id, actor, action, attempt_id, detail,"
            " prev_hash, hash, kid) VALUES (?, 0, NULL, 'manager', 'manager.pin_reset', NULL,"
            " ?, ?, ?, NULL)",
            (entry_id, detail, prev, forged),
        )
        await tx.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (entry_id, forged))
    with pytest.raises(TamperedPinError, match="removed from the database"):
        await pin.status()
    # A real reset (with the key) still works, and then no PIN is set.
    assert await pin.reset(reason="tampered") is False
    assert not (await pin.status()).is_set


async def test_setting_a_pin_needs_the_key(tmp_path: Path) -> None:
    keyless = await Store.open(tmp_path / "till.db", clock=ManualClock())
    try:
        with pytest.raises(KeyMissingError, match="the PIN is peppered with it"):
            await ManagerPin.of(keyless).set(Secret(PIN))
        assert not (await ManagerPin.of(keyless).status()).is_set
    finally:
        await keyless.close()


async def test_each_lockout_in_a_row_lasts_longer_until_a_right_pin(store: Store) -> None:
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    clock = clock_of(store)
    lengths = []
    for _ in range(len(LOCKOUT_STEPS) + 1):
        for _ in range(MAX_WRONG_TRIES - 1):
            await pin.verify(Secret("1357"), purpose="x")
        locked = await pin.verify(Secret("1357"), purpose="x")
        assert locked.outcome is PinOutcome.LOCKED and locked.locked_until is not None
        lengths.append(round((locked.locked_until - clock.now()).total_seconds() / 60))
        clock.advance((locked.locked_until - clock.now()).total_seconds())
    assert lengths == [5, 15, 60, 240, 1440, 1440]
    wrong = await pin.verify(Secret("1357"), purpose="x")
    assert "before it locks for 1440 minutes" in wrong.explain()
    assert (await pin.verify(Secret(PIN), purpose="x")).accepted
    for _ in range(MAX_WRONG_TRIES):
        again = await pin.verify(Secret("1357"), purpose="x")
    assert again.locked_until == clock.now() + LOCKOUT


async def test_the_escalation_survives_reopening_the_database(tmp_path: Path) -> None:
    clock = ManualClock()
    keyring = create_keyring(tmp_path / "keyring")
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        pin = ManagerPin.of(store)
        await pin.set(Secret(PIN))
        for _ in range(MAX_WRONG_TRIES):
            await pin.verify(Secret("1357"), purpose="x")
        clock.advance(LOCKOUT.total_seconds())
    finally:
        await store.close()
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        pin = ManagerPin.of(store)
        for _ in range(MAX_WRONG_TRIES):
            locked = await pin.verify(Secret("1357"), purpose="x")
        assert locked.locked_until == clock.now() + LOCKOUT_STEPS[1]
    finally:
        await store.close()


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
        "manager.pin_counters_sealed",  # once per database: its counters carry a MAC from now
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


# ------------------------------------------------- the lockout's counters, edited by an attacker


async def _locked_out_till(tmp_path: Path) -> tuple[ManualClock, Keyring]:
    """A closed till database whose PIN was just locked out by wrong tries."""
    clock, keyring = ManualClock(), create_keyring(tmp_path / "keyring")
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    pin = ManagerPin.of(store)
    await pin.set(Secret(PIN))
    for _ in range(MAX_WRONG_TRIES):
        await pin.verify(Secret("1357"), purpose="x")
    await store.close()
    return clock, keyring


def _edit_file(path: Path, sql: str, args: tuple[object, ...] = ()) -> None:
    """What an attacker with the database file (and not the key) does: plain SQL."""
    with sqlite3.connect(path) as conn:
        conn.execute(sql, args)


def _pin_row(path: Path) -> tuple[object, ...]:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT * FROM manager_pin").fetchone()
    assert row is not None
    return tuple(row)


async def _tries_are_refused_and_change_nothing(
    path: Path, clock: ManualClock, keyring: Keyring
) -> None:
    store = await Store.open(path, clock=clock, keyring=keyring)
    try:
        before = (await actions(store), _pin_row(path))
        for tried in ("1357", PIN):
            with pytest.raises(TamperedPinError) as refused:
                await ManagerPin.of(store).verify(Secret(tried), purpose="x")
            words = str(refused.value)
            assert "count of wrong tries fails its check" in words
            assert "The PIN stays locked" in words
            assert "smartduka manager reset-pin --yes" in words
        assert (await actions(store), _pin_row(path)) == before
    finally:
        await store.close()


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE manager_pin SET failures = 0, locked_until = NULL, lockouts = 0",
        "UPDATE manager_pin SET locked_until = 0",
        "UPDATE manager_pin SET lockouts = 0",
        "UPDATE manager_pin SET counters_tag = NULL, failures = 0, locked_until = NULL",
    ],
    ids=["all reset", "lock ended", "escalation reset", "MAC removed"],
)
async def test_lockout_counters_edited_in_the_file_keep_the_pin_locked(
    tmp_path: Path, edit: str
) -> None:
    """Issue #17: editing the lockout away is seen, and even the right PIN opens nothing."""
    clock, keyring = await _locked_out_till(tmp_path)
    _edit_file(tmp_path / "till.db", edit)
    await _tries_are_refused_and_change_nothing(tmp_path / "till.db", clock, keyring)


async def test_an_older_pin_row_copied_back_over_a_lockout_is_refused(tmp_path: Path) -> None:
    """A replay: the row saved while the count was clean, written back after the lockout. Its
    MAC is genuine but names an older audit entry than the newest try."""
    clock, keyring = ManualClock(), create_keyring(tmp_path / "keyring")
    path = tmp_path / "till.db"
    store = await Store.open(path, clock=clock, keyring=keyring)
    await ManagerPin.of(store).set(Secret(PIN))
    clean = _pin_row(path)
    for _ in range(MAX_WRONG_TRIES):
        await ManagerPin.of(store).verify(Secret("1357"), purpose="x")
    await store.close()
    _edit_file(path, "DELETE FROM manager_pin")
    _edit_file(path, "INSERT INTO manager_pin VALUES (?, ?, ?, ?, ?, ?, ?)", clean)
    await _tries_are_refused_and_change_nothing(path, clock, keyring)


async def test_the_recovery_route_opens_a_tampered_lockout(tmp_path: Path) -> None:
    clock, keyring = await _locked_out_till(tmp_path)
    _edit_file(tmp_path / "till.db", "UPDATE manager_pin SET failures = 0, locked_until = NULL")
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        pin = ManagerPin.of(store)
        assert await pin.reset(reason="lockout edited") is True
        await pin.set(Secret("2468"))
        assert (await pin.verify(Secret("2468"), purpose="x")).accepted
    finally:
        await store.close()


async def test_untouched_counters_pass_their_check_after_a_restart(tmp_path: Path) -> None:
    """The MAC is what the till itself wrote: a genuine lockout reads as a lockout, and the
    right PIN works once it ends."""
    clock, keyring = await _locked_out_till(tmp_path)
    store = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        pin = ManagerPin.of(store)
        assert (await pin.verify(Secret(PIN), purpose="x")).outcome is PinOutcome.LOCKED
        clock.advance(LOCKOUT.total_seconds())
        assert (await pin.verify(Secret(PIN), purpose="x")).accepted
    finally:
        await store.close()
