"""Transaction Status and Reversal requests, and their asynchronous results.

A request's row is written (with its audit entry) before it goes to M-Pesa, keyed by the
random `request_ref` its signed result paths carry. Its result lands once: `record_result`
moves `sent` to `answered` (or `timed_out` for a queue timeout notice) in one transaction with
its audit entry, so a re-delivered or replayed result changes nothing. Every query is by shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.records import row_reader


class RequestKind(StrEnum):
    TRANSACTION_STATUS = "transaction_status"
    REVERSAL = "reversal"


# The audit action of a request of each kind written and sent.
_SENT_ACTION: dict[RequestKind, AuditAction] = {
    RequestKind.TRANSACTION_STATUS: AuditAction.STATEMENT_TRANSACTION_STATUS_SENT,
    RequestKind.REVERSAL: AuditAction.STATEMENT_REVERSAL_SENT,
}


class RequestState(StrEnum):
    SENT = "sent"
    """Written and sent (or being sent): waiting for the result."""
    REFUSED = "refused"
    """M-Pesa refused the request itself: no result will come."""
    ANSWERED = "answered"
    """The result arrived at the ResultURL."""
    TIMED_OUT = "timed_out"
    """M-Pesa's queue gave up: the notice arrived at the QueueTimeOutURL."""


@dataclass(frozen=True, slots=True)
class StatementRequest:
    id: int
    shop_id: str
    till_id: str
    request_ref: str
    kind: RequestKind
    receipt: str
    sale_ref: str | None
    attempt_id: int | None
    amount: int | None
    state: RequestState
    result_code: str | None
    result_body: str | None
    created_at: datetime
    updated_at: datetime


_row = row_reader(StatementRequest)


class StatementRequests:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def create(
        self,
        tx: WriteTx,
        *,
        shop_id: str,
        till_id: str,
        request_ref: str,
        kind: RequestKind,
        receipt: str,
        sale_ref: str | None,
        attempt_id: int | None,
        amount: int | None,
        actor: Actor,
        note: str | None = None,
    ) -> StatementRequest:
        """The request's row and its audit entry (with the manager's `note` for a reversal)."""
        now = tx.now_ms()
        row = await tx.fetchone(
            "INSERT INTO statement_requests (shop_id, till_id, request_ref, kind, receipt, "
            "sale_ref, attempt_id, amount, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sent', ?, ?) RETURNING *",
            (
                shop_id,
                till_id,
                request_ref,
                kind.value,
                receipt,
                sale_ref,
                attempt_id,
                amount,
                now,
                now,
            ),
        )
        assert row is not None
        created = _row(row)
        await self._audit.append(
            tx,
            actor=actor,
            action=_SENT_ACTION[kind],
            shop_id=shop_id,
            attempt_id=attempt_id,
            detail={"request": created.id, "receipt": receipt, "sale_ref": sale_ref}
            | ({} if note is None else {"note": note, "amount": amount}),
        )
        return created

    async def waiting_reversal(self, shop_id: str, receipt: str) -> StatementRequest | None:
        """A reversal of `receipt` sent and not answered yet (a second must wait for it)."""
        row = await self._db.fetchone(
            "SELECT * FROM statement_requests WHERE shop_id = ? AND receipt = ? "
            "AND kind = 'reversal' AND state = 'sent' ORDER BY id DESC LIMIT 1",
            (shop_id, receipt),
        )
        return None if row is None else _row(row)

    async def get(
        self, shop_id: str, request_ref: str, *, tx: Reader | None = None
    ) -> StatementRequest | None:
        row = await (tx or self._db).fetchone(
            "SELECT * FROM statement_requests WHERE shop_id = ? AND request_ref = ?",
            (shop_id, request_ref),
        )
        return None if row is None else _row(row)

    async def refused(self, tx: WriteTx, shop_id: str, request_ref: str, why: str) -> None:
        """M-Pesa refused the request when it was sent (no result will come)."""
        row = await tx.fetchone(
            "UPDATE statement_requests SET state = 'refused', result_body = ?, updated_at = ? "
            "WHERE shop_id = ? AND request_ref = ? AND state = 'sent' RETURNING id, attempt_id",
            (why, tx.now_ms(), shop_id, request_ref),
        )
        if row is not None:
            await self._audit.append(
                tx,
                actor=Actor.SYSTEM,
                action=AuditAction.STATEMENT_REQUEST_REFUSED,
                shop_id=shop_id,
                attempt_id=row["attempt_id"],
                detail={"request": row["id"], "why": why},
            )

    async def record_result(
        self,
        tx: WriteTx,
        shop_id: str,
        request_ref: str,
        *,
        timed_out: bool,
        result_code: str,
        body: str,
    ) -> StatementRequest | None:
        """Land a result once: the updated request, or None when it is unknown or already
        has one (a repeat, a replay, or a result after a refusal) and nothing changed."""
        state = RequestState.TIMED_OUT if timed_out else RequestState.ANSWERED
        row = await tx.fetchone(
            "UPDATE statement_requests SET state = ?, result_code = ?, result_body = ?, "
            "updated_at = ? WHERE shop_id = ? AND request_ref = ? AND state = 'sent' "
            "RETURNING *",
            (state.value, result_code, body, tx.now_ms(), shop_id, request_ref),
        )
        if row is None:
            return None
        landed = _row(row)
        await self._audit.append(
            tx,
            actor=Actor.SYSTEM,
            action=AuditAction.STATEMENT_RESULT,
            shop_id=shop_id,
            attempt_id=landed.attempt_id,
            detail={"request": landed.id, "state": state.value, "result_code": result_code},
        )
        return landed
