"""What a manager does to a problem payment: read its timeline, re-check it with M-Pesa (the real
simulator), mark it resolved with a note, export the list; and that none of it works without a
signed-in session."""

from __future__ import annotations

import csv
import io
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smartduka_tui.manager import (
    ActionRefused,
    HistoryFilter,
    ManagerInputError,
    ManagerService,
    NotSignedIn,
    ProblemFilter,
    Resolution,
    problem_filter_from_text,
)
from smartduka_tui.model import AttemptFlag, AttemptState
from smartduka_tui.store import Secret
from smartduka_tui.store.pin import ManagerPin
from tests.conftest import unique_phone
from tests.manager.conftest import PIN, SHOP, Seeded
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess


def a(seeded: Seeded, name: str) -> str:
    return f"A{seeded.ids[name]}"


def p(seeded: Seeded, name: str) -> str:
    return f"P{seeded.problem_ids[name]}"


async def audit_actions(seeded: Seeded) -> list[str]:
    entries = await seeded.store.audit.search(SHOP, include_system=True, limit=1000)
    return [e.action for e in reversed(entries)]


# ------------------------------------------------------------------------------ the session


async def test_nothing_works_before_signing_in(seeded: Seeded) -> None:
    service = seeded.service
    calls = [
        service.problems(ProblemFilter()),
        service.detail("A1"),
        service.resolve("A2", "note"),
        service.recheck("A2"),
        service.export_csv(ProblemFilter()),
        service.settings_view(),
        service.verify_credentials(),
        service.enrol_from_file("/nowhere"),
        service.daily_summary(),
        service.verify_chain(),
    ]
    for call in calls:
        with pytest.raises(NotSignedIn, match="Sign in with the manager PIN first"):
            await call
    assert (await seeded.store.attempts.get(SHOP, seeded.ids["cancelled"])).flags == 0  # type: ignore[union-attr]


async def test_a_wrong_pin_does_not_sign_in(seeded: Seeded) -> None:
    check = await seeded.service.sign_in(Secret("1111"))
    assert not check.accepted and not seeded.service.session.signed_in
    with pytest.raises(ManagerInputError, match="type the manager PIN"):
        await seeded.service.sign_in(Secret("  "))


async def test_an_idle_session_ends_by_the_clock(signed_in: Seeded) -> None:
    service, clock = signed_in.service, signed_in.clock
    clock.advance(299)
    await service.problems(ProblemFilter())  # activity: the timer starts again
    clock.advance(299)
    assert not await service.sign_out_if_idle()
    clock.advance(1)
    assert await service.sign_out_if_idle()
    with pytest.raises(NotSignedIn):
        await service.problems(ProblemFilter())
    signed_out = [
        e for e in await signed_in.store.audit.system_entries() if e.action == "manager.signed_out"
    ]
    assert signed_out[0].detail == {"reason": "no activity for 5 minutes"}


async def test_first_run_sets_the_pin_and_signs_in(tmp_path: Path) -> None:
    from tests.manager.conftest import seeded_till

    async with seeded_till(tmp_path, pin=None) as seeded:
        service = seeded.service
        assert not (await service.pin_status()).is_set
        with pytest.raises(ManagerInputError, match="the two PINs are not the same"):
            await service.set_first_pin(Secret("2580"), Secret("2581"))
        with pytest.raises(ManagerInputError, match="run of digits"):
            await service.set_first_pin(Secret("4321"), Secret("4321"))
        assert not (await service.pin_status()).is_set
        assert (await service.set_first_pin(Secret("2580"), Secret("2580"))).accepted
        assert service.session.signed_in


# ------------------------------------------------------------------------------ detail


async def test_the_timeline_tells_the_story_in_plain_words(signed_in: Seeded) -> None:
    detail = await signed_in.service.detail(a(signed_in, "late"))
    assert [(s.who, s.text) for s in detail.timeline] == [
        ("Cashier", "Payment request for sale S1005: KES 350 from 2547******05 (attempt 1)"),
        (
            "Till",
            "M-Pesa accepted the request; the prompt went to the customer's phone: "
            "CREATED → PENDING",
        ),
        (
            "M-Pesa query",
            "M-Pesa's query said not paid: PENDING → FAILED (code 1037, DS timeout "
            "user cannot be reached)",
        ),
        (
            "M-Pesa callback",
            "M-Pesa's callback said paid: FAILED → COMPLETED (code 0, The "
            "service request is processed successfully.; receipt SDK9Z8Y7X6; flagged late)",
        ),
    ]
    assert dict(detail.facts)["Phone"] == "0712 000 005 (2547******05)"
    assert any("paid another way too" in line for line in detail.advice)
    assert detail.recheck_blocked == "It is paid; M-Pesa's query cannot change that."
    assert detail.can_resolve


async def test_review_detail_says_why_it_needs_review(signed_in: Seeded) -> None:
    detail = await signed_in.service.detail(a(signed_in, "review"))
    assert detail.advice[0] == "Why it needs review: amount differs from the attempt's."
    unknown = await signed_in.service.detail(a(signed_in, "unknown"))
    assert unknown.recheck_blocked is not None and "never gave this request an id" in (
        unknown.recheck_blocked
    )
    assert unknown.resolve_blocked is not None and "still answer" in unknown.resolve_blocked


async def test_a_problem_record_has_its_own_advice(signed_in: Seeded) -> None:
    detail = await signed_in.service.detail(p(signed_in, "unmatched"))
    assert detail.row.what == "Unmatched"
    assert "money may have moved" in detail.row.summary
    assert "Find receipt SDK5P4Q3R2" in detail.advice[0]
    assert detail.recheck_blocked == "Only a payment can be re-checked with M-Pesa."


@pytest.mark.parametrize("key", ["X1", "A", "12", "A-1", "P1.5", ""])
async def test_a_bad_key_is_named(signed_in: Seeded, key: str) -> None:
    with pytest.raises(ManagerInputError, match="must be a payment like A12"):
        await signed_in.service.detail(key)


async def test_another_shops_payment_is_not_found(signed_in: Seeded) -> None:
    with pytest.raises(ManagerInputError, match="there is no payment A999 in this shop"):
        await signed_in.service.detail("A999")


# ------------------------------------------------------------------------------ resolve


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("", "say what was done"),
        ("   ", "say what was done"),
        ("x" * 501, "must be at most 500 characters, got 501"),
        ("refunded\nby M-Pesa", "one line of text without control characters"),
    ],
)
async def test_a_bad_note_is_refused_and_nothing_changes(
    signed_in: Seeded, note: str, message: str
) -> None:
    before = await audit_actions(signed_in)
    with pytest.raises(ManagerInputError) as refused:
        await signed_in.service.resolve(a(signed_in, "cancelled"), note)
    assert refused.value.field == "note" and message in refused.value.message
    attempt = await signed_in.store.attempts.get(SHOP, signed_in.ids["cancelled"])
    assert attempt is not None and not attempt.flags & AttemptFlag.RESOLVED_BY_MANAGER
    assert await audit_actions(signed_in) == before


async def test_resolving_is_audited_with_the_note_and_happens_once(signed_in: Seeded) -> None:
    result = await signed_in.service.resolve(a(signed_in, "expired"), "  customer paid cash ")
    assert result.message == f"{a(signed_in, 'expired')} marked resolved."
    assert result.detail.row.resolved and not result.detail.can_resolve
    assert result.detail.timeline[-1].text == "Marked resolved: customer paid cash"
    entry = (await signed_in.store.audit.entries(SHOP, attempt_id=signed_in.ids["expired"]))[0]
    assert entry.action == "attempt.resolved" and entry.detail == {"note": "customer paid cash"}
    with pytest.raises(ActionRefused, match="already marked resolved"):
        await signed_in.service.resolve(a(signed_in, "expired"), "again")


async def test_what_cannot_be_resolved(signed_in: Seeded) -> None:
    with pytest.raises(ActionRefused, match="M-Pesa may still answer"):
        await signed_in.service.resolve(a(signed_in, "unknown"), "gave up")
    with pytest.raises(ActionRefused, match="not a problem payment"):
        await signed_in.service.resolve(a(signed_in, "paid"), "fine")


async def test_a_problem_record_is_resolved_too(signed_in: Seeded) -> None:
    result = await signed_in.service.resolve(p(signed_in, "pattern"), "talked to the cashier")
    assert result.detail.row.resolved
    assert result.detail.timeline[-1].text == "Marked resolved: talked to the cashier"
    with pytest.raises(ActionRefused, match="already marked resolved"):
        await signed_in.service.resolve(p(signed_in, "pattern"), "again")


# ------------------------------------------------------------------------------ export


async def test_export_writes_the_filtered_list_privately_with_masked_phones(
    signed_in: Seeded,
) -> None:
    result = await signed_in.service.export_csv(problem_filter_from_text(state="failed"))
    assert result.rows == 2 and result.path.parent == signed_in.data_dir / "exports"
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    text = result.path.read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["key"] for r in rows] == [a(signed_in, "insufficient"), a(signed_in, "cancelled")]
    assert rows[1] == {
        "key": a(signed_in, "cancelled"),
        "when_kenya_time": "2026-01-15 09:01:19",
        "problem": "Failed",
        "state": "FAILED",
        "result_code": "1032",
        "summary": "Not paid: Request cancelled by user",
        "till": "till1",
        "sale": "S1002",
        "amount_kes": "120",
        "phone": "2547******02",
        "receipt": "",
        "resolved": "no",
        "note": "",
        "reversed": "no",
    }
    assert "254712000002" not in text
    for secret in signed_in.secrets:
        assert secret not in text
    second = await signed_in.service.export_csv(ProblemFilter())
    assert second.path != result.path and second.rows == 8
    exports = [e for e in await signed_in.store.audit.entries(SHOP) if e.action == "manager.export"]
    assert [e.detail["rows"] for e in exports] == [8, 2]


# ------------------------------------------------------------------------------ re-check


@pytest.fixture
async def live_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=False) as harness:
        yield harness


async def signed_in_service(harness: TillHarness) -> ManagerService:
    await ManagerPin.of(harness.store).set(Secret(PIN))
    service = ManagerService.for_engine(harness.engine)
    assert (await service.sign_in(Secret(PIN))).accepted
    return service


async def test_recheck_finds_a_payment_that_expired_unanswered(live_till: TillHarness) -> None:
    """The customer paid, the callback was lost and M-Pesa's one query at expiry said "being
    processed": the till had to give up. Asked again, M-Pesa says paid."""
    phone = unique_phone()
    await live_till.sim.set_phone_scenario(
        phone, drop_callback=True, query_anomaly="stuck_pending", query_anomaly_times=1
    )
    view = await live_till.engine.start_payment("RC1", 90, phone)
    await live_till.advance_sim(2)
    live_till.clock.advance(301)
    await live_till.engine.reconcile_once()
    assert (await live_till.view(view.attempt_id)).state is AttemptState.EXPIRED
    service = await signed_in_service(live_till)
    key = f"A{view.attempt_id}"
    assert (await service.detail(key)).can_recheck
    result = await service.recheck(key)
    assert result.message == "M-Pesa's answer moved it from EXPIRED to COMPLETED (a late payment)."
    assert result.detail.row.state is AttemptState.COMPLETED
    texts = [step.text for step in result.detail.timeline]
    assert "The manager asked M-Pesa about it again" in texts
    assert texts[-1].startswith("M-Pesa's query said paid: EXPIRED → COMPLETED")


async def test_recheck_that_changes_nothing_says_what_m_pesa_said(
    live_till: TillHarness,
) -> None:
    phone = unique_phone()
    await live_till.sim.set_phone_scenario(phone, result_code=1032)
    view = await live_till.engine.start_payment("RC2", 40, phone)
    await live_till.advance_sim(2)
    assert (await live_till.view(view.attempt_id)).state is AttemptState.FAILED
    service = await signed_in_service(live_till)
    result = await service.recheck(f"A{view.attempt_id}")
    assert result.detail.row.state is AttemptState.FAILED
    assert result.message.startswith("Asked M-Pesa: M-Pesa's query said not paid (code 1032)")


async def test_recheck_is_refused_where_it_cannot_help(signed_in: Seeded) -> None:
    with pytest.raises(ActionRefused, match="never gave this request an id"):
        await signed_in.service.recheck(a(signed_in, "unknown"))
    with pytest.raises(ActionRefused, match="It is paid"):
        await signed_in.service.recheck(a(signed_in, "late"))
    with pytest.raises(ActionRefused, match="Only a payment"):
        await signed_in.service.recheck(p(signed_in, "unmatched"))
    offline = ManagerService(
        signed_in.store, signed_in.settings, signed_in.clock, shop_id=SHOP, till_id=None
    )
    assert (await offline.sign_in(Secret(PIN))).accepted
    with pytest.raises(ActionRefused, match="needs the till's M-Pesa connection"):
        await offline.recheck(a(signed_in, "expired"))


# ------------------------------------------------------------------------------ resolution (#11)


async def test_resolving_as_paid_is_a_real_transition_the_figures_follow(
    signed_in: Seeded,
) -> None:
    service = signed_in.service
    before = await service.daily_summary()
    result = await service.resolve(
        a(signed_in, "expired"), "on the statement", Resolution.PAID, " sdx9k2m4qa "
    )
    attempt = await signed_in.store.attempts.get(SHOP, signed_in.ids["expired"])
    assert attempt is not None
    assert attempt.state is AttemptState.COMPLETED and attempt.receipt_number == "SDX9K2M4QA"
    assert attempt.flags & AttemptFlag.RESOLVED_BY_MANAGER and result.detail.row.resolved
    after = await service.daily_summary()
    assert (after.paid, after.amount_paid) == (before.paid + 1, before.amount_paid + 480)
    assert (after.sales_paid, after.expired) == (before.sales_paid + 1, before.expired - 1)
    entries = await signed_in.store.audit.entries(SHOP, attempt_id=attempt.id, limit=1)
    assert entries[0].actor.value == "manager" and entries[0].detail["evidence"] == "manager_paid"
    page = await service.history(HistoryFilter())
    (row,) = [r for r in page.rows if r.key == a(signed_in, "expired")]
    assert row.state is AttemptState.COMPLETED and row.receipt == "SDX9K2M4QA"
    # Paid is not a problem: the export of open and resolved problems no longer lists it.
    export = await service.export_csv(problem_filter_from_text(include_resolved=True))
    assert a(signed_in, "expired") not in export.path.read_text()


async def test_resolving_as_not_paid_fails_the_attempt_and_lets_the_sale_be_charged(
    signed_in: Seeded,
) -> None:
    before = await signed_in.service.daily_summary()
    await signed_in.service.resolve(
        a(signed_in, "review"), "not on the statement", Resolution.NOT_PAID
    )
    attempt = await signed_in.store.attempts.get(SHOP, signed_in.ids["review"])
    assert attempt is not None and attempt.state is AttemptState.FAILED
    assert attempt.result_code == "manager_not_paid"
    after = await signed_in.service.daily_summary()
    assert (after.failed, after.needs_review) == (before.failed + 1, before.needs_review - 1)
    view = await signed_in.engine.get(str(attempt.id))
    assert view.retry.block.value in ("wait", "none"), "safe to charge again"


@pytest.mark.parametrize(
    ("name", "outcome", "receipt", "field_or_words"),
    [
        ("expired", Resolution.PAID, None, "receipt"),
        ("expired", Resolution.PAID, "12 34", "receipt"),
        ("expired", Resolution.NOT_PAID, "SDX9K2M4QA", "receipt"),
        ("expired", Resolution.PAID, "SDK1A2B3C4", "already pays sale"),
        ("late", Resolution.NOT_PAID, None, "never unpaid"),
    ],
)
async def test_a_resolution_that_cannot_be_changes_nothing(
    signed_in: Seeded, name: str, outcome: Resolution, receipt: str | None, field_or_words: str
) -> None:
    key = a(signed_in, name)
    before = await signed_in.store.attempts.get(SHOP, signed_in.ids[name])
    with pytest.raises((ManagerInputError, ActionRefused)) as caught:
        await signed_in.service.resolve(key, "checked", outcome, receipt)
    error = caught.value
    if isinstance(error, ManagerInputError):
        assert error.field == field_or_words
    else:
        assert field_or_words in str(error)
    assert await signed_in.store.attempts.get(SHOP, signed_in.ids[name]) == before
