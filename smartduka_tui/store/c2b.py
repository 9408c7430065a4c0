"""C2B payments as the till keeps them: one row per receipt (TransID) per shop, and the sale it
is attached to. Each change is written with its audit entry in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.mpesa.statement import C2BPayment
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.errors import InputError, NotFoundError
from smartduka_tui.store.records import row_reader, to_ms


class C2BAttachError(InputError):
    """The payment cannot be attached to that sale; nothing was changed."""


@dataclass(frozen=True, slots=True)
class C2BRecord:
    shop_id: str
    trans_id: str
    shortcode: str
    amount: int
    paid_at: datetime
    payer: str
    first_name: str
    bill_ref: str
    received_at: datetime
    body_sha256: str
    sale_ref: str | None
    attached_till: str | None
    attached_at: datetime | None
    reversed_at: datetime | None = None
    """When M-Pesa's Reversal result (code 0) said the money went back to the customer."""

    @property
    def attached(self) -> bool:
        return self.sale_ref is not None

    @property
    def reversed(self) -> bool:
        return self.reversed_at is not None


_to_record = row_reader(C2BRecord)


class C2BPayments:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def record(
        self, tx: WriteTx, shop_id: str, payment: C2BPayment, body_sha256: str
    ) -> tuple[C2BRecord, bool]:
        """Keep a confirmation; (the row, True) when it is new, (the row kept, False) when
        that receipt was already here (a re-delivery: nothing changes)."""
        inserted = await tx.fetchall(
            "INSERT INTO c2b_payments (shop_id, trans_id, shortcode, amount, paid_at, payer,"
            " first_name, bill_ref, received_at, body_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?) ON CONFLICT DO NOTHING RETURNING trans_id",
            (
                shop_id,
                payment.trans_id,
                payment.shortcode,
                payment.amount,
                to_ms(payment.paid_at),
                payment.payer.shown,
                payment.first_name,
                payment.bill_ref_number,
                tx.now_ms(),
                body_sha256,
            ),
        )
        if inserted:
            await self._audit.append(
                tx,
                actor=Actor.CALLBACK,
                action=AuditAction.C2B_RECEIVED,
                shop_id=shop_id,
                detail={"trans_id": payment.trans_id, "amount": payment.amount},
            )
        record = await self.get(shop_id, payment.trans_id, tx=tx)
        if record is None:
            raise RuntimeError("the C2B payment just written is not there")
        return record, bool(inserted)

    async def get(
        self, shop_id: str, trans_id: str, *, tx: WriteTx | None = None
    ) -> C2BRecord | None:
        row = await (tx or self._db).fetchone(
            "SELECT * FROM c2b_payments WHERE shop_id = ? AND trans_id = ?", (shop_id, trans_id)
        )
        return None if row is None else _to_record(row)

    async def holds_sale(self, shop_id: str, till_id: str, sale_ref: str) -> bool:
        """Whether a direct payment attached at `till_id` pays `sale_ref`."""
        row = await self._db.fetchone(
            "SELECT 1 FROM c2b_payments WHERE shop_id = ? AND attached_till = ? AND sale_ref = ?"
            " LIMIT 1",
            (shop_id, till_id, sale_ref),
        )
        return row is not None

    async def recent(
        self, shop_id: str, *, unattached_only: bool = False, limit: int = 50
    ) -> list[C2BRecord]:
        """A shop's C2B payments, newest first (`unattached_only`: those no sale holds and
        M-Pesa has not reversed, the ones a cashier may still attach)."""
        sql = "SELECT * FROM c2b_payments WHERE shop_id = ?"
        if unattached_only:
            sql += " AND sale_ref IS NULL AND reversed_at IS NULL"
        sql += " ORDER BY paid_at DESC, trans_id DESC LIMIT ?"
        rows = await self._db.fetchall(sql, (shop_id, limit))
        return [_to_record(row) for row in rows]

    async def for_sale(self, shop_id: str, sale_ref: str) -> list[C2BRecord]:
        """The C2B payments attached to one sale, first attached first (its receipt's tenders)."""
        rows = await self._db.fetchall(
            "SELECT * FROM c2b_payments WHERE shop_id = ? AND sale_ref = ?"
            " ORDER BY attached_at, trans_id",
            (shop_id, sale_ref),
        )
        return [_to_record(row) for row in rows]

    async def last_attached(self, shop_id: str, till_id: str) -> C2BRecord | None:
        """The payment this till attached most recently (a "reprint last receipt" candidate)."""
        row = await self._db.fetchone(
            "SELECT * FROM c2b_payments WHERE shop_id = ? AND attached_till = ?"
            " ORDER BY attached_at DESC, trans_id DESC LIMIT 1",
            (shop_id, till_id),
        )
        return None if row is None else _to_record(row)

    async def attach(
        self,
        tx: WriteTx,
        shop_id: str,
        trans_id: str,
        sale_ref: str,
        till_id: str,
        *,
        actor: Actor = Actor.CASHIER,
    ) -> C2BRecord:
        """Attach an unattached payment to `sale_ref` (the relay already granted the claim
        when `till_id` is another till's: then this records where it went)."""
        current = await self.get(shop_id, trans_id, tx=tx)
        if current is None:
            raise NotFoundError(f"there is no C2B payment {trans_id} for shop {shop_id!r}")
        if current.sale_ref is not None:
            if (current.sale_ref, current.attached_till) == (sale_ref, till_id):
                return current
            raise C2BAttachError(
                "trans_id", f"{trans_id} is already attached to sale {current.sale_ref}"
            )
        if current.reversed:
            raise C2BAttachError(
                "trans_id", f"{trans_id} was reversed: M-Pesa gave the money back to the customer"
            )
        attached = await tx.fetchone(
            "UPDATE c2b_payments SET sale_ref = ?, attached_till = ?, attached_at = ?"
            " WHERE shop_id = ? AND trans_id = ? AND sale_ref IS NULL RETURNING *",
            (sale_ref, till_id, tx.now_ms(), shop_id, trans_id),
        )
        assert attached is not None, "the payment was read unattached in this transaction"
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.C2B_ATTACHED,
            shop_id=shop_id,
            detail={"trans_id": trans_id, "sale_ref": sale_ref, "till_id": till_id},
        )
        return _to_record(attached)

    async def mark_reversed(
        self, tx: WriteTx, shop_id: str, trans_id: str, *, reason: str
    ) -> C2BRecord | None:
        """M-Pesa's Reversal result said code 0 for this payment: note it (once) with its
        audit entry. None when there is no such payment or it was already marked."""
        marked = await tx.fetchall(
            "UPDATE c2b_payments SET reversed_at = ? WHERE shop_id = ? AND trans_id = ?"
            " AND reversed_at IS NULL RETURNING trans_id",
            (tx.now_ms(), shop_id, trans_id),
        )
        if not marked:
            return None
        await self._audit.append(
            tx,
            actor=Actor.SYSTEM,
            action=AuditAction.C2B_REVERSED,
            shop_id=shop_id,
            detail={"trans_id": trans_id, "reason": reason},
        )
        return await self.get(shop_id, trans_id, tx=tx)
