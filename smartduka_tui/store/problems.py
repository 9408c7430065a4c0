"""Problems for the manager that belong to no attempt's state: a signed callback that matched
no attempt (money may have moved), an event that could not be applied, a suspicious pattern.

Details are JSON written by our code; never put a secret or a full callback path in one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from smartduka_tui.model import Actor, AuditAction, ProblemKind
from smartduka_tui.store.audit import AuditLog, canonical_json
from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.errors import AttemptInputError, NotFoundError
from smartduka_tui.store.records import Problem, from_ms, opt_from_ms


def _to_problem(row: Any) -> Problem:
    return Problem(
        id=row["id"],
        shop_id=row["shop_id"],
        till_id=row["till_id"],
        kind=ProblemKind(row["kind"]),
        detail=json.loads(row["detail"]),
        created_at=from_ms(row["created_at"]),
        resolved_at=opt_from_ms(row["resolved_at"]),
        resolution_note=row["resolution_note"],
    )


class Problems:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def record(
        self,
        tx: WriteTx,
        shop_id: str,
        kind: ProblemKind,
        detail: Mapping[str, Any],
        *,
        till_id: str | None = None,
        actor: Actor = Actor.SYSTEM,
    ) -> Problem:
        detail_text = canonical_json(dict(detail))
        problem_id = await tx.insert(
            "INSERT INTO problems (shop_id, till_id, kind, detail, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (shop_id, till_id, ProblemKind(kind).value, detail_text, tx.now_ms()),
        )
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.PROBLEM_RECORDED,
            shop_id=shop_id,
            detail={"problem_id": problem_id, "kind": ProblemKind(kind).value},
        )
        problem = await self.get(shop_id, problem_id, tx=tx)
        if problem is None:
            raise RuntimeError("the problem just written is not there")
        return problem

    async def get(
        self, shop_id: str, problem_id: int, *, tx: WriteTx | None = None
    ) -> Problem | None:
        row = await (tx or self._db).fetchone(
            "SELECT * FROM problems WHERE shop_id = ? AND id = ?", (shop_id, problem_id)
        )
        return None if row is None else _to_problem(row)

    async def list(
        self,
        shop_id: str,
        *,
        include_resolved: bool = False,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Problem]:
        """A shop's problems, newest first."""
        sql = "SELECT * FROM problems WHERE shop_id = ?"
        params: list[Any] = [shop_id]
        if not include_resolved:
            sql += " AND resolved_at IS NULL"
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_to_problem(row) for row in await self._db.fetchall(sql, params)]

    async def resolve(
        self,
        tx: WriteTx,
        shop_id: str,
        problem_id: int,
        note: str,
        *,
        actor: Actor = Actor.MANAGER,
    ) -> Problem:
        note = note.strip() if isinstance(note, str) else ""
        if not note or len(note) > 500:
            raise AttemptInputError("note", "must be 1 to 500 characters saying what was done")
        changed = await tx.fetchall(
            "UPDATE problems SET resolved_at = ?, resolution_note = ?"
            " WHERE shop_id = ? AND id = ? AND resolved_at IS NULL RETURNING id",
            (tx.now_ms(), note, shop_id, problem_id),
        )
        if not changed:
            raise NotFoundError(f"there is no open problem {problem_id} for shop {shop_id!r}")
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.PROBLEM_RESOLVED,
            shop_id=shop_id,
            detail={"problem_id": problem_id, "note": note},
        )
        problem = await self.get(shop_id, problem_id, tx=tx)
        if problem is None:
            raise RuntimeError("the problem just resolved is not there")
        return problem
