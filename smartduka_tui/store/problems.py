"""Problems for the manager that belong to no attempt's state: a signed callback that matched
no attempt (money may have moved), an event that could not be applied, a suspicious pattern.

Details are JSON written by our code; never put a secret or a full callback path in one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smartduka_tui.model import PROBLEM_FLAGS, PROBLEM_STATES, Actor, AuditAction, ProblemKind
from smartduka_tui.store.attempts import attempt_conditions, attempt_from_row, resolution_note
from smartduka_tui.store.audit import AuditDraft, AuditLog, canonical_json
from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.errors import AttemptInputError, NotFoundError
from smartduka_tui.store.records import (
    Attempt,
    AttemptFilter,
    Problem,
    StateOrFlags,
    created_between,
    row_reader,
)

# Among items written in the same millisecond, attempts come before problem records. Each
# arm of the list has a rank of its own: ids of different tables may be equal.
ATTEMPT_RANK, RECORD_RANK = 1, 0
_AFTER_EVERY_ID = 2**63 - 1
EVERY_PROBLEM_ATTEMPT = StateOrFlags(PROBLEM_STATES, PROBLEM_FLAGS)


@dataclass(frozen=True, slots=True)
class ProblemListFilter:
    """What the manager's problem list holds; every field narrows. `attempts` picks the
    problem attempts by state or flag (None: no attempts), `kinds` the problem records."""

    attempts: StateOrFlags | None = EVERY_PROBLEM_ATTEMPT
    kinds: frozenset[ProblemKind] = frozenset(ProblemKind)
    since: datetime | None = None
    until: datetime | None = None
    result_code: str | None = None
    phone: str | None = None
    """An attempt's full number."""
    masked_phone: str | None = None
    """The same number masked: problem records hold no other."""
    till_id: str | None = None
    include_resolved: bool = False


@dataclass(frozen=True, slots=True)
class ProblemListPage:
    items: tuple[Attempt | Problem, ...]
    more: bool
    """Whether items follow the last one."""


def _arm(
    source: str,
    rank: int,
    table: str,
    conditions: tuple[list[str], list[Any]],
    after: tuple[int, int, int] | None,
    want: int,
) -> tuple[str, list[Any]]:
    """One arm of the list's UNION ALL: the newest `want` ids of `table` that meet
    `conditions` and come after `after` = (created_at, rank, id), newest first."""
    where, params = conditions
    if after is not None:
        at, after_rank, after_id = after
        # (created_at, rank, id) < after, as a range on (created_at, id) an index can walk.
        if rank == after_rank:
            last_id = after_id
        elif rank > after_rank:
            last_id = 0  # its items at `at` are listed already
        else:
            last_id = _AFTER_EVERY_ID  # its items at `at` are still to come
        where = [*where, "(created_at, id) < (?, ?)"]
        params = [*params, at, last_id]
    sql = (
        f"SELECT * FROM (SELECT '{source}' AS list_source, {rank} AS list_rank,"  # noqa: S608 - fixed fragments
        f" id AS list_id, created_at AS list_at FROM {table} WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT ?)"
    )
    return sql, [*params, want]


def _record_conditions(shop_id: str, filters: ProblemListFilter) -> tuple[list[str], list[Any]]:
    kinds = sorted(ProblemKind(kind).value for kind in filters.kinds)
    where = ["shop_id = ?", f"kind IN ({', '.join('?' * len(kinds))})"]
    params: list[Any] = [shop_id, *kinds]
    if not filters.include_resolved:
        where.append("resolved_at IS NULL")
    created_between(where, params, filters.since, filters.until)
    if filters.till_id is not None:
        where.append("till_id = ?")
        params.append(filters.till_id)
    # Only a code or phone written as text matches (a number is not the code typed).
    if filters.result_code is not None:
        where.append("json_type(detail, '$.result_code') = 'text'")
        where.append("json_extract(detail, '$.result_code') = ?")
        params.append(filters.result_code)
    if filters.masked_phone is not None:
        where.append("json_type(detail, '$.phone') = 'text'")
        where.append("json_extract(detail, '$.phone') = ?")
        params.append(filters.masked_phone)
    return where, params


def _attempt_conditions(shop_id: str, filters: ProblemListFilter) -> tuple[list[str], list[Any]]:
    return attempt_conditions(
        shop_id,
        AttemptFilter(
            since=filters.since,
            until=filters.until,
            result_codes=None if filters.result_code is None else frozenset({filters.result_code}),
            phone=filters.phone,
            till_id=filters.till_id,
            include_resolved=filters.include_resolved,
            any_of=filters.attempts,
        ),
        problems_only=True,
    )


_to_problem = row_reader(Problem)
# The problem columns of the problem list's join, each named after `problem_`.
_joined_problem = row_reader(Problem, "problem_")


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
        [problem_id] = await self.record_many(
            tx, shop_id, kind, [detail], till_id=till_id, actor=actor
        )
        problem = await self.get(shop_id, problem_id, tx=tx)
        if problem is None:
            raise RuntimeError("the problem just written is not there")
        return problem

    async def record_many(
        self,
        tx: WriteTx,
        shop_id: str,
        kind: ProblemKind,
        details: Sequence[Mapping[str, Any]],
        *,
        till_id: str | None = None,
        actor: Actor = Actor.SYSTEM,
    ) -> list[int]:
        """Problems of one kind (a pull's findings), each with its PROBLEM_RECORDED entry: one
        INSERT and one batch of audit entries. Returns the new problems' ids, in the order
        given (each the next rowid, as SQLite would give it)."""
        if not details:
            return []
        kind = ProblemKind(kind)
        last = await tx.fetchone("SELECT coalesce(max(id), 0) AS last FROM problems")
        first = 1 + (0 if last is None else int(last["last"]))
        ids = list(range(first, first + len(details)))
        await tx.execute(
            "INSERT INTO problems (id, shop_id, till_id, kind, detail, created_at)"
            " SELECT value ->> 0, ?, ?, ?, value ->> 1, ? FROM json_each(?) ORDER BY key",
            (
                shop_id,
                till_id,
                kind.value,
                tx.now_ms(),
                json.dumps(
                    [[n, canonical_json(dict(d))] for n, d in zip(ids, details, strict=True)]
                ),
            ),
        )
        await self._audit.append_many(
            tx,
            [
                AuditDraft(
                    actor=actor,
                    action=AuditAction.PROBLEM_RECORDED,
                    shop_id=shop_id,
                    detail={"problem_id": n, "kind": kind.value},
                )
                for n in ids
            ],
        )
        return ids

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

    async def problem_list(
        self,
        shop_id: str,
        filters: ProblemListFilter,
        *,
        after: tuple[int, int, int] | None = None,
        limit: int = 50,
    ) -> ProblemListPage:
        """One page of the manager's problem list, in one query: problem attempts and problem
        records, newest first by (created_at, rank, id), after `after` in that order.

        Each kind of item is one arm of a UNION ALL (its ids, rank and time) joined back to
        its table for the page's rows. A new kind from the problems table needs no change
        here; one from another table is one more `_arm` and one more LEFT JOIN.
        """
        if not 1 <= limit <= 1000:
            raise AttemptInputError("limit", "must be between 1 and 1000")
        arms: list[tuple[str, list[Any]]] = []
        if filters.attempts is not None:
            conditions = _attempt_conditions(shop_id, filters)
            arms.append(_arm("A", ATTEMPT_RANK, "attempts", conditions, after, limit + 1))
        if filters.kinds:
            conditions = _record_conditions(shop_id, filters)
            arms.append(_arm("P", RECORD_RANK, "problems", conditions, after, limit + 1))
        if not arms:
            return ProblemListPage((), more=False)
        union = " UNION ALL ".join(sql for sql, _ in arms)
        rows = await self._db.fetchall(
            f"WITH page AS ({union} ORDER BY list_at DESC, list_rank DESC, list_id DESC LIMIT ?)"  # noqa: S608 - fixed fragments
            " SELECT page.list_source, attempts.*, problems.id AS problem_id,"
            " problems.shop_id AS problem_shop_id, problems.till_id AS problem_till_id,"
            " problems.kind AS problem_kind,"
            " problems.detail AS problem_detail, problems.created_at AS problem_created_at,"
            " problems.resolved_at AS problem_resolved_at,"
            " problems.resolution_note AS problem_resolution_note"
            " FROM page"
            " LEFT JOIN attempts ON page.list_source = 'A' AND attempts.id = page.list_id"
            " LEFT JOIN problems ON page.list_source = 'P' AND problems.id = page.list_id"
            " ORDER BY page.list_at DESC, page.list_rank DESC, page.list_id DESC",
            [*(param for _, params in arms for param in params), limit + 1],
        )
        items = tuple(
            attempt_from_row(row) if row["list_source"] == "A" else _joined_problem(row)
            for row in rows[:limit]
        )
        return ProblemListPage(items, more=len(rows) > limit)

    async def resolve(
        self,
        tx: WriteTx,
        shop_id: str,
        problem_id: int,
        note: str,
        *,
        actor: Actor = Actor.MANAGER,
    ) -> Problem:
        note = resolution_note(note)
        return await self._change_open(
            tx,
            shop_id,
            problem_id,
            "resolved_at = ?, resolution_note = ?",
            (tx.now_ms(), note),
            actor=actor,
            action=AuditAction.PROBLEM_RESOLVED,
            detail={"note": note},
        )

    async def open_for_sale(
        self, tx: WriteTx, shop_id: str, kind: ProblemKind, sale_ref: str
    ) -> Sequence[Problem]:
        """The open problems of `kind` whose detail names `sale_ref`, oldest first: what a
        change to that sale may settle (a late payment, a refund)."""
        rows = await tx.fetchall(
            "SELECT * FROM problems WHERE shop_id = ? AND kind = ? AND resolved_at IS NULL"
            " AND json_type(detail, '$.sale_ref') = 'text'"
            " AND json_extract(detail, '$.sale_ref') = ? ORDER BY id",
            (shop_id, ProblemKind(kind).value, sale_ref),
        )
        return [_to_problem(row) for row in rows]

    async def update_detail(
        self,
        tx: WriteTx,
        shop_id: str,
        problem_id: int,
        detail: Mapping[str, Any],
        *,
        why: str,
        actor: Actor = Actor.SYSTEM,
    ) -> Problem:
        """An open problem's detail made true again (a part-paid sale took more money), with
        an audit entry saying `why`; NotFoundError, changing nothing, when it is not open."""
        return await self._change_open(
            tx,
            shop_id,
            problem_id,
            "detail = ?",
            (canonical_json(dict(detail)),),
            actor=actor,
            action=AuditAction.PROBLEM_UPDATED,
            detail={"why": why},
        )

    async def _change_open(
        self,
        tx: WriteTx,
        shop_id: str,
        problem_id: int,
        assignments: str,
        values: tuple[Any, ...],
        *,
        actor: Actor,
        action: AuditAction,
        detail: Mapping[str, Any],
    ) -> Problem:
        """Set `assignments` on an open problem with its audit entry (the problem's id, then
        `detail`) in `tx`; the problem as it now is, or NotFoundError, changing nothing, if it
        is not open."""
        changed = await tx.fetchone(
            f"UPDATE problems SET {assignments}"  # noqa: S608 - the callers' fixed text
            " WHERE shop_id = ? AND id = ? AND resolved_at IS NULL RETURNING *",
            (*values, shop_id, problem_id),
        )
        if changed is None:
            raise NotFoundError(f"there is no open problem {problem_id} for shop {shop_id!r}")
        await self._audit.append(
            tx,
            actor=actor,
            action=action,
            shop_id=shop_id,
            detail={"problem_id": problem_id, **detail},
        )
        return _to_problem(changed)
