"""Tenant isolation: random operations on several shops, where each operation names one shop
and often points at another shop's rows. No call for one shop may return or change another's.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import LIVE, Actor, AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.store import (
    AttemptConflictError,
    AttemptFilter,
    InvalidTransitionError,
    Keyring,
    NewAttempt,
    NotFoundError,
    Secret,
    Shop,
    Store,
    create_keyring,
)
from tests.store.canaries import new_canary
from tests.store.helpers import make_shop

SHOPS = 3
PHONES = ("254700000101", "254700000102", "254110000103")
KEYS = ("key-a", "key-b", "key-c", "key-d")
_ref = itertools.count(1)

shop_index = st.integers(0, SHOPS - 1)
pick = st.integers(0, 50)
operation = st.one_of(
    st.tuples(
        st.just("create"),
        shop_index,
        st.sampled_from(PHONES),
        st.sampled_from(KEYS),
        st.integers(1, 250_000),
        st.sampled_from(("S1", "S2")),
    ),
    st.tuples(st.just("transition"), shop_index, pick, st.sampled_from(list(AttemptState))),
    st.tuples(st.just("flag"), shop_index, pick, st.sampled_from(list(AttemptFlag)[1:])),
    st.tuples(st.just("resolve"), shop_index, pick),
    st.tuples(st.just("read"), shop_index, pick),
    st.tuples(st.just("problem"), shop_index),
    st.tuples(st.just("resolve_problem"), shop_index, pick),
    st.tuples(st.just("secret"), shop_index, st.sampled_from(("passkey", "consumer_key"))),
    st.tuples(st.just("lists"), shop_index),
)

_TABLES = {
    "shops": "id",
    "secrets": "shop_id",
    "tills": "shop_id",
    "attempts": "shop_id",
    "problems": "shop_id",
    "audit_log": "shop_id",
}


async def _fingerprints(store: Store, shops: list[str]) -> dict[str, tuple[Any, ...]]:
    """The shops' rows in every table, by shop id (read straight from the tables)."""
    by_shop: dict[str, list[Any]] = {}
    marks = ", ".join("?" * len(shops))
    for table, column in _TABLES.items():
        rows = await store.db.fetchall(
            f"SELECT * FROM {table} WHERE {column} IN ({marks}) ORDER BY rowid",  # noqa: S608
            shops,
        )
        for row in rows:
            by_shop.setdefault(row[column], []).append((table, tuple(row)))
    return {shop_id: tuple(rows) for shop_id, rows in by_shop.items()}


def _owned(result: Any, shop_id: str) -> None:
    """Every record in `result` belongs to `shop_id`."""
    if result is None:
        return
    if isinstance(result, list | tuple):
        for item in result:
            _owned(item, shop_id)
        return
    if hasattr(result, "items") and hasattr(result, "next_cursor"):
        _owned(result.items, shop_id)
        return
    if hasattr(result, "attempt"):
        _owned(result.attempt, shop_id)
        return
    owner = result.id if isinstance(result, Shop) else result.shop_id
    assert owner == shop_id, f"{type(result).__name__} of another shop returned"


async def _scenario(path: Path, keyring: Keyring, ops: list[tuple[Any, ...]]) -> None:
    """Run `ops` on three new shops; the database may hold earlier examples' shops too."""
    clock = ManualClock()
    store = await Store.open(path, clock=clock, keyring=keyring)
    try:
        made = [await make_shop(store) for _ in range(SHOPS)]
        shop_ids = [shop for shop, _ in made]
        attempts: list[tuple[str, int]] = []  # (owner shop, id), all shops mixed
        problems: list[tuple[str, int]] = []
        for op in ops:
            kind, index = op[0], op[1]
            shop_id, till_id = made[index]
            before = await _fingerprints(store, shop_ids)
            result = await _apply(store, clock, op, shop_id, till_id, attempts, problems)
            _owned(result, shop_id)
            after = await _fingerprints(store, shop_ids)
            for other, _ in made:
                if other != shop_id:
                    assert after.get(other) == before.get(other), f"{kind} changed {other}"
        assert (await store.audit.verify_chain()).intact
    finally:
        await store.close()


async def _apply(
    store: Store,
    clock: ManualClock,
    op: tuple[Any, ...],
    shop_id: str,
    till_id: str,
    attempts: list[tuple[str, int]],
    problems: list[tuple[str, int]],
) -> Any:
    kind = op[0]
    target = (
        attempts[op[2] % len(attempts)]
        if attempts and kind in ("transition", "flag", "resolve", "read")
        else None
    )
    foreign = target is not None and target[0] != shop_id
    clock.advance(1)
    if kind == "create":
        _, _, phone, key, amount, sale = op
        live_here = await store.db.fetchone(
            "SELECT count(*) FROM attempts WHERE till_id = ? AND phone = ? AND state IN"
            " ('CREATED', 'PENDING', 'UNKNOWN')",
            (till_id, phone),
        )
        key_here = await store.db.fetchone(
            "SELECT count(*) FROM attempts WHERE shop_id = ? AND idempotency_key = ?",
            (shop_id, key),
        )
        should_work = live_here[0] == 0 and key_here[0] == 0  # type: ignore[index]
        new = NewAttempt(
            shop_id,
            till_id,
            sale,
            amount,
            phone,
            key,
            f"ref{next(_ref)}",
            clock.now() + timedelta(minutes=5),
        )
        try:
            async with store.write() as tx:
                attempt = await store.attempts.create(tx, new)
        except AttemptConflictError as error:
            assert not should_work, "refused because of another shop's rows"
            return error.existing
        assert should_work
        attempts.append((shop_id, attempt.id))
        return attempt
    if kind == "transition" and target is not None:
        try:
            async with store.write() as tx:
                result = await store.attempts.transition(
                    tx,
                    shop_id,
                    target[1],
                    set(AttemptState),
                    op[3],
                    Actor.CALLBACK,
                    result_code="0",
                )
        except NotFoundError:
            assert foreign
            return None
        except InvalidTransitionError:
            assert not foreign
            return None
        assert not foreign
        return result
    if kind in ("flag", "resolve") and target is not None:
        try:
            async with store.write() as tx:
                if kind == "flag":
                    return await store.attempts.add_flags(
                        tx, shop_id, target[1], op[3], Actor.SYSTEM
                    )
                return await store.attempts.resolve(tx, shop_id, target[1], "checked")
        except NotFoundError:
            assert foreign
            return None
    if kind == "read" and target is not None:
        found = await store.attempts.get(shop_id, target[1])
        assert (found is None) == foreign
        if found is not None:
            assert await store.attempts.by_attempt_ref(shop_id, found.attempt_ref) == found
        owner_attempt = await store.db.fetchone(
            "SELECT idempotency_key, attempt_ref FROM attempts WHERE id = ?", (target[1],)
        )
        assert owner_attempt is not None
        by_ref = await store.attempts.by_attempt_ref(shop_id, owner_attempt["attempt_ref"])
        assert (by_ref is None) == foreign
        return [found, by_ref, await store.audit.entries(shop_id, attempt_id=target[1])]
    if kind == "problem":
        async with store.write() as tx:
            problem = await store.problems.record(
                tx, shop_id, ProblemKind.UNMATCHED_CALLBACK, {"amount": 10}, till_id=till_id
            )
        problems.append((shop_id, problem.id))
        return problem
    if kind == "resolve_problem" and problems:
        owner, problem_id = problems[op[2] % len(problems)]
        try:
            async with store.write() as tx:
                resolved = await store.problems.resolve(tx, shop_id, problem_id, "seen")
        except NotFoundError:
            return None  # another shop's, or already resolved
        assert owner == shop_id
        return resolved
    if kind == "secret":
        value = Secret(new_canary() + "0" * 16)
        async with store.write() as tx:
            await store.credentials.put(tx, shop_id, op[2], value)
        assert await store.credentials.get(shop_id, op[2]) == value
        return None
    if kind == "lists":
        phone_filter = AttemptFilter(phone=PHONES[0], include_resolved=True)
        return [
            await store.attempts.problems(shop_id),
            await store.attempts.history(shop_id, phone_filter),
            await store.attempts.live(shop_id, till_id),
            await store.attempts.for_sale(shop_id, "S1"),
            await store.problems.list(shop_id, include_resolved=True),
            await store.audit.entries(shop_id),
            await store.tills.for_shop(shop_id),
            [await store.shops.require(shop_id)],
            [
                s
                for s in [await store.attempts.live_for_phone(shop_id, till_id, p) for p in PHONES]
                if s is not None and s.state in LIVE
            ],
        ]
    return None


@pytest.fixture(scope="module")
def shared_database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keyring]:
    """One database and keyring for all examples (each example makes its own shops)."""
    folder = tmp_path_factory.mktemp("isolation")
    return folder / "till.db", create_keyring(folder / "keyring")


@settings(
    max_examples=min(settings().max_examples, 40),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_no_call_for_one_shop_touches_another(
    shared_database: tuple[Path, Keyring], ops: list[tuple[Any, ...]]
) -> None:
    path, keyring = shared_database
    asyncio.run(_scenario(path, keyring, ops))
