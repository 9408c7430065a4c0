"""The problem-payments list and the history: what is on them, in which order, paging across
attempts and problem records, every filter, and the messages for bad filter text."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartduka_tui.manager import (
    HistoryFilter,
    ManagerInputError,
    PaymentLists,
    ProblemCategory,
    ProblemFilter,
    csv_values,
    history_filter_from_text,
    problem_filter_from_text,
)
from smartduka_tui.manager.audit import audit_filter_from_text
from smartduka_tui.model import AttemptState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from tests.manager.conftest import SHOP, Seeded

C = ProblemCategory


async def keys(seeded: Seeded, filters: ProblemFilter, limit: int = 50) -> list[str]:
    lists = PaymentLists(seeded.store, SHOP)
    found: list[str] = []
    cursor = None
    while True:
        page = await lists.problems(filters, cursor, limit=limit)
        found.extend(row.key for row in page.rows)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def a(seeded: Seeded, name: str) -> str:
    return f"A{seeded.ids[name]}"


def p(seeded: Seeded, name: str) -> str:
    return f"P{seeded.problem_ids[name]}"


async def test_the_list_holds_every_problem_newest_first_and_no_plain_payment(
    seeded: Seeded,
) -> None:
    assert await keys(seeded, ProblemFilter()) == [
        p(seeded, "pattern"),
        p(seeded, "unmatched"),
        a(seeded, "insufficient"),
        a(seeded, "unknown"),
        a(seeded, "late"),
        a(seeded, "review"),
        a(seeded, "expired"),
        a(seeded, "cancelled"),
    ]
    page = await PaymentLists(seeded.store, SHOP).problems(ProblemFilter())
    what = {row.key: (row.category, row.what) for row in page.rows}
    assert what[a(seeded, "late")] == (C.LATE, "Late payment")
    assert what[p(seeded, "unmatched")] == (C.UNMATCHED_CALLBACK, "Unmatched")
    assert what[a(seeded, "review")] == (C.NEEDS_REVIEW, "Needs review")
    row = next(r for r in page.rows if r.key == a(seeded, "cancelled"))
    assert row.summary == "Not paid: Request cancelled by user"
    assert row.phone == "254712000002" and row.phone_masked == "2547******02"


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 8, 9])
async def test_pages_of_any_size_give_the_same_list(seeded: Seeded, limit: int) -> None:
    assert await keys(seeded, ProblemFilter(), limit) == await keys(seeded, ProblemFilter())


async def test_a_page_says_when_there_is_no_more(seeded: Seeded) -> None:
    lists = PaymentLists(seeded.store, SHOP)
    page = await lists.problems(ProblemFilter(), limit=8)
    assert len(page.rows) == 8 and page.next_cursor is None
    page = await lists.problems(ProblemFilter(), limit=7)
    assert page.next_cursor is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failed", ["insufficient", "cancelled"]),
        ("late", ["late"]),
        ("review", ["review"]),
        ("expired, unknown", ["unknown", "expired"]),
        ("unmatched", ["P:unmatched"]),
        ("suspicious_pattern unmatched_callback", ["P:pattern", "P:unmatched"]),
        ("duplicate", []),
    ],
)
async def test_filter_by_kind(seeded: Seeded, text: str, expected: list[str]) -> None:
    wanted = [p(seeded, n[2:]) if n.startswith("P:") else a(seeded, n) for n in expected]
    assert await keys(seeded, problem_filter_from_text(state=text)) == wanted


async def test_filter_by_code_phone_till_and_period(seeded: Seeded) -> None:
    assert await keys(seeded, problem_filter_from_text(code="1032")) == [a(seeded, "cancelled")]
    # A problem record's code counts too: the unmatched callback said 0.
    assert await keys(seeded, problem_filter_from_text(code="0")) == [
        p(seeded, "unmatched"),
        a(seeded, "late"),
        a(seeded, "review"),
    ]
    # Both payments from that phone, and the pattern about it (its phone is masked alike).
    assert await keys(seeded, problem_filter_from_text(phone="0712 000 002")) == [
        p(seeded, "pattern"),
        a(seeded, "insufficient"),
        a(seeded, "cancelled"),
    ]
    assert await keys(seeded, problem_filter_from_text(till="till2")) == []
    assert len(await keys(seeded, problem_filter_from_text(till="till1"))) == 8
    assert await keys(
        seeded, problem_filter_from_text(since="2026-01-15 09:05", until="2026-01-15 09:12")
    ) == [a(seeded, "late"), a(seeded, "review")]
    assert await keys(seeded, problem_filter_from_text(since="2026-01-16")) == []
    assert len(await keys(seeded, problem_filter_from_text(until="2026-01-15"))) == 8


async def test_resolved_ones_leave_the_list_unless_asked_for(signed_in: Seeded) -> None:
    service = signed_in.service
    await service.resolve(a(signed_in, "cancelled"), "customer paid cash")
    await service.resolve(p(signed_in, "unmatched"), "refunded on the portal")
    open_keys = await keys(signed_in, ProblemFilter())
    assert a(signed_in, "cancelled") not in open_keys and p(signed_in, "unmatched") not in open_keys
    every = await keys(signed_in, ProblemFilter(include_resolved=True))
    assert len(every) == 8
    page = await PaymentLists(signed_in.store, SHOP).problems(ProblemFilter(include_resolved=True))
    resolved = {r.key: r.resolution_note for r in page.rows if r.resolved}
    assert resolved == {
        a(signed_in, "cancelled"): "customer paid cash",
        p(signed_in, "unmatched"): "refunded on the portal",
    }


async def test_history_lists_every_payment_with_its_state(seeded: Seeded) -> None:
    lists = PaymentLists(seeded.store, SHOP)
    page = await lists.history(HistoryFilter())
    assert [r.key for r in page.rows][-1] == a(seeded, "paid")
    paid = page.rows[-1]
    assert paid.category is None and paid.what == "Paid" and paid.receipt == "SDK1A2B3C4"
    failed = await lists.history(history_filter_from_text(state="failed"))
    assert [r.key for r in failed.rows] == [a(seeded, "insufficient"), a(seeded, "cancelled")]
    first = await lists.history(HistoryFilter(), limit=3)
    second = await lists.history(HistoryFilter(), first.next_cursor, limit=10)
    assert [r.key for r in first.rows + second.rows] == [r.key for r in page.rows]
    assert second.next_cursor is None


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"since": "15/01/2026"}, "since", "must be a date like 2026-01-15"),
        ({"since": "2026-02-30"}, "since", "'2026-02-30' is not a real date"),
        ({"until": "yesterday"}, "until", "must be a date like 2026-01-15"),
        (
            {"since": "2026-01-16", "until": "2026-01-15"},
            "until",
            "must be after 'since'",
        ),
        ({"state": "lost"}, "state", "'lost' is not a problem kind; use one of: failed"),
        ({"code": "10 32"}, "result_code", "must be an M-Pesa code like 1032"),
        ({"phone": "0812345678"}, "phone", "after 0 it must continue with 7 or 1"),
        ({"phone": "07123"}, "phone", "too short"),
        ({"till": "till 1"}, "till", "must be a till id"),
    ],
)
def test_bad_filter_text_names_the_field_and_why(
    given: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ManagerInputError) as refused:
        problem_filter_from_text(**given)
    assert refused.value.field == field
    assert message in refused.value.message


def test_history_states_are_payment_states() -> None:
    assert history_filter_from_text(state="completed,needs-review").states == frozenset(
        {AttemptState.COMPLETED, AttemptState.NEEDS_REVIEW}
    )
    with pytest.raises(ManagerInputError, match="'late' is not a payment state"):
        history_filter_from_text(state="late")


def test_dates_are_kenya_days_and_until_includes_its_day() -> None:
    chosen = problem_filter_from_text(since="2026-01-15", until="2026-01-15")
    assert chosen.since == datetime(2026, 1, 15, tzinfo=KENYA_TZ)
    assert chosen.until == datetime(2026, 1, 16, tzinfo=KENYA_TZ)
    timed = problem_filter_from_text(since="2026-01-15 14:30")
    assert timed.since == datetime(2026, 1, 15, 14, 30, tzinfo=KENYA_TZ)
    assert chosen.describe() == "2026-01-15 00:00 to 2026-01-16 00:00, open"


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"actor": "owner"}, "actor"),
        ({"action": "DROP TABLE"}, "action"),
        ({"attempt": "P3"}, "attempt"),
        ({"attempt": "twelve"}, "key"),
        ({"since": "soon"}, "since"),
    ],
)
def test_bad_audit_filter_text_is_refused(given: dict[str, str], field: str) -> None:
    with pytest.raises(ManagerInputError) as refused:
        audit_filter_from_text(**given)
    assert refused.value.field == field


@given(st.text(max_size=40))
def test_csv_cells_never_start_a_spreadsheet_formula(note: str) -> None:
    from smartduka_tui.manager.lists import PaymentRow

    row = PaymentRow(
        key="A1",
        created_at=datetime(2026, 1, 15, tzinfo=KENYA_TZ) + timedelta(hours=1),
        category=C.FAILED,
        summary=note,
        resolution_note=note,
        phone="254712000001",
        phone_masked="2547******01",
    )
    cells = csv_values(row)
    assert all(not cell or cell[0] not in "=+-@\t\r" for cell in cells)
    assert "254712000001" not in cells and "2547******01" in cells
    assert "254712000001" in csv_values(row, full_phones=True)
