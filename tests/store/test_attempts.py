"""Payment attempts: creation rules, compare-and-set transitions, flags and the lists."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import (
    FINAL,
    LIVE,
    PROBLEM_FLAGS,
    PROBLEM_STATES,
    Actor,
    AttemptFlag,
    AttemptState,
)
from smartduka_tui.store import (
    AttemptFilter,
    AttemptInputError,
    IdempotencyKeyExistsError,
    InvalidTransitionError,
    NotFoundError,
    PhoneBusyError,
    StateOrFlags,
    Store,
)
from smartduka_tui.store.attempts import LIVE_SQL, PROBLEM_SQL
from smartduka_tui.store.db import Params
from smartduka_tui.store.migrations import MIGRATIONS
from tests.conftest import unique_phone
from tests.store.helpers import make_shop, new_attempt


async def test_create_writes_created_attempt_with_audit(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    new = new_attempt(clock, shop_id, till_id, amount=250)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new)
    assert attempt.state is AttemptState.CREATED
    assert attempt.previous_state is None
    assert attempt.amount == 250 and isinstance(attempt.amount, int)
    assert attempt.attempt_number == 1
    assert attempt.created_at == clock.now()
    assert attempt.expires_at == new.expires_at
    entries = await store.audit.entries(shop_id, attempt_id=attempt.id)
    assert [e.action for e in entries] == ["attempt.created"]
    assert entries[0].detail["amount"] == 250


async def test_attempt_numbers_count_per_sale(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    numbers = []
    for _ in range(3):
        async with store.write() as tx:
            attempt = await store.attempts.create(
                tx, new_attempt(clock, shop_id, till_id, sale_ref="SALE-9")
            )
            await store.attempts.transition(
                tx,
                shop_id,
                attempt.id,
                {AttemptState.CREATED},
                AttemptState.FAILED,
                Actor.CASHIER,
                result_code="1032",
            )
        numbers.append(attempt.attempt_number)
    assert numbers == [1, 2, 3]
    assert [a.attempt_number for a in await store.attempts.for_sale(shop_id, "SALE-9")] == [1, 2, 3]


async def test_same_idempotency_key_is_refused_with_the_existing_attempt(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    first = new_attempt(clock, shop_id, till_id, idempotency_key="key-1")
    async with store.write() as tx:
        created = await store.attempts.create(tx, first)
    again = new_attempt(clock, shop_id, till_id, idempotency_key="key-1")
    with pytest.raises(IdempotencyKeyExistsError) as caught:
        async with store.write() as tx:
            await store.attempts.create(tx, again)
    assert caught.value.existing == created
    assert len((await store.attempts.history(shop_id)).items) == 1


async def test_one_live_attempt_per_phone_per_till(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    phone = unique_phone()
    async with store.write() as tx:
        live = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id, phone=phone))
    with pytest.raises(PhoneBusyError) as caught:
        async with store.write() as tx:
            await store.attempts.create(tx, new_attempt(clock, shop_id, till_id, phone=phone))
    assert caught.value.existing.id == live.id
    assert "live payment" in str(caught.value)
    # Once final, the phone may pay again.
    async with store.write() as tx:
        await store.attempts.transition(
            tx, shop_id, live.id, LIVE, AttemptState.EXPIRED, Actor.EXPIRY
        )
        again = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id, phone=phone))
    assert again.state is AttemptState.CREATED


async def test_database_itself_refuses_a_second_live_attempt_for_a_phone(
    store: Store, clock: ManualClock
) -> None:
    """The partial unique index holds even if a caller skips the repository's check."""
    shop_id, till_id = await make_shop(store)
    phone = unique_phone()
    async with store.write() as tx:
        await store.attempts.create(tx, new_attempt(clock, shop_id, till_id, phone=phone))
    import sqlite3

    with pytest.raises(sqlite3.IntegrityError, match=r"attempts\.till_id, attempts\.phone"):
        async with store.write() as tx:
            await tx.execute(
                "INSERT INTO attempts (shop_id, till_id, sale_ref, amount, phone,"
                " idempotency_key, attempt_ref, attempt_number, state, created_at, expires_at,"
                " updated_at) VALUES (?, ?, 'x', 5, ?, 'k', 'r', 1, 'PENDING', 0, 0, 0)",
                (shop_id, till_id, phone),
            )


async def test_till_of_another_shop_is_refused(store: Store, clock: ManualClock) -> None:
    shop_a, _ = await make_shop(store)
    _, till_b = await make_shop(store)
    with pytest.raises(NotFoundError, match="not enrolled"):
        async with store.write() as tx:
            await store.attempts.create(tx, new_attempt(clock, shop_a, till_b))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"amount": 0}, "amount", "between 1 and 250,000"),
        ({"amount": 250_001}, "amount", "between 1 and 250,000"),
        ({"amount": 10.5}, "amount", "whole number of shillings"),
        ({"amount": True}, "amount", "whole number of shillings"),
        ({"phone": "0712345678"}, "phone", "normalised Kenyan mobile"),
        ({"phone": "254812345678"}, "phone", "normalised Kenyan mobile"),
        ({"sale_ref": ""}, "sale_ref", "1 to 64 characters"),
        ({"sale_ref": "a\nb"}, "sale_ref", "control characters"),
        ({"idempotency_key": "has space"}, "idempotency_key", "printable"),
        ({"attempt_ref": "a/b"}, "attempt_ref", "letters, digits"),
    ],
)
async def test_bad_attempt_input_is_refused_and_nothing_is_written(
    store: Store, clock: ManualClock, changes: dict[str, object], field: str, message: str
) -> None:
    shop_id, till_id = await make_shop(store)
    audit_before = await store.audit.verify_chain()
    bad = replace(new_attempt(clock, shop_id, till_id), **changes)  # type: ignore[arg-type]
    with pytest.raises(AttemptInputError) as caught:
        async with store.write() as tx:
            await store.attempts.create(tx, bad)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert (await store.attempts.history(shop_id)).items == ()
    assert (await store.audit.verify_chain()).entries == audit_before.entries


async def test_transition_is_compare_and_set(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
    clock.advance(2)
    async with store.write() as tx:
        result = await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            {AttemptState.CREATED},
            AttemptState.PENDING,
            Actor.CASHIER,
            merchant_request_id="29115-34620561-1",
            checkout_request_id="ws_CO_191220191020363925",
            push_sent_at=clock.now(),
        )
    assert result.applied
    assert result.attempt.state is AttemptState.PENDING
    assert result.attempt.previous_state is AttemptState.CREATED
    assert result.attempt.checkout_request_id == "ws_CO_191220191020363925"
    assert result.attempt.push_sent_at == clock.now()
    # A second CREATED -> PENDING (a late duplicate response) changes nothing.
    async with store.write() as tx:
        stale = await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            {AttemptState.CREATED},
            AttemptState.FAILED,
            Actor.CASHIER,
            result_code="1",
        )
    assert not stale.applied
    assert stale.attempt == result.attempt
    actions = [e.action for e in await store.audit.entries(shop_id, attempt_id=attempt.id)]
    assert actions == ["attempt.transition", "attempt.created"]


async def test_completed_sets_completed_at_and_is_never_left(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            {AttemptState.CREATED},
            AttemptState.PENDING,
            Actor.CASHIER,
            push_sent_at=clock.now(),
        )
    clock.advance(17)
    async with store.write() as tx:
        done = await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            LIVE,
            AttemptState.COMPLETED,
            Actor.CALLBACK,
            result_code=0,
            result_desc="The service request is processed successfully.",
            receipt_number="NLJ7RT61SV",
        )
    assert done.attempt.completed_at == clock.now()
    assert done.attempt.result_code == "0"
    with pytest.raises(InvalidTransitionError, match="never left"):
        async with store.write() as tx:
            await store.attempts.transition(
                tx, shop_id, attempt.id, set(AttemptState), AttemptState.FAILED, Actor.QUERY
            )
    still = await store.attempts.get(shop_id, attempt.id)
    assert still is not None and still.state is AttemptState.COMPLETED


async def test_completed_may_gain_fields_and_flags_without_changing_state(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            {AttemptState.CREATED},
            AttemptState.COMPLETED,
            Actor.QUERY,
            add_flags=AttemptFlag.RECEIPT_PENDING,
        )
        filled = await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            {AttemptState.COMPLETED},
            AttemptState.COMPLETED,
            Actor.CALLBACK,
            receipt_number="NLJ7RT61SV",
        )
    assert filled.attempt.receipt_number == "NLJ7RT61SV"
    assert filled.attempt.previous_state is AttemptState.CREATED
    assert filled.attempt.flags == AttemptFlag.RECEIPT_PENDING


async def test_transition_refuses_unknown_fields_and_other_shops(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    other_shop, _ = await make_shop(store)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
    with pytest.raises(TypeError, match="amount"):
        async with store.write() as tx:
            await store.attempts.transition(
                tx, shop_id, attempt.id, LIVE, AttemptState.PENDING, Actor.CASHIER, amount=1
            )
    with pytest.raises(NotFoundError):
        async with store.write() as tx:
            await store.attempts.transition(
                tx, other_shop, attempt.id, LIVE, AttemptState.FAILED, Actor.CASHIER
            )
    unchanged = await store.attempts.get(shop_id, attempt.id)
    assert unchanged is not None and unchanged.state is AttemptState.CREATED


async def test_checkout_request_id_belongs_to_one_attempt(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        one = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        two = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        await store.attempts.transition(
            tx,
            shop_id,
            one.id,
            {AttemptState.CREATED},
            AttemptState.PENDING,
            Actor.CASHIER,
            checkout_request_id="ws_CO_1",
        )
    with pytest.raises(AttemptInputError, match=f"attempt {one.id}"):
        async with store.write() as tx:
            await store.attempts.transition(
                tx,
                shop_id,
                two.id,
                {AttemptState.CREATED},
                AttemptState.PENDING,
                Actor.CASHIER,
                checkout_request_id="ws_CO_1",
            )
    found = await store.attempts.by_checkout_request_id(shop_id, "ws_CO_1")
    assert found is not None and found.id == one.id
    after = await store.attempts.get(shop_id, two.id)
    assert after is not None and after.state is AttemptState.CREATED


async def test_lookups(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    new = new_attempt(clock, shop_id, till_id)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new)
    assert await store.attempts.get(shop_id, attempt.id) == attempt
    assert await store.attempts.by_attempt_ref(shop_id, new.attempt_ref) == attempt
    assert await store.attempts.live_for_phone(shop_id, till_id, new.phone) == attempt
    assert await store.attempts.get(shop_id, attempt.id + 1000) is None
    assert await store.attempts.by_attempt_ref(shop_id, "nope") is None


async def test_live_lists_by_state(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        old = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        await store.attempts.transition(
            tx,
            shop_id,
            old.id,
            {AttemptState.CREATED},
            AttemptState.PENDING,
            Actor.CASHIER,
            push_sent_at=clock.now(),
        )
    clock.advance(40)
    async with store.write() as tx:
        young = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        await store.attempts.transition(
            tx,
            shop_id,
            young.id,
            {AttemptState.CREATED},
            AttemptState.PENDING,
            Actor.CASHIER,
            push_sent_at=clock.now(),
        )
        created = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
    assert [a.id for a in await store.attempts.live(shop_id, till_id, {AttemptState.CREATED})] == [
        created.id
    ]
    assert {a.id for a in await store.attempts.live(shop_id, till_id)} == {
        old.id,
        young.id,
        created.id,
    }


async def test_flags_and_manager_resolution(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            LIVE,
            AttemptState.COMPLETED,
            Actor.CALLBACK,
            receipt_number="R1",
        )
        flagged = await store.attempts.add_flags(
            tx,
            shop_id,
            attempt.id,
            AttemptFlag.DUPLICATE_PAYMENT,
            Actor.SYSTEM,
            reason="sale already paid",
        )
    assert flagged.flags == AttemptFlag.DUPLICATE_PAYMENT
    assert [a.id for a in (await store.attempts.problems(shop_id)).items] == [attempt.id]
    with pytest.raises(AttemptInputError, match="note"):
        async with store.write() as tx:
            await store.attempts.resolve(tx, shop_id, attempt.id, "   ")
    async with store.write() as tx:
        resolved = await store.attempts.resolve(tx, shop_id, attempt.id, "refunded KES 150")
    assert AttemptFlag.RESOLVED_BY_MANAGER in resolved.flags
    assert resolved.review_note == "refunded KES 150"
    assert (await store.attempts.problems(shop_id)).items == ()
    with_resolved = await store.attempts.problems(shop_id, AttemptFilter(include_resolved=True))
    assert [a.id for a in with_resolved.items] == [attempt.id]


async def _fill(store: Store, clock: ManualClock, shop_id: str, till_id: str) -> dict[str, int]:
    """Attempts in every final state, one minute apart; returns ids by label."""
    ids: dict[str, int] = {}
    plan = [
        ("paid", AttemptState.COMPLETED, "0", AttemptFlag.NONE),
        ("cancelled", AttemptState.FAILED, "1032", AttemptFlag.NONE),
        ("paid2", AttemptState.COMPLETED, "0", AttemptFlag.NONE),
        ("broke", AttemptState.FAILED, "1", AttemptFlag.NONE),
        ("expired", AttemptState.EXPIRED, None, AttemptFlag.NONE),
        ("late", AttemptState.COMPLETED, "0", AttemptFlag.LATE),
        ("review", AttemptState.NEEDS_REVIEW, "9999", AttemptFlag.NONE),
        ("cancelled2", AttemptState.FAILED, "1032", AttemptFlag.NONE),
    ]
    for label, state, code, flags in plan:
        clock.advance(60)
        async with store.write() as tx:
            attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
            await store.attempts.transition(
                tx,
                shop_id,
                attempt.id,
                {AttemptState.CREATED},
                AttemptState.PENDING,
                Actor.CASHIER,
                push_sent_at=clock.now(),
            )
        clock.advance(10)
        async with store.write() as tx:
            await store.attempts.transition(
                tx,
                shop_id,
                attempt.id,
                {AttemptState.PENDING},
                state,
                Actor.CALLBACK,
                result_code=code,
                add_flags=flags,
            )
        ids[label] = attempt.id
    return ids


async def test_problem_list_pages_newest_first_with_filters(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    ids = await _fill(store, clock, shop_id, till_id)
    expected = [ids[k] for k in ("cancelled2", "review", "late", "expired", "broke", "cancelled")]
    first = await store.attempts.problems(shop_id, limit=4)
    assert [a.id for a in first.items] == expected[:4]
    assert first.next_cursor is not None
    second = await store.attempts.problems(shop_id, limit=4, cursor=first.next_cursor)
    assert [a.id for a in second.items] == expected[4:]
    assert second.next_cursor is None

    by_code = await store.attempts.problems(
        shop_id, AttemptFilter(result_codes=frozenset({"1032"}))
    )
    assert [a.id for a in by_code.items] == [ids["cancelled2"], ids["cancelled"]]
    by_state = await store.attempts.problems(
        shop_id, AttemptFilter(states=frozenset({AttemptState.EXPIRED}))
    )
    assert [a.id for a in by_state.items] == [ids["expired"]]
    cancelled = await store.attempts.get(shop_id, ids["cancelled"])
    assert cancelled is not None
    by_phone = await store.attempts.problems(shop_id, AttemptFilter(phone=cancelled.phone))
    assert [a.id for a in by_phone.items] == [ids["cancelled"]]
    by_time = await store.attempts.problems(
        shop_id,
        AttemptFilter(
            since=cancelled.created_at, until=cancelled.created_at + timedelta(minutes=3)
        ),
    )
    assert [a.id for a in by_time.items] == [ids["broke"], ids["cancelled"]]
    assert (await store.attempts.problems(shop_id, AttemptFilter(till_id="elsewhere"))).items == ()
    expired_or_late = AttemptFilter(
        any_of=StateOrFlags(states=frozenset({AttemptState.EXPIRED}), flags=AttemptFlag.LATE)
    )
    found = await store.attempts.problems(shop_id, expired_or_late)
    assert [a.id for a in found.items] == [ids["late"], ids["expired"]]
    only_late = AttemptFilter(any_of=StateOrFlags(flags=AttemptFlag.LATE))
    assert [a.id for a in (await store.attempts.history(shop_id, only_late)).items] == [ids["late"]]
    assert (await store.attempts.history(shop_id, AttemptFilter(any_of=StateOrFlags()))).items == ()
    history = await store.attempts.history(shop_id, limit=100)
    assert len(history.items) == len(ids)


async def test_summary_counts_money_and_failures(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    start = clock.now()
    await _fill(store, clock, shop_id, till_id)
    summary = await store.attempts.summary(shop_id, start, clock.now() + timedelta(seconds=1))
    assert summary.attempts == 8
    assert summary.paid == 3
    assert summary.amount_paid == 3 * 150
    assert isinstance(summary.amount_paid, int)
    assert summary.failed == 3
    assert summary.failures_by_code == {"1032": 2, "1": 1}
    assert summary.average_seconds_to_pay == pytest.approx(10.0)
    assert summary.failure_rate == pytest.approx(3 / 8)
    tz = ZoneInfo("Africa/Nairobi")
    today = await store.attempts.daily_summary(shop_id, start.astimezone(tz).date(), tz)
    assert today.attempts == 8
    assert (await store.attempts.daily_summary(shop_id, date(2020, 1, 1), tz)).attempts == 0


def test_flag_and_state_sets() -> None:
    assert FINAL.isdisjoint(LIVE) and set(AttemptState) == FINAL | LIVE
    assert int(PROBLEM_FLAGS) == 15  # the literal in PROBLEM_SQL and the v3 index
    listed = PROBLEM_SQL.split("(", 2)[2].split(")")[0]
    assert {name.strip(" '") for name in listed.split(",")} == {s.value for s in PROBLEM_STATES}


def test_problem_and_live_sql_match_the_partial_indexes() -> None:
    """SQLite uses a partial index only when the query repeats its WHERE term."""
    statements = " ".join(" ".join(m.statements) for m in MIGRATIONS)
    assert " ".join(PROBLEM_SQL.split()) in " ".join(statements.split())
    assert " ".join(LIVE_SQL.split()) in " ".join(statements.split())


_PLAN_CALLS: dict[str, tuple[Callable[[Store], Awaitable[object]], list[object]]] = {
    "problems": (lambda store: store.attempts.problems("s"), ["s", 51]),
    "history": (lambda store: store.attempts.history("s"), ["s", 51]),
    "live": (
        lambda store: store.attempts.live("s", "t"),
        ["s", "t", "CREATED", "PENDING", "UNKNOWN"],
    ),
    "problems_for_phone": (
        lambda store: store.attempts.problems("s", AttemptFilter(phone="254700000001")),
        ["s", "254700000001", 51],
    ),
    "summary": (
        lambda store: store.attempts.summary(
            "s", store.db.clock.now(), store.db.clock.now() + timedelta(days=1)
        ),
        ["s", 0, 1],
    ),
}


@pytest.mark.parametrize(
    ("call", "index"),
    [
        ("problems", "attempts_problems"),
        ("history", "attempts_by_time"),
        ("live", "attempts_live"),
        ("problems_for_phone", "attempts_by_phone"),
        ("summary", "attempts_by_time"),
    ],
)
async def test_lists_use_their_indexes(store: Store, call: str, index: str) -> None:
    captured: list[str] = []
    original = store.db.fetchall

    async def spy(sql: str, params: Params = ()) -> list[sqlite3.Row]:
        captured.append(sql)
        return await original(sql, params)

    make_call, params = _PLAN_CALLS[call]
    store.db.fetchall = spy  # type: ignore[method-assign]
    try:
        await make_call(store)
    finally:
        store.db.fetchall = original  # type: ignore[method-assign]
    plan = await store.db.fetchall(f"EXPLAIN QUERY PLAN {captured[-1]}", params)
    assert any(index in row["detail"] for row in plan), [row["detail"] for row in plan]
