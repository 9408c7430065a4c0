"""The audit viewer: filters, paging, plain words, the chain check."""

from __future__ import annotations

import pytest

from smartduka_tui.manager import (
    AuditFilter,
    audit_filter_from_text,
)
from smartduka_tui.model import Actor
from tests.manager.conftest import Seeded


async def all_lines(seeded: Seeded, filters: AuditFilter, limit: int = 50) -> list[int]:
    found: list[int] = []
    before = None
    while True:
        page = await seeded.service.audit_page(filters, before, limit)
        found.extend(line.id for line in page.lines)
        if page.next_before_id is None:
            return found
        before = page.next_before_id


async def test_everything_newest_first_in_plain_words(signed_in: Seeded) -> None:
    page = await signed_in.service.audit_page(AuditFilter())
    ids = [line.id for line in page.lines]
    assert ids == sorted(ids, reverse=True)
    newest = page.lines[0]
    assert (newest.who, newest.action, newest.shop_wide) == (
        "Manager",
        "manager.sign_in",
        False,
    )
    assert newest.text == "Manager signed in to open the manager screens"
    created = next(line for line in page.lines if line.action == "attempt.created")
    assert created.text == "Payment request for sale S1007: KES 2,350 from 2547******02 (attempt 1)"
    assert "254712000002" not in " ".join(line.text for line in page.lines)


@pytest.mark.parametrize("limit", [1, 4, 7, 50])
async def test_pages_cover_the_log_exactly_once(signed_in: Seeded, limit: int) -> None:
    assert await all_lines(signed_in, AuditFilter(), limit) == await all_lines(
        signed_in, AuditFilter(), 1000
    )


async def test_filters_narrow_the_log(signed_in: Seeded) -> None:
    service = signed_in.service
    by_callback = await service.audit_page(audit_filter_from_text(actor="callback"))
    assert {line.actor for line in by_callback.lines} == {Actor.CALLBACK}
    assert len(by_callback.lines) == 5
    by_action = await service.audit_page(audit_filter_from_text(action="manager."))
    assert [line.action for line in by_action.lines] == [
        "manager.sign_in",
        "manager.pin_counters_sealed",
        "manager.pin_set",
    ]
    one = await service.audit_page(audit_filter_from_text(attempt=f"A{signed_in.ids['late']}"))
    assert [line.action for line in one.lines] == [
        "attempt.transition",
        "attempt.transition",
        "attempt.transition",
        "attempt.created",
    ]
    window = await service.audit_page(
        audit_filter_from_text(since="2026-01-15 09:15", until="2026-01-15 09:16")
    )
    assert [line.action for line in window.lines] == ["problem.recorded"]
    shop_only = await service.audit_page(AuditFilter(include_till=False))
    assert all(line.shop_wide for line in shop_only.lines)
    nothing = await service.audit_page(audit_filter_from_text(since="2026-02-01"))
    assert nothing.lines == () and nothing.next_before_id is None


async def test_verify_chain_reports_intact_then_the_first_broken_entry(signed_in: Seeded) -> None:
    verdict = await signed_in.service.verify_chain()
    assert verdict.intact and verdict.message.startswith("The audit log is intact:")
    target = signed_in.ids["expired"]
    row = await signed_in.store.db.fetchone(
        "SELECT min(id) AS id FROM audit_log WHERE attempt_id = ?", (target,)
    )
    assert row is not None
    async with signed_in.store.write() as tx:
        await tx.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        await tx.execute(
            "UPDATE audit_log SET detail = '{\"amount\":1}' WHERE id = ?", (row["id"],)
        )
    broken = await signed_in.service.verify_chain()
    assert not broken.intact and broken.first_broken_id == row["id"]
    assert f"BROKEN at entry {row['id']}" in broken.message
    assert "its content does not match its hash" in broken.message
