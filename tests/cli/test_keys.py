"""`smartduka keys`: generate, init, status, and rotation that survives SIGKILL half way."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from smartduka_tui.store import Secret, ShopSecrets, open_till_store
from tests.store.canaries import new_canary
from tests.store.helpers import enrolment, paybill_config
from tests.support.cli import Runner

ROOT = Path(__file__).resolve().parents[2]
SHOPS = 4


def _seed_secrets(data_dir: Path) -> dict[tuple[str, str], str]:
    """Shops with credentials and a till each; returns every stored secret's plaintext."""

    async def seed() -> dict[tuple[str, str], str]:
        stored: dict[tuple[str, str], str] = {}
        async with open_till_store(data_dir) as store:
            for number in range(SHOPS):
                shop_id = f"shop{number}"
                values = {
                    name: new_canary(name[:2])
                    for name in ("consumer_key", "consumer_secret", "passkey")
                }
                till = enrolment(shop_id, f"till{number}")
                async with store.write() as tx:
                    await store.shops.add(
                        tx,
                        paybill_config(shop_id),
                        ShopSecrets(**{k: Secret(v) for k, v in values.items()}),
                    )
                    await store.tills.enrol(tx, till)
                stored.update({(shop_id, k): v for k, v in values.items()})
                stored[(shop_id, f"till:till{number}:key")] = till.till_key.reveal()
                stored[(shop_id, f"till:till{number}:callback:c1")] = till.callback_secret.reveal()
                # The sealed copies of the routing fields are re-sealed like any secret.
                for field in await store.credentials.fields(shop_id):
                    if (shop_id, field) not in stored:
                        sealed = await store.credentials.get(shop_id, field)
                        assert sealed is not None and field.endswith("routing")
                        stored[(shop_id, field)] = sealed.reveal()
        return stored

    return asyncio.run(seed())


def _read_all(
    data_dir: Path, names: list[tuple[str, str]]
) -> tuple[dict[str, int], dict[tuple[str, str], str]]:
    async def read() -> tuple[dict[str, int], dict[tuple[str, str], str]]:
        async with open_till_store(data_dir) as store:
            usage = await store.credentials.usage_by_kid()
            values: dict[tuple[str, str], str] = {}
            for shop_id, field in names:
                secret = await store.credentials.get(shop_id, field)
                assert secret is not None
                values[(shop_id, field)] = secret.reveal()
            return usage, values

    return asyncio.run(read())


def _rotate_process(data_dir: Path, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("ENCRYPTION_KEY")}
    env.update(SMARTDUKA_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
    env.pop("SMARTDUKA_FAULT", None)
    if fault:
        env["SMARTDUKA_FAULT"] = fault
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from smartduka_tui.cli import main; sys.exit(main(sys.argv[1:]))",
            "keys",
            "rotate",
            "--batch-size",
            "2",
        ],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_generate_prints_fresh_keys(smartduka: Runner) -> None:
    first, second = smartduka("keys", "generate"), smartduka("keys", "generate")
    assert first.code == 0
    assert len(first.out.strip()) == 64 and bytes.fromhex(first.out.strip())
    assert first.out != second.out


def test_init_creates_a_private_keyring_once(smartduka: Runner, data_dir: Path) -> None:
    result = smartduka("keys", "init")
    assert result.code == 0 and "created (mode 0600) with key k1" in result.out
    assert (data_dir / "keyring").stat().st_mode & 0o777 == 0o600
    before = (data_dir / "keyring").read_bytes()
    again = smartduka("keys", "init")
    assert again.code == 1 and "already exists" in again.err
    assert (data_dir / "keyring").read_bytes() == before


def test_rotation_re_seals_everything_and_keeps_the_kid_the_audit_log_needs(
    smartduka: Runner, data_dir: Path
) -> None:
    smartduka("keys", "init")
    stored = _seed_secrets(data_dir)
    result = smartduka("keys", "rotate", "--batch-size", "3")
    assert result.code == 0, result.err
    assert f"Rotated to key k2: {len(stored)} secret(s) re-sealed" in result.out
    # The seeding's audit entries are keyed with k1: the append-only log cannot be re-keyed.
    assert "Kid k1 seals no secret now, but audit entries" in result.out
    assert "Kid k1 is no longer used by any secret" not in result.out
    usage, values = _read_all(data_dir, list(stored))
    assert usage == {"k2": len(stored)}
    assert values == stored
    status = json.loads(smartduka("keys", "status", "--json").out)
    assert status == {
        "active_kid": "k2",
        "kids": ["k1", "k2"],
        "secrets_by_kid": {"k1": 0, "k2": len(stored)},
        "removable_kids": [],
        "keying_the_log": ["k1", "k2"],
    }
    assert not any(value in result.text for value in stored.values())


def test_rotation_from_an_environment_key_writes_a_keyring(
    smartduka: Runner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTDUKA_ENCRYPTION_KEY", "ab" * 32)
    stored = _seed_secrets(data_dir)
    result = smartduka("keys", "rotate")
    assert result.code == 0, result.err
    assert (data_dir / "keyring").stat().st_mode & 0o777 == 0o600
    assert "Kid env seals no secret now, but audit entries" in result.out
    usage, values = _read_all(data_dir, list(stored))
    assert usage == {"k1": len(stored)} and values == stored


def test_status_and_rotate_without_a_key(smartduka: Runner) -> None:
    for args in (("keys", "status"), ("keys", "rotate")):
        result = smartduka(*args)
        assert result.code == 1 and "no encryption key" in result.err
        assert "Traceback" not in result.text


def test_wrong_key_stops_with_what_to_do(
    smartduka: Runner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTDUKA_ENCRYPTION_KEY", "ab" * 32)
    _seed_secrets(data_dir)
    monkeypatch.setenv("SMARTDUKA_ENCRYPTION_KEY", "cd" * 32)
    result = smartduka("shop", "show", "shop0")
    assert result.code == 1
    assert "not the key this database's secrets were sealed with" in result.err
    assert "cd" * 32 not in result.text and "Traceback" not in result.text


@pytest.mark.slow
def test_rotation_killed_at_fault_points_finishes_when_run_again(
    smartduka: Runner, data_dir: Path
) -> None:
    """SIGKILL the real process at seeded-random fault points (after the new keyring is
    written, after the Nth batch) until a run completes; nothing is lost on the way."""
    seed = random.randrange(2**32)
    print(f"rotation kill seed: {seed}")
    chooser = random.Random(seed)
    smartduka("keys", "init")
    stored = _seed_secrets(data_dir)
    batches = -(-len(stored) // 2)
    kills = 0
    for _ in range(12):
        fault = chooser.choice(
            ["rotate-after-keyring", *(f"rotate-after-batch:{n}" for n in range(1, batches))]
        )
        done = _rotate_process(data_dir, fault)
        if done.returncode == 0:
            break
        assert done.returncode == -signal.SIGKILL, done.stderr
        kills += 1
        usage, values = _read_all(data_dir, list(stored))
        assert values == stored, f"a secret changed after a kill at {fault} (seed {seed})"
        assert sum(usage.values()) == len(stored)
    else:
        done = _rotate_process(data_dir, None)
    assert kills >= 1, f"no kill happened (seed {seed})"
    assert done.returncode == 0, done.stderr
    assert "Finished the interrupted rotation" in done.stdout or "Rotated to" in done.stdout
    usage, values = _read_all(data_dir, list(stored))
    assert values == stored
    assert len(usage) == 1, usage  # every secret under the one active kid
    status = json.loads(smartduka("keys", "status", "--json").out)
    assert status["secrets_by_kid"][status["active_kid"]] == len(stored)
    assert status["removable_kids"] == []  # every kid keys some audit entries
    assert set(status["keying_the_log"]) == set(status["kids"])
    for value in stored.values():
        assert value not in done.stdout + done.stderr


def test_fault_kill_mid_rotation_leaves_a_resumable_state(
    smartduka: Runner, data_dir: Path
) -> None:
    smartduka("keys", "init")
    stored = _seed_secrets(data_dir)
    killed = _rotate_process(data_dir, "rotate-after-batch:2")
    assert killed.returncode == -signal.SIGKILL
    usage, values = _read_all(data_dir, list(stored))
    assert usage == {"k1": len(stored) - 4, "k2": 4}
    assert values == stored
    pending = smartduka("keys", "status")
    assert f"{len(stored) - 4} secret(s) are not under the active key" in pending.out
    resumed = _rotate_process(data_dir, None)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Finished the interrupted rotation to key k2: {len(stored) - 4}" in resumed.stdout
    usage, values = _read_all(data_dir, list(stored))
    assert usage == {"k2": len(stored)} and values == stored
