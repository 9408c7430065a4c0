"""The problem-payments list and the history: filters, rows, pages, CSV cells."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from smartduka_tui.manager.errors import ManagerInputError
from smartduka_tui.manager.words import STATE_WORDS, as_int, kenya_time, shillings
from smartduka_tui.model import AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.phone import PhoneNumberError, mask_phone, normalise_phone
from smartduka_tui.payments.codes import advise
from smartduka_tui.store.c2b import C2BRecord
from smartduka_tui.store.problems import ATTEMPT_RANK, RECORD_RANK, ProblemListFilter
from smartduka_tui.store.records import (
    Attempt,
    AttemptFilter,
    PageCursor,
    Problem,
    StateOrFlags,
    to_ms,
)
from smartduka_tui.store.store import Store

PAGE_SIZE = 50


class ProblemCategory(StrEnum):
    """Why an item is on the problem-payments list."""

    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    NEEDS_REVIEW = "needs_review"
    LATE = "late"
    DUPLICATE = "duplicate"
    RECEIPT_PENDING = "receipt_pending"
    SUSPICIOUS = "suspicious"
    UNMATCHED_CALLBACK = "unmatched_callback"
    UNAPPLIED_EVENT = "unapplied_event"
    SUSPICIOUS_PATTERN = "suspicious_pattern"
    ABANDONED_SALE = "abandoned_sale"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]


CATEGORY_LABELS: dict[ProblemCategory, str] = {
    ProblemCategory.FAILED: "Failed",
    ProblemCategory.EXPIRED: "Expired",
    ProblemCategory.UNKNOWN: "Outcome unknown",
    ProblemCategory.NEEDS_REVIEW: "Needs review",
    ProblemCategory.LATE: "Late payment",
    ProblemCategory.DUPLICATE: "Paid twice",
    ProblemCategory.RECEIPT_PENDING: "Receipt pending",
    ProblemCategory.SUSPICIOUS: "Suspicious",
    ProblemCategory.UNMATCHED_CALLBACK: "Unmatched",
    ProblemCategory.UNAPPLIED_EVENT: "Unreadable",
    ProblemCategory.SUSPICIOUS_PATTERN: "Pattern",
    ProblemCategory.ABANDONED_SALE: "Part paid",
}
_STATE_CATEGORY = {
    AttemptState.FAILED: ProblemCategory.FAILED,
    AttemptState.EXPIRED: ProblemCategory.EXPIRED,
    AttemptState.UNKNOWN: ProblemCategory.UNKNOWN,
    AttemptState.NEEDS_REVIEW: ProblemCategory.NEEDS_REVIEW,
}
# Highest first: the flag that says most about what to do.
_FLAG_CATEGORY = (
    (AttemptFlag.DUPLICATE_PAYMENT, ProblemCategory.DUPLICATE),
    (AttemptFlag.LATE, ProblemCategory.LATE),
    (AttemptFlag.SUSPICIOUS, ProblemCategory.SUSPICIOUS),
    (AttemptFlag.RECEIPT_PENDING, ProblemCategory.RECEIPT_PENDING),
)
_RECORD_CATEGORY = {
    ProblemKind.UNMATCHED_CALLBACK: ProblemCategory.UNMATCHED_CALLBACK,
    ProblemKind.UNAPPLIED_EVENT: ProblemCategory.UNAPPLIED_EVENT,
    ProblemKind.SUSPICIOUS_PATTERN: ProblemCategory.SUSPICIOUS_PATTERN,
    ProblemKind.ABANDONED_SALE: ProblemCategory.ABANDONED_SALE,
}
_RECORD_CATEGORIES = frozenset(_RECORD_CATEGORY.values())
_ATTEMPT_CATEGORIES = frozenset(ProblemCategory) - _RECORD_CATEGORIES
_CATEGORY_ALIASES = {
    "review": ProblemCategory.NEEDS_REVIEW,
    "duplicate_payment": ProblemCategory.DUPLICATE,
    "unmatched": ProblemCategory.UNMATCHED_CALLBACK,
    "unapplied": ProblemCategory.UNAPPLIED_EVENT,
    "pattern": ProblemCategory.SUSPICIOUS_PATTERN,
    "abandoned": ProblemCategory.ABANDONED_SALE,
}


def _primary(attempt: Attempt) -> ProblemCategory | None:
    for flag, category in _FLAG_CATEGORY:
        if attempt.flags & flag:
            return category
    return _STATE_CATEGORY.get(attempt.state)


@dataclass(frozen=True, slots=True)
class ListCursor:
    """Where the next page starts: just after the item at (created_at, rank, id), newest
    first. Attempts rank above problem records written in the same millisecond."""

    created_at_ms: int
    rank: int
    id: int

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (self.created_at_ms, self.rank, self.id)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One line of the problem list or of the history. `key` is `A<id>` for an attempt and
    `P<id>` for a problem record. `phone` is the full number (for the signed-in manager);
    lists and exports show `phone_masked`."""

    key: str
    created_at: datetime
    category: ProblemCategory | None
    summary: str
    state: AttemptState | None = None
    till_id: str | None = None
    sale_ref: str | None = None
    amount: int | None = None
    phone: str | None = None
    phone_masked: str | None = None
    result_code: str | None = None
    receipt: str | None = None
    resolved: bool = False
    resolution_note: str | None = None
    reversed: bool = False
    """M-Pesa gave this payment's money back (its reversal result said code 0)."""
    paid_twice: bool = False
    """A problem record saying two receipts pay this sale (V reverses the second)."""
    cursor: ListCursor = field(default=ListCursor(0, 0, 0), repr=False)

    @property
    def what(self) -> str:
        """The short label: the category, or the state for a payment with no problem."""
        if self.category is not None:
            return self.category.label
        return STATE_WORDS[self.state].capitalize() if self.state else ""


@dataclass(frozen=True, slots=True)
class RowPage:
    rows: tuple[PaymentRow, ...]
    next_cursor: ListCursor | None


@dataclass(frozen=True, slots=True)
class _ListFilter:
    """The filters the problem list and the history share; each narrows."""

    since: datetime | None = None
    until: datetime | None = None
    result_code: str | None = None
    phone: str | None = None
    till_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProblemFilter(_ListFilter):
    """The problem list's filters. `categories` None means every category."""

    categories: frozenset[ProblemCategory] | None = None
    include_resolved: bool = False

    def describe(self) -> str:
        """The filter in a few words, for a screen's title line and the export's audit."""
        parts: list[str] = []
        if self.categories:
            parts.append("/".join(sorted(c.label.lower() for c in self.categories)))
        if self.since or self.until:
            start = kenya_time(self.since)[:16] if self.since else "…"
            end = kenya_time(self.until)[:16] if self.until else "…"
            parts.append(f"{start} to {end}")
        if self.result_code:
            parts.append(f"code {self.result_code}")
        if self.phone:
            parts.append(mask_phone(self.phone))
        if self.till_id:
            parts.append(f"till {self.till_id}")
        parts.append("with resolved" if self.include_resolved else "open")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class HistoryFilter(_ListFilter):
    """The history's filters (states are attempt states here)."""

    states: frozenset[AttemptState] | None = None

    def store_filter(self) -> AttemptFilter:
        return AttemptFilter(
            since=self.since,
            until=self.until,
            states=self.states,
            result_codes=None if self.result_code is None else frozenset({self.result_code}),
            phone=self.phone,
            till_id=self.till_id,
            include_resolved=True,
        )


# ---- parsing what a person typed (shared by the screens and the CLI) -------------------------


def parse_moment(text: str, field_name: str, *, end_of_day: bool = False) -> datetime | None:
    """'' -> None; `YYYY-MM-DD` (start of that day, or the next day's start with
    `end_of_day`, Kenya time) or `YYYY-MM-DD HH:MM` (Kenya time) or an ISO time with offset."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ManagerInputError(field_name, f"{text!r} is not a real date") from None
        start = datetime.combine(day, time.min, tzinfo=KENYA_TZ)
        return start + timedelta(days=1) if end_of_day else start
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ManagerInputError(
            field_name, "must be a date like 2026-01-15, or a time like 2026-01-15 14:30"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=KENYA_TZ)


def parse_period(since: str, until: str) -> tuple[datetime | None, datetime | None]:
    """The period from two typed dates: `until` as a date includes that whole day."""
    start = parse_moment(since, "since")
    end = parse_moment(until, "until", end_of_day=True)
    if start is not None and end is not None and end <= start:
        raise ManagerInputError("until", "must be after 'since'")
    return start, end


def parse_phone_filter(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    try:
        return normalise_phone(text)
    except PhoneNumberError as error:
        raise ManagerInputError("phone", str(error)) from None


def parse_code(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,32}", text):
        raise ManagerInputError(
            "result_code", "must be an M-Pesa code like 1032 or 500.001.1001 (letters, digits, .)"
        )
    return text.upper() if re.search(r"[a-z]", text) else text


def parse_till(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ManagerInputError("till", "must be a till id: letters, digits, '-' or '_'")
    return text


def split_words(text: str | Iterable[str]) -> list[str]:
    items = [text] if isinstance(text, str) else list(text)
    return [w for item in items for w in re.split(r"[\s,]+", item.strip()) if w]


def parse_categories(text: str | Iterable[str]) -> frozenset[ProblemCategory] | None:
    return frozenset(map(_category, split_words(text))) or None


def _category(word: str) -> ProblemCategory:
    key = word.lower().replace("-", "_")
    if key in _CATEGORY_ALIASES:
        return _CATEGORY_ALIASES[key]
    try:
        return ProblemCategory(key)
    except ValueError:
        names = ", ".join(c.value for c in ProblemCategory)
        raise ManagerInputError(
            "state", f"{word!r} is not a problem kind; use one of: {names}"
        ) from None


def parse_states(text: str | Iterable[str]) -> frozenset[AttemptState] | None:
    return frozenset(map(_state, split_words(text))) or None


def _state(word: str) -> AttemptState:
    try:
        return AttemptState(word.upper().replace("-", "_"))
    except ValueError:
        names = ", ".join(s.value.lower() for s in AttemptState)
        raise ManagerInputError(
            "state", f"{word!r} is not a payment state; use one of: {names}"
        ) from None


def problem_filter_from_text(
    *,
    since: str = "",
    until: str = "",
    state: str | Iterable[str] = "",
    code: str = "",
    phone: str = "",
    till: str = "",
    include_resolved: bool = False,
) -> ProblemFilter:
    """A ProblemFilter from typed text, or ManagerInputError naming the first bad field."""
    start, end = parse_period(since, until)
    return ProblemFilter(
        since=start,
        until=end,
        categories=parse_categories(state),
        result_code=parse_code(code),
        phone=parse_phone_filter(phone),
        till_id=parse_till(till),
        include_resolved=include_resolved,
    )


def history_filter_from_text(
    *,
    since: str = "",
    until: str = "",
    state: str | Iterable[str] = "",
    code: str = "",
    phone: str = "",
    till: str = "",
) -> HistoryFilter:
    start, end = parse_period(since, until)
    return HistoryFilter(
        since=start,
        until=end,
        states=parse_states(state),
        result_code=parse_code(code),
        phone=parse_phone_filter(phone),
        till_id=parse_till(till),
    )


# ---- rows -----------------------------------------------------------------------------------


def _attempt_summary(attempt: Attempt, category: ProblemCategory | None) -> str:
    receipt = f" (receipt {attempt.receipt_number})" if attempt.receipt_number else ""
    if AttemptFlag.REVERSED in attempt.flags:
        # First: what a duplicate or late payment came to once M-Pesa gave the money back.
        return f"Reversed: paid{receipt}, then given back to the customer"
    if category is ProblemCategory.DUPLICATE:
        return f"Paid although the sale was already paid: refund one payment{receipt}"
    if category is ProblemCategory.LATE:
        return f"Paid after the till had given up{receipt}"
    if category is ProblemCategory.SUSPICIOUS:
        return f"Paid, but a later callback disagreed{receipt}"
    if category is ProblemCategory.RECEIPT_PENDING:
        return "Paid per M-Pesa's query; the receipt number has not arrived"
    if category is ProblemCategory.EXPIRED:
        return "No result from M-Pesa before it expired"
    if category is ProblemCategory.UNKNOWN:
        return "M-Pesa's answer never arrived; SmartDuka keeps checking"
    if category is ProblemCategory.NEEDS_REVIEW:
        return attempt.review_note or "The evidence disagrees: open it to see why"
    if category is ProblemCategory.FAILED:
        info = advise(attempt.result_code, attempt.result_desc)
        said = info.description or attempt.result_desc or "refused"
        return f"Not paid: {said}"
    if attempt.state is AttemptState.COMPLETED:
        return f"Paid{receipt}"
    return STATE_WORDS[attempt.state].capitalize()


def attempt_row(attempt: Attempt) -> PaymentRow:
    category = _primary(attempt)
    return PaymentRow(
        key=f"A{attempt.id}",
        created_at=attempt.created_at,
        category=category,
        summary=_attempt_summary(attempt, category),
        state=attempt.state,
        till_id=attempt.till_id,
        sale_ref=attempt.sale_ref,
        amount=attempt.amount,
        phone=attempt.phone,
        phone_masked=mask_phone(attempt.phone),
        result_code=attempt.result_code,
        receipt=attempt.receipt_number,
        resolved=bool(attempt.flags & AttemptFlag.RESOLVED_BY_MANAGER),
        resolution_note=attempt.review_note
        if attempt.flags & AttemptFlag.RESOLVED_BY_MANAGER
        else None,
        reversed=AttemptFlag.REVERSED in attempt.flags,
        cursor=ListCursor(to_ms(attempt.created_at), ATTEMPT_RANK, attempt.id),
    )


def _record_summary(problem: Problem) -> str:
    detail = problem.detail
    if problem.kind is ProblemKind.UNMATCHED_CALLBACK:
        code = detail.get("result_code")
        money = "money may have moved" if code == "0" else "no money moved"
        amount = as_int(detail.get("amount"))
        bits = [f"code {code}"] + ([shillings(amount)] if amount is not None else [])
        if detail.get("receipt"):
            bits.append(f"receipt {detail['receipt']}")
        return f"A signed callback matched no payment ({', '.join(bits)}): {money}"
    if problem.kind is ProblemKind.UNAPPLIED_EVENT:
        return f"A callback could not be read: {detail.get('reason', 'unknown reason')}"
    if problem.kind is ProblemKind.ABANDONED_SALE:
        return abandoned_sale_words(detail)
    pattern = detail.get("pattern")
    window = as_int(detail.get("window_s"))
    minutes = f"{window // 60} minutes" if window else "a short time"
    if pattern == "failures_for_phone":
        return f"{detail.get('failures')} failed payments for {detail.get('phone')} in {minutes}"
    if pattern == "failures_for_shop":
        return f"{detail.get('failures')} failed payments in this shop in {minutes}"
    if pattern == "duplicate_payment":
        return f"Sale {detail.get('sale_ref')} was paid twice: refund one payment"
    if pattern == "money_without_sale":
        amount = as_int(detail.get("amount"))
        return (
            f"Money without a sale: {shillings(amount)} ({detail.get('receipt')}) is on the "
            "M-Pesa statement, but no sale here knows it"
        )
    if pattern == "money_not_taken":
        receipt = f" ({detail['receipt']})" if detail.get("receipt") else ""
        return (
            f"Sale {detail.get('sale_ref')} took no late {shillings(as_int(detail.get('amount')))}"
            f" M-Pesa payment{receipt}: {detail.get('why')}. Give it back by reversal, or settle "
            "with the customer"
        )
    if pattern == "paid_twice":
        receipts = ", ".join(str(r) for r in detail.get("receipts", []))
        return f"Sale {detail.get('sale_ref')} was paid twice ({receipts}): refund one payment"
    return f"Suspicious pattern: {pattern}"


def abandoned_sale_words(detail: Mapping[str, Any]) -> str:
    """A sale left part paid, in plain words: what was paid, by what, and what is owed."""
    given = detail.get("tenders")
    paid: list[Any] = given if isinstance(given, list) else []
    parts = []
    for tender in paid:
        if not isinstance(tender, dict):
            continue
        how = _TENDER_WORDS.get(str(tender.get("kind")), "paid")
        words = f"{shillings(as_int(tender.get('amount')))} {how}"
        if tender.get("receipt"):
            words += f" ({tender['receipt']})"
        parts.append(words)
    how = " and ".join(parts) or "part"
    return (
        f"Sale {detail.get('sale_ref')} was left part paid: {how} taken of "
        f"{shillings(as_int(detail.get('total')))}, {shillings(as_int(detail.get('owed')))} "
        "still owed (finish it, or give the money back)"
    )


_TENDER_WORDS = {"CASH": "in cash", "MPESA_STK": "by M-Pesa", "MPESA_C2B": "by direct M-Pesa"}


def record_row(problem: Problem) -> PaymentRow:
    detail = problem.detail
    phone = detail.get("phone")
    return PaymentRow(
        key=f"P{problem.id}",
        created_at=problem.created_at,
        category=_RECORD_CATEGORY[problem.kind],
        summary=_record_summary(problem),
        till_id=problem.till_id,
        sale_ref=detail.get("sale_ref") if isinstance(detail.get("sale_ref"), str) else None,
        amount=as_int(detail.get("amount")),
        # Problem records only ever hold masked phones.
        phone_masked=phone if isinstance(phone, str) else None,
        result_code=detail.get("result_code")
        if isinstance(detail.get("result_code"), str)
        else None,
        receipt=detail.get("receipt") if isinstance(detail.get("receipt"), str) else None,
        resolved=problem.resolved_at is not None,
        resolution_note=problem.resolution_note,
        paid_twice=detail.get("pattern") == "paid_twice",
        cursor=ListCursor(to_ms(problem.created_at), RECORD_RANK, problem.id),
    )


def _store_filter(filters: ProblemFilter) -> ProblemListFilter:
    """The store's filter for `filters`: categories become the attempts' states and flags
    and the records' kinds."""
    every = ProblemListFilter(
        since=filters.since,
        until=filters.until,
        result_code=filters.result_code,
        phone=filters.phone,
        masked_phone=None if filters.phone is None else mask_phone(filters.phone),
        till_id=filters.till_id,
        include_resolved=filters.include_resolved,
    )
    wanted = filters.categories
    if wanted is None:
        return every
    attempts = None
    if wanted & _ATTEMPT_CATEGORIES:
        attempts = StateOrFlags(
            states=frozenset(s for s, c in _STATE_CATEGORY.items() if c in wanted),
            flags=AttemptFlag(sum(f for f, c in _FLAG_CATEGORY if c in wanted)),
        )
    kinds = frozenset(k for k, c in _RECORD_CATEGORY.items() if c in wanted)
    return replace(every, attempts=attempts, kinds=kinds)


def parse_key(key: str) -> tuple[str, int]:
    """('A', id) or ('P', id) from `A12` / `P3`; ManagerInputError otherwise."""
    text = key.strip().upper() if isinstance(key, str) else ""
    match = re.fullmatch(r"([AP])(\d{1,18})", text)
    if match is None:
        raise ManagerInputError(
            "key", "must be a payment like A12 or a problem like P3, as the list shows it"
        )
    return match.group(1), int(match.group(2))


CSV_COLUMNS = (
    "key",
    "when_kenya_time",
    "problem",
    "state",
    "result_code",
    "summary",
    "till",
    "sale",
    "amount_kes",
    "phone",
    "receipt",
    "resolved",
    "note",
    "reversed",
)


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with one of these is a formula in a spreadsheet: neutralise it.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_values(row: PaymentRow, *, full_phones: bool = False) -> list[str]:
    phone = row.phone if full_phones and row.phone else row.phone_masked
    values: list[object] = [
        row.key,
        kenya_time(row.created_at),
        row.what,
        row.state.value if row.state else "",
        row.result_code,
        row.summary,
        row.till_id,
        row.sale_ref,
        row.amount,
        phone,
        row.receipt,
        "yes" if row.resolved else "no",
        row.resolution_note,
        "yes" if row.reversed else "no",
    ]
    return [_csv_cell(value) for value in values]


def row_json(row: PaymentRow, *, full_phones: bool = False) -> dict[str, Any]:
    return {
        "key": row.key,
        "created_at": row.created_at.isoformat(),
        "problem": row.category.value if row.category else None,
        "what": row.what,
        "state": row.state.value if row.state else None,
        "result_code": row.result_code,
        "summary": row.summary,
        "till_id": row.till_id,
        "sale_ref": row.sale_ref,
        "amount": row.amount,
        "phone": row.phone if full_phones and row.phone else row.phone_masked,
        "receipt": row.receipt,
        "resolved": row.resolved,
        "note": row.resolution_note,
        "reversed": row.reversed,
    }


class PaymentLists:
    """Read-only lists over one shop's attempts and problem records, newest first."""

    def __init__(self, store: Store, shop_id: str) -> None:
        self.store = store
        self.shop_id = shop_id

    async def problems(
        self, filters: ProblemFilter, cursor: ListCursor | None = None, limit: int = PAGE_SIZE
    ) -> RowPage:
        """One page of the problem-payments list: problem attempts and problem records,
        newest first (one query in the store)."""
        if not 1 <= limit <= 1000:
            raise ManagerInputError("limit", "must be between 1 and 1000")
        page = await self.store.problems.problem_list(
            self.shop_id,
            _store_filter(filters),
            after=None if cursor is None else cursor.sort_key,
            limit=limit,
        )
        rows = tuple(
            attempt_row(item) if isinstance(item, Attempt) else record_row(item)
            for item in page.items
        )
        return RowPage(rows, rows[-1].cursor if page.more and rows else None)

    async def history(
        self, filters: HistoryFilter, cursor: ListCursor | None = None, limit: int = PAGE_SIZE
    ) -> RowPage:
        """One page of every attempt (paid or not), newest first."""
        if not 1 <= limit <= 1000:
            raise ManagerInputError("limit", "must be between 1 and 1000")
        page = await self.store.attempts.history(
            self.shop_id,
            filters.store_filter(),
            limit=limit,
            cursor=None if cursor is None else PageCursor(cursor.created_at_ms, cursor.id),
        )
        rows = tuple(attempt_row(a) for a in page.items)
        return RowPage(rows, rows[-1].cursor if page.next_cursor is not None and rows else None)

    async def direct_payments(
        self, *, unattached_only: bool = False, limit: int = 50
    ) -> list[C2BRecord]:
        """The shop's direct payments (C2B), newest first; `unattached_only`: those a sale may
        still take (no sale holds them, M-Pesa has not reversed them)."""
        return await self.store.c2b.recent(
            self.shop_id, unattached_only=unattached_only, limit=limit
        )

    def all_problems(self, filters: ProblemFilter) -> AsyncGenerator[PaymentRow, None]:
        """Every row of the problem list under `filters` (for exports), page by page."""
        return _every_row(lambda cursor: self.problems(filters, cursor, limit=500))

    def all_history(self, filters: HistoryFilter) -> AsyncGenerator[PaymentRow, None]:
        return _every_row(lambda cursor: self.history(filters, cursor, limit=500))


async def _every_row(
    page_after: Callable[[ListCursor | None], Awaitable[RowPage]],
) -> AsyncGenerator[PaymentRow, None]:
    cursor: ListCursor | None = None
    while True:
        page = await page_after(cursor)
        for row in page.rows:
            yield row
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
