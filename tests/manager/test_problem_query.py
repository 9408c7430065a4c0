"""The problem list over a real SQLite file holding many problems of every kind: every filter
and page size gives the same pages, in the same order, as the Python merge of attempt pages and
problem-record batches that came before the one query (its pages are stored in
tests/data/manager/problem_pages.json, written by that merge over this same data)."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from smartduka_tui.clock import ManualClock
from smartduka_tui.manager import PaymentLists, ProblemCategory, ProblemFilter
from smartduka_tui.model import Actor, AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.store import (
    Enrolment,
    NewAttempt,
    Secret,
    Store,
    create_keyring,
    database_path,
    keyring_path,
)
from tests.manager.conftest import CLOSED_PORT_URL, FIXED_SECRETS, SHOP, START, add_shop

PAGES_FILE = Path(__file__).parents[1] / "data" / "manager" / "problem_pages.json"
C = ProblemCategory
PHONES = tuple(f"2547120000{n:02d}" for n in range(1, 7))
TILLS = ("till1", "till2")
# Each attempt's path through the states, with the flags it picks up on the way.
PATHS: tuple[tuple[tuple[AttemptState, AttemptFlag], ...], ...] = (
    ((AttemptState.PENDING, AttemptFlag.NONE), (AttemptState.COMPLETED, AttemptFlag.NONE)),
    ((AttemptState.PENDING, AttemptFlag.NONE), (AttemptState.FAILED, AttemptFlag.NONE)),
    ((AttemptState.PENDING, AttemptFlag.NONE), (AttemptState.EXPIRED, AttemptFlag.NONE)),
    ((AttemptState.UNKNOWN, AttemptFlag.NONE),),
    ((AttemptState.PENDING, AttemptFlag.NONE), (AttemptState.NEEDS_REVIEW, AttemptFlag.NONE)),
    ((AttemptState.FAILED, AttemptFlag.NONE), (AttemptState.COMPLETED, AttemptFlag.LATE)),
    ((AttemptState.PENDING, AttemptFlag.NONE), (AttemptState.COMPLETED, AttemptFlag.SUSPICIOUS)),
    (
        (AttemptState.PENDING, AttemptFlag.NONE),
        (AttemptState.COMPLETED, AttemptFlag.DUPLICATE_PAYMENT | AttemptFlag.LATE),
    ),
    (
        (AttemptState.PENDING, AttemptFlag.NONE),
        (AttemptState.COMPLETED, AttemptFlag.RECEIPT_PENDING),
    ),
    ((AttemptState.PENDING, AttemptFlag.NONE),),
    ((AttemptState.EXPIRED, AttemptFlag.NONE), (AttemptState.COMPLETED, AttemptFlag.LATE)),
)
CODES = ("0", "1", "1032", "1037", None)
# The kinds and categories the stored pages were made with: a kind added since (abandoned
# sales, tests/payments/test_sales.py lists them) would change the seeded data and the pages.
RECORD_KINDS = (
    ProblemKind.UNMATCHED_CALLBACK,
    ProblemKind.UNAPPLIED_EVENT,
    ProblemKind.SUSPICIOUS_PATTERN,
)
CATEGORIES = tuple(c for c in C if c is not C.ABANDONED_SALE)


async def _fill(store: Store, clock: ManualClock, rng: random.Random) -> None:
    """About 330 attempts and 110 problem records, many written in the same millisecond (an
    attempt and a record tie, so the rank decides), on two tills, some resolved."""
    for number in range(440):
        # A third of the items share the previous one's millisecond.
        clock.advance(0 if rng.random() < 0.33 else rng.choice((0.001, 1, 7, 60)))
        till = rng.choice(TILLS)
        async with store.write() as tx:
            if rng.random() < 0.25:
                kind = rng.choice(RECORD_KINDS)
                detail: dict[str, Any] = {"n": number}
                code = rng.choice(CODES)
                if code is not None:
                    # A few codes stored as numbers: only text codes match a code filter.
                    detail["result_code"] = int(code) if rng.random() < 0.2 else code
                if rng.random() < 0.6:
                    detail["phone"] = mask_phone(rng.choice(PHONES))
                if kind is ProblemKind.SUSPICIOUS_PATTERN:
                    detail["pattern"] = "failures_for_phone"
                problem = await store.problems.record(
                    tx, SHOP, kind, detail, till_id=rng.choice((*TILLS, None))
                )
                if rng.random() < 0.2:
                    await store.problems.resolve(tx, SHOP, problem.id, "dealt with")
                continue
            path = rng.choice(PATHS)
            # One live attempt per phone per till: one left live gets a phone of its own.
            live = path[-1][0] in (AttemptState.PENDING, AttemptState.UNKNOWN)
            phone = f"254711{number:06d}" if live else rng.choice(PHONES)
            attempt = await store.attempts.create(
                tx,
                NewAttempt(
                    shop_id=SHOP,
                    till_id=till,
                    sale_ref=f"S{number:04d}",
                    amount=rng.randint(1, 5000),
                    phone=phone,
                    idempotency_key=f"key-{number}",
                    attempt_ref=f"ref{number:04d}",
                    expires_at=clock.now() + timedelta(minutes=5),
                ),
            )
            code = rng.choice(CODES)
            for state, flags in path:
                fields: dict[str, Any] = {} if code is None else {"result_code": code}
                result = await store.attempts.transition(
                    tx,
                    SHOP,
                    attempt.id,
                    {attempt.state},
                    state,
                    Actor.SYSTEM,
                    add_flags=flags,
                    detail={"evidence": "story"},
                    **fields,
                )
                assert result.applied
                attempt = result.attempt
            if rng.random() < 0.15:
                await store.attempts.resolve(tx, SHOP, attempt.id, "dealt with")


def _filters() -> dict[str, ProblemFilter]:
    """Every filter alone and a few together, named as in the stored pages."""
    at = START
    chosen: dict[str, ProblemFilter] = {
        "all": ProblemFilter(),
        "all_with_resolved": ProblemFilter(include_resolved=True),
        "attempt_kinds": ProblemFilter(categories=frozenset({C.FAILED, C.LATE, C.UNKNOWN})),
        "record_kinds": ProblemFilter(
            categories=frozenset({C.UNMATCHED_CALLBACK, C.SUSPICIOUS_PATTERN})
        ),
        "mixed_kinds": ProblemFilter(
            categories=frozenset({C.EXPIRED, C.DUPLICATE, C.UNAPPLIED_EVENT}),
            include_resolved=True,
        ),
        "code_0": ProblemFilter(result_code="0"),
        "code_1032_resolved": ProblemFilter(result_code="1032", include_resolved=True),
        "phone": ProblemFilter(phone=PHONES[1]),
        "till2": ProblemFilter(till_id="till2", include_resolved=True),
        "period": ProblemFilter(since=at + timedelta(minutes=20), until=at + timedelta(minutes=50)),
        "since": ProblemFilter(since=at + timedelta(minutes=60)),
        "until": ProblemFilter(until=at + timedelta(minutes=40), include_resolved=True),
        "together": ProblemFilter(
            since=at + timedelta(minutes=10),
            categories=frozenset({C.FAILED, C.UNMATCHED_CALLBACK, C.RECEIPT_PENDING}),
            phone=PHONES[2],
            till_id="till1",
            include_resolved=True,
        ),
    }
    chosen.update({f"only_{c.value}": ProblemFilter(categories=frozenset({c})) for c in CATEGORIES})
    return chosen


async def _pages(lists: PaymentLists, filters: ProblemFilter, limit: int) -> list[Any]:
    """Every page under `filters`: its row keys and where the next page starts."""
    pages: list[Any] = []
    cursor = None
    while True:
        page = await lists.problems(filters, cursor, limit=limit)
        cursor = page.next_cursor
        after = None if cursor is None else [cursor.created_at_ms, cursor.rank, cursor.id]
        pages.append({"keys": [row.key for row in page.rows], "next": after})
        if cursor is None:
            return pages


async def problem_pages(folder: Path) -> dict[str, Any]:
    """The pages of every filter in `_filters` at three page sizes, over the seeded data."""
    folder.mkdir()
    keyring = create_keyring(keyring_path(folder))
    clock = ManualClock(START)
    store = await Store.open(database_path(folder), clock=clock, keyring=keyring)
    try:
        await add_shop(store, FIXED_SECRETS)
        async with store.write() as tx:
            await store.tills.enrol(
                tx,
                Enrolment(
                    SHOP,
                    "till2",
                    CLOSED_PORT_URL,
                    Secret("till-key-" + "y" * 24),
                    "k2",
                    Secret("c2VjcmV0LWNhbGxiYWNrLWtleS0yMzQ1Njc4OTBhYmM"),
                ),
            )
        await _fill(store, clock, random.Random(13))
        lists = PaymentLists(store, SHOP)
        return {
            f"{name} limit {limit}": await _pages(lists, filters, limit)
            for name, filters in _filters().items()
            for limit in (7, 50, 1000)
        }
    finally:
        await store.close()


async def test_the_query_gives_the_pages_the_merge_gave(tmp_path: Path) -> None:
    expected = json.loads(PAGES_FILE.read_text(encoding="utf-8"))
    found = await problem_pages(tmp_path / "till")
    assert found.keys() == expected.keys()
    for name, pages in expected.items():
        assert found[name] == pages, name
    # The data holds what the comparison needs: rows of every category, ties and more pages.
    every = found["all_with_resolved limit 1000"][0]["keys"]
    assert len(every) > 250
    assert all(found[f"only_{c.value} limit 1000"][0]["keys"] for c in CATEGORIES)
    assert len(found["all limit 7"]) > 20
