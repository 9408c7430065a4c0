"""Pull Transactions as the till keeps them: the statement rows pulled (one per receipt per
shop, so pulling the same 48 hours again adds nothing), the last pull per shortcode, and the
findings already reported. Each change is written with its audit entry in the caller's
transaction.

Lists of receipts travel to SQLite as one JSON array (`json_each`), and matching by receipt
is set-based (UPDATE ... FROM through the receipt indexes), so matching ten thousand pulled
rows costs a handful of statements, not ten thousand; only the rows nothing knows by receipt
are read back as Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from smartduka_tui.model import Actor, AttemptFlag, AuditAction
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.records import row_reader, to_ms


class MatchedBy(StrEnum):
    """What on this till knows a pulled payment."""

    ATTEMPT = "attempt"
    C2B = "c2b"


@dataclass(frozen=True, slots=True)
class PulledRow:
    """One statement row as pulled (amount in whole shillings, payer masked by M-Pesa)."""

    transaction_id: str
    shortcode: str
    amount: int
    paid_at: datetime
    payer: str
    bill_ref: str
    transaction_type: str
    matched: MatchedBy | None = None
    sale_ref: str | None = None


@dataclass(frozen=True, slots=True)
class PullStatus:
    """The last pull of one shortcode: when, how it went, and what it found."""

    shop_id: str
    shortcode: str
    registered_at: datetime | None
    last_pull_at: datetime | None
    last_ok_at: datetime | None
    error: str | None
    pages: int
    rows_seen: int
    new_rows: int
    receipts_filled: int
    problems_found: int

    @property
    def ok(self) -> bool:
        return self.last_pull_at is not None and self.error is None


@dataclass(frozen=True, slots=True)
class ReceiptlessAttempt:
    """What matching a pulled row needs of an attempt that has no receipt yet."""

    id: int
    attempt_ref: str
    state: str
    sale_ref: str
    amount: int
    phone: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SaleMoney:
    """The receipts that pay one sale here: its paid attempts' and the C2B rows attached."""

    sale_ref: str
    receipts: frozenset[str]
    flagged_duplicate: bool


_to_row = row_reader(PulledRow)
_to_status = row_reader(PullStatus)
_receiptless = row_reader(ReceiptlessAttempt)


def _ids(values: Iterable[str]) -> str:
    return json.dumps(sorted(set(values)))


class PulledStatement:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    # ------------------------------------------------------------------ pulled rows

    async def known(self, shop_id: str, receipts: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Receipt -> (amount, paid_at in epoch ms) of the rows already pulled among
        `receipts` (tuples: a repeated pull reads ten thousand of them)."""
        rows = await self._db.fetchall(
            "SELECT transaction_id, amount, paid_at FROM pulled_transactions WHERE shop_id = ?"
            " AND transaction_id IN (SELECT value FROM json_each(?))",
            (shop_id, _ids(receipts)),
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def add(
        self, tx: WriteTx, shop_id: str, shortcode: str, rows: Sequence[PulledRow]
    ) -> int:
        """Keep newly pulled rows (a receipt already here is left as it is); how many were
        new. One audit entry says how many and from which shortcode."""
        if not rows:
            return 0
        payload = json.dumps(
            [
                [
                    r.transaction_id,
                    r.shortcode,
                    r.amount,
                    to_ms(r.paid_at),
                    r.payer,
                    r.bill_ref,
                    r.transaction_type,
                ]
                for r in rows
            ]
        )
        inserted = await tx.fetchall(
            "INSERT INTO pulled_transactions (shop_id, transaction_id, shortcode, amount,"
            " paid_at, payer, bill_ref, transaction_type, pulled_at)"
            " SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,"
            " value ->> 5, value ->> 6, ? FROM json_each(?) WHERE true"
            " ON CONFLICT DO NOTHING RETURNING transaction_id",
            (shop_id, tx.now_ms(), payload),
        )
        if inserted:
            await self._audit.append(
                tx,
                actor=Actor.SYSTEM,
                action=AuditAction.PULL_ROWS_ADDED,
                shop_id=shop_id,
                detail={"shortcode": shortcode, "new_rows": len(inserted)},
            )
        return len(inserted)

    async def match_known(self, tx: WriteTx, shop_id: str, since: datetime) -> int:
        """Rows paid since `since` that nothing here knew yet and that an attempt (first) or
        a C2B row of the shop now holds by receipt get `matched` and the sale: two set-based
        UPDATEs through the receipt indexes, however many rows. How many were matched."""
        # MATERIALIZED: the unmatched rows once, then one index probe each.
        matched = 0
        for table, key, kind in (
            ("attempts", "receipt_number", MatchedBy.ATTEMPT),
            ("c2b_payments", "trans_id", MatchedBy.C2B),
        ):
            rows = await tx.fetchall(
                "WITH m(receipt, sale_ref) AS MATERIALIZED"  # noqa: S608 - names are ours
                f" (SELECT k.{key}, k.sale_ref FROM pulled_transactions p JOIN {table} k"
                f" ON k.shop_id = p.shop_id AND k.{key} = p.transaction_id"
                " WHERE p.shop_id = ? AND p.matched IS NULL AND p.paid_at >= ?)"
                " UPDATE pulled_transactions SET matched = ?, sale_ref = m.sale_ref FROM m"
                " WHERE pulled_transactions.shop_id = ?"
                " AND pulled_transactions.transaction_id = m.receipt"
                " AND pulled_transactions.matched IS NULL RETURNING transaction_id",
                (shop_id, to_ms(since), kind.value, shop_id),
            )
            matched += len(rows)
        return matched

    async def unknown(self, shop_id: str, since: datetime) -> list[PulledRow]:
        """Rows paid since `since` that nothing here knows, even by receipt (no attempt holds
        it, no C2B row is it), oldest first: the only rows a pull matches in Python."""
        rows = await self._db.fetchall(
            "SELECT p.* FROM pulled_transactions p WHERE p.shop_id = ? AND p.matched IS NULL"
            " AND p.paid_at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.shop_id = p.shop_id"
            " AND a.receipt_number = p.transaction_id)"
            " AND NOT EXISTS (SELECT 1 FROM c2b_payments c WHERE c.shop_id = p.shop_id"
            " AND c.trans_id = p.transaction_id)"
            " ORDER BY p.paid_at, p.transaction_id",
            (shop_id, to_ms(since)),
        )
        return [_to_row(row) for row in rows]

    async def count(self, shop_id: str) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM pulled_transactions WHERE shop_id = ?", (shop_id,)
        )
        return 0 if row is None else int(row["n"])

    # ------------------------------------------------------------------ matching

    async def attempts_without_receipt(
        self, shop_id: str, since: datetime, until: datetime
    ) -> list[ReceiptlessAttempt]:
        """Attempts created in [since, until] that have no receipt yet, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, attempt_ref, state, sale_ref, amount, phone, created_at, expires_at"
            " FROM attempts"
            " WHERE shop_id = ? AND receipt_number IS NULL AND created_at BETWEEN ? AND ?"
            " ORDER BY id",
            (shop_id, to_ms(since), to_ms(until)),
        )
        return [_receiptless(row) for row in rows]

    async def paid_twice(self, shop_id: str, receipts: Iterable[str]) -> list[SaleMoney]:
        """The sales that `receipts` pay here (an attempt holding one, or a C2B row attached)
        and that two or more receipts pay (paid attempts with a receipt, and C2B rows
        attached), with whether the engine already flagged a duplicate payment: one query,
        so only the few sales paid twice come back to Python."""
        rows = await self._db.fetchall(
            "WITH r(receipt) AS MATERIALIZED (SELECT value FROM json_each(?)),"
            " s(sale_ref) AS MATERIALIZED ("
            " SELECT a.sale_ref FROM r JOIN attempts a"
            " ON a.shop_id = ? AND a.receipt_number = r.receipt"
            " UNION SELECT c.sale_ref FROM r JOIN c2b_payments c"
            " ON c.shop_id = ? AND c.trans_id = r.receipt WHERE c.sale_ref IS NOT NULL),"
            " money(sale_ref, receipt, flags) AS ("
            " SELECT a.sale_ref, a.receipt_number, a.flags FROM s JOIN attempts a"
            " ON a.shop_id = ? AND a.sale_ref = s.sale_ref"
            " WHERE a.state = 'COMPLETED' AND a.receipt_number IS NOT NULL"
            " UNION ALL SELECT c.sale_ref, c.trans_id, 0 FROM s JOIN c2b_payments c"
            " ON c.shop_id = ? AND c.sale_ref = s.sale_ref)"
            " SELECT sale_ref, json_group_array(DISTINCT receipt) AS receipts,"
            " max(flags & ?) AS flagged FROM money GROUP BY sale_ref"
            " HAVING count(DISTINCT receipt) >= 2 ORDER BY sale_ref",
            (
                _ids(receipts),
                shop_id,
                shop_id,
                shop_id,
                shop_id,
                int(AttemptFlag.DUPLICATE_PAYMENT),
            ),
        )
        return [
            SaleMoney(row["sale_ref"], frozenset(json.loads(row["receipts"])), bool(row["flagged"]))
            for row in rows
        ]

    # ------------------------------------------------------------------ findings

    async def reported(self, shop_id: str, findings: Iterable[str]) -> set[str]:
        """Which of `findings` were already recorded as problems."""
        rows = await self._db.fetchall(
            "SELECT finding FROM pull_findings WHERE shop_id = ?"
            " AND finding IN (SELECT value FROM json_each(?))",
            (shop_id, _ids(findings)),
        )
        return {row["finding"] for row in rows}

    async def add_findings(
        self, tx: WriteTx, shop_id: str, findings: Sequence[tuple[str, int]]
    ) -> None:
        """Note (finding, problem id) pairs as reported, in one statement."""
        if not findings:
            return
        await tx.execute(
            "INSERT INTO pull_findings (shop_id, finding, problem_id)"
            " SELECT ?, value ->> 0, value ->> 1 FROM json_each(?)",
            (shop_id, json.dumps([list(pair) for pair in findings])),
        )

    # ------------------------------------------------------------------ last-pull status

    async def statuses(self, shop_id: str) -> list[PullStatus]:
        rows = await self._db.fetchall(
            "SELECT * FROM pull_status WHERE shop_id = ? ORDER BY shortcode", (shop_id,)
        )
        return [_to_status(row) for row in rows]

    async def status(self, shop_id: str, shortcode: str) -> PullStatus | None:
        row = await self._db.fetchone(
            "SELECT * FROM pull_status WHERE shop_id = ? AND shortcode = ?", (shop_id, shortcode)
        )
        return None if row is None else _to_status(row)

    async def mark_registered(self, tx: WriteTx, shop_id: str, shortcode: str) -> None:
        await tx.execute(
            "INSERT INTO pull_status (shop_id, shortcode, registered_at) VALUES (?, ?, ?)"
            " ON CONFLICT (shop_id, shortcode) DO UPDATE"
            " SET registered_at = excluded.registered_at",
            (shop_id, shortcode, tx.now_ms()),
        )
        await self._audit.append(
            tx,
            actor=Actor.SYSTEM,
            action=AuditAction.PULL_REGISTERED,
            shop_id=shop_id,
            detail={"shortcode": shortcode},
        )

    async def record_pull(
        self,
        tx: WriteTx,
        shop_id: str,
        shortcode: str,
        *,
        error: str | None,
        pages: int = 0,
        rows_seen: int = 0,
        new_rows: int = 0,
        receipts_filled: int = 0,
        problems_found: int = 0,
    ) -> None:
        """The outcome of one pull: figures when it went through, the reason when not (the
        figures of the last good pull are then kept)."""
        now = tx.now_ms()
        figures = {
            "pages": pages,
            "rows_seen": rows_seen,
            "new_rows": new_rows,
            "receipts_filled": receipts_filled,
            "problems_found": problems_found,
        }
        if error is None:
            await tx.execute(
                "INSERT INTO pull_status (shop_id, shortcode, last_pull_at, last_ok_at, error,"
                " pages, rows_seen, new_rows, receipts_filled, problems_found)"
                " VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)"
                " ON CONFLICT (shop_id, shortcode) DO UPDATE SET"
                " last_pull_at = excluded.last_pull_at, last_ok_at = excluded.last_ok_at,"
                " error = NULL, pages = excluded.pages, rows_seen = excluded.rows_seen,"
                " new_rows = excluded.new_rows, receipts_filled = excluded.receipts_filled,"
                " problems_found = excluded.problems_found",
                (shop_id, shortcode, now, now, *figures.values()),
            )
        else:
            await tx.execute(
                "INSERT INTO pull_status (shop_id, shortcode, last_pull_at, error)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (shop_id, shortcode) DO UPDATE SET"
                " last_pull_at = excluded.last_pull_at, error = excluded.error",
                (shop_id, shortcode, now, error),
            )
        await self._audit.append(
            tx,
            actor=Actor.SYSTEM,
            action=AuditAction.PULL_DONE if error is None else AuditAction.PULL_FAILED,
            shop_id=shop_id,
            detail={"shortcode": shortcode, **(figures if error is None else {"error": error})},
        )

    # ------------------------------------------------------------------ the shop's index

    async def held_here(self, shop_id: str, receipts: Iterable[str]) -> list[tuple[str, str]]:
        """(receipt, sale_ref) for each of `receipts` an attempt here holds: what a pull tells
        the shop's receipt index this till holds. One query through the receipt index."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT receipt_number, sale_ref FROM attempts WHERE shop_id = ?"
            " AND receipt_number IN (SELECT value FROM json_each(?))"
            " ORDER BY receipt_number",
            (shop_id, _ids(receipts)),
        )
        return [(row["receipt_number"], row["sale_ref"]) for row in rows]
