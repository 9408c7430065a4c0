"""`ManagerService`: everything behind the manager PIN, for one shop of one till."""

from __future__ import annotations

import asyncio
import csv
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.manager.audit import AuditFilter, AuditPage, ChainVerdict, audit_line
from smartduka_tui.manager.detail import (
    ProblemDetail,
    TimelineStep,
    attempt_advice,
    record_advice,
)
from smartduka_tui.manager.direct import DirectPaymentsView, direct_payments_view
from smartduka_tui.manager.errors import ActionRefused, ManagerInputError, NotSignedIn
from smartduka_tui.manager.lists import (
    CSV_COLUMNS,
    PAGE_SIZE,
    HistoryFilter,
    ListCursor,
    PaymentLists,
    PaymentRow,
    ProblemFilter,
    RowPage,
    attempt_row,
    csv_values,
    parse_key,
    record_row,
)
from smartduka_tui.manager.session import IDLE_TIMEOUT_S, ManagerSession
from smartduka_tui.manager.settings import (
    SettingsForm,
    SettingsView,
    VerifyOutcome,
    VerifyResult,
)
from smartduka_tui.manager.setup import TillSetup, settings_view
from smartduka_tui.manager.summary import DailySummary, summarise_day
from smartduka_tui.manager.words import (
    ACTOR_WORDS,
    STATE_WORDS,
    describe_entry,
    kenya_time,
    shillings,
)
from smartduka_tui.model import (
    LIVE,
    PROBLEM_FLAGS,
    PROBLEM_STATES,
    Actor,
    AttemptFlag,
    AttemptState,
    AuditAction,
    Mode,
    ShopType,
    VerificationStatus,
)
from smartduka_tui.mpesa.client import DarajaClient
from smartduka_tui.mpesa.enrolment import (
    EnrolmentError,
    load_enrolment,
    read_enrolment_file,
)
from smartduka_tui.mpesa.errors import AuthenticationFailed, DarajaError
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.phone import format_local, mask_phone
from smartduka_tui.mpesa.requests import DarajaCredentials
from smartduka_tui.payments.api import PaymentError, PaymentService
from smartduka_tui.payments.codes import MANAGER_NOT_PAID, advise
from smartduka_tui.payments.machine import Evidence, decide
from smartduka_tui.payments.pull import Progress, PullFailed, PullReport, statement_pull_for
from smartduka_tui.payments.reversal import (
    ReversalRefusal,
    Reversals,
    ReversalTarget,
    ReversalVerdict,
)
from smartduka_tui.payments.sales import record_paid_attempt
from smartduka_tui.payments.shop_receipts import ShopReceipts
from smartduka_tui.store.errors import InputError, NotFoundError, ShopConfigError, VaultError
from smartduka_tui.store.pin import ManagerPin, PinCheck, PinStatus
from smartduka_tui.store.records import (
    Attempt,
    ChainCheckpoint,
    Problem,
    Shop,
    ShopConfig,
    ShopSecrets,
)
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import Store

NOTE_MAX = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RECEIPT = re.compile(r"^[A-Z0-9]{6,32}$")


class Resolution(StrEnum):
    """What a manager found on the M-Pesa statement for a problem payment."""

    PAID = Evidence.MANAGER_PAID.value
    NOT_PAID = Evidence.MANAGER_NOT_PAID.value


def _check_receipt(receipt: str | None) -> str:
    text = (receipt or "").strip().upper()
    if not _RECEIPT.fullmatch(text):
        raise ManagerInputError(
            "receipt",
            "give the M-Pesa receipt number from the statement: 6 to 32 letters and digits, "
            "for example SDK4T9Q2XZ",
        )
    return text


@dataclass(frozen=True, slots=True)
class ActionResult:
    message: str
    detail: ProblemDetail


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    rows: int


class ManagerService:
    """Everything behind the manager PIN, for one shop of one till.

    `payments` (the till's engine) is needed only to re-check a payment with M-Pesa;
    `transport` lets tests point the "verify" call at an in-process Daraja.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        shop_id: str,
        till_id: str | None = None,
        payments: PaymentService | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        export_dir: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        chain_checkpoint: Callable[[], Awaitable[ChainCheckpoint | None]] | None = None,
        reversals: Reversals | None = None,
        shop_receipts: ShopReceipts | None = None,
    ) -> None:
        self.store = store
        # The shop's receipt index the till was opened with, which the manager's pull asks
        # (None: pulled as a till with no relay).
        self.shop_receipts = shop_receipts
        # M-Pesa reversals (payments.statement.StatementService; needs the relay), or None.
        self.reversals = reversals
        # The relay's copy of the audit chain's head (relay_client.RelayClient.fetch_checkpoint;
        # ConnectionError when unreachable): "verify chain" compares the log against it.
        self.chain_checkpoint = chain_checkpoint
        self.settings = settings
        self.clock = clock
        self.shop_id = shop_id
        self.till_id = till_id
        self.payments = payments
        self.lists = PaymentLists(store, shop_id)
        self.pin = ManagerPin.of(store)
        self.session = ManagerSession(clock, idle_timeout_s)
        self.export_dir = export_dir or Path(settings.data_dir) / "exports"
        self._transport = transport

    # ---- PIN and session ------------------------------------------------------------------

    async def pin_status(self) -> PinStatus:
        return await self.pin.status()

    async def sign_in(self, pin: Secret, *, purpose: str = "the manager screens") -> PinCheck:
        """Check the PIN; on success the session starts. Wrong tries count to the lockout."""
        if not pin.reveal().strip():
            raise ManagerInputError("pin", "type the manager PIN")
        try:
            check = await self.pin.verify(pin, purpose=purpose)
        except VaultError as error:
            # A PIN record that fails against the key (tampered), or no key: say so as it is.
            raise ActionRefused(str(error)) from None
        if check.accepted:
            self.session.start()
        return check

    async def set_first_pin(self, pin: Secret, repeat: Secret) -> PinCheck:
        """First run: set the PIN (typed twice) and sign in with it."""
        if pin != repeat:
            raise ManagerInputError("repeat", "the two PINs are not the same; type them again")
        try:
            check = await self.pin.set(pin)
        except InputError as error:
            raise ManagerInputError(error.field, error.message) from None
        if check.accepted:
            self.session.start()
        return check

    async def sign_out(self, reason: str = "signed out") -> None:
        if not self.session.signed_in:
            return
        self.session.end()
        async with self.store.write() as tx:
            await self.store.audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_SIGNED_OUT,
                detail={"reason": reason},
            )

    async def sign_out_if_idle(self) -> bool:
        """End an idle session (audited); True when it did."""
        if not self.session.idle_expired():
            return False
        minutes = round(self.session.idle_timeout_s / 60)
        await self.sign_out(f"no activity for {minutes} minutes")
        return True

    def _signed_in(self) -> None:
        if not self.session.signed_in:
            raise NotSignedIn("Sign in with the manager PIN first.")
        self.session.touch()

    # ---- problem payments ------------------------------------------------------------------

    async def problems(
        self, filters: ProblemFilter, cursor: ListCursor | None = None, limit: int = PAGE_SIZE
    ) -> RowPage:
        self._signed_in()
        return await self.lists.problems(filters, cursor, limit)

    async def history(
        self, filters: HistoryFilter, cursor: ListCursor | None = None, limit: int = PAGE_SIZE
    ) -> RowPage:
        self._signed_in()
        return await self.lists.history(filters, cursor, limit)

    async def detail(self, key: str) -> ProblemDetail:
        self._signed_in()
        kind, number = parse_key(key)
        if kind == "A":
            return await self._attempt_detail(await self._attempt(number))
        return await self._record_detail(await self._record(number))

    async def _attempt(self, attempt_id: int) -> Attempt:
        attempt = await self.store.attempts.get(self.shop_id, attempt_id)
        if attempt is None:
            raise ManagerInputError("key", f"there is no payment A{attempt_id} in this shop")
        return attempt

    async def _record(self, problem_id: int) -> Problem:
        problem = await self.store.problems.get(self.shop_id, problem_id)
        if problem is None:
            raise ManagerInputError("key", f"there is no problem P{problem_id} in this shop")
        return problem

    async def _attempt_detail(self, attempt: Attempt) -> ProblemDetail:
        entries = await self.store.audit.entries(self.shop_id, attempt_id=attempt.id, limit=1000)
        ordered = sorted(entries, key=lambda e: e.id)
        review_reason = next(
            (
                str(e.detail["review_reason"])
                for e in reversed(ordered)
                if e.detail.get("review_reason")
            ),
            None,
        )
        row = attempt_row(attempt)
        info = advise(attempt.result_code, attempt.result_desc)
        facts: list[tuple[str, str]] = [
            ("Payment", f"{row.key} · sale {attempt.sale_ref} · attempt {attempt.attempt_number}"),
            ("State", f"{attempt.state.value} ({STATE_WORDS[attempt.state]})"),
            ("Amount", shillings(attempt.amount)),
            ("Phone", f"{format_local(attempt.phone)} ({mask_phone(attempt.phone)})"),
            ("Till", attempt.till_id),
            ("Started", kenya_time(attempt.created_at)),
        ]
        if attempt.result_code is not None:
            said = info.description or attempt.result_desc or ""
            facts.append(("M-Pesa code", f"{attempt.result_code} {said}".strip()))
        if attempt.receipt_number:
            facts.append(("Receipt", attempt.receipt_number))
        if attempt.checkout_request_id:
            facts.append(("Request id", attempt.checkout_request_id))
        if row.resolved:
            facts.append(("Resolved", attempt.review_note or ""))
        timeline = tuple(
            TimelineStep(e.at, ACTOR_WORDS[e.actor], describe_entry(e)) for e in ordered
        )
        return ProblemDetail(
            row=row,
            facts=tuple(facts),
            timeline=timeline,
            advice=tuple(attempt_advice(attempt, review_reason)),
            recheck_blocked=self._recheck_blocked(attempt),
            resolve_blocked=self._resolve_blocked(attempt),
        )

    def _recheck_blocked(self, attempt: Attempt) -> str | None:
        if attempt.state is AttemptState.COMPLETED:
            return "It is paid; M-Pesa's query cannot change that."
        if attempt.checkout_request_id is None:
            return (
                "M-Pesa never gave this request an id, so there is nothing to ask about; it "
                "expires on its own."
            )
        if self.payments is None or self.till_id is None:
            return "Re-checking needs the till's M-Pesa connection: use the till app."
        if attempt.till_id != self.till_id:
            return f"It was taken on till {attempt.till_id}: re-check it from that till."
        return None

    async def _settle(
        self, attempt: Attempt, outcome: Resolution, receipt: str | None, note: str
    ) -> Attempt:
        """The manager's resolution as evidence (machine.MANAGER_PAID / MANAGER_NOT_PAID),
        written with its audit entry in one transaction."""
        async with self.store.write() as tx:
            current = await self.store.attempts.get(self.shop_id, attempt.id, tx=tx)
            assert current is not None
            flags = AttemptFlag.RESOLVED_BY_MANAGER
            detail = {"evidence": outcome.value, "cause": "manager", "note": note}
            if outcome is Resolution.PAID:
                assert receipt is not None
                holders = await self.store.attempts.by_receipt(self.shop_id, receipt, tx=tx)
                other = next((a for a in holders if a.id != current.id), None)
                if other is not None:
                    raise ActionRefused(
                        f"Receipt {receipt} already pays sale {other.sale_ref} (A{other.id})."
                    )
                sale = await self.store.attempts.for_sale(self.shop_id, current.sale_ref, tx=tx)
                payer = next(
                    (a for a in sale if a.state is AttemptState.COMPLETED and a.id != current.id),
                    None,
                )
                if payer is not None:
                    raise ActionRefused(
                        f"Sale {current.sale_ref} is already paid by A{payer.id}: a second "
                        "payment is a refund, not a resolution."
                    )
                to: AttemptState | None
                if current.state is AttemptState.COMPLETED:  # paid, its receipt never came
                    if current.receipt_number is not None:
                        raise ActionRefused(f"It is paid with receipt {current.receipt_number}.")
                    to = AttemptState.COMPLETED
                else:
                    to = decide(Evidence.MANAGER_PAID, current.state, sale_paid_by_other=False).to
                fields: dict[str, Any] = {"receipt_number": receipt, "review_note": note}
                clear = AttemptFlag.RECEIPT_PENDING
            else:
                if current.state is AttemptState.COMPLETED:
                    raise ActionRefused(
                        "It is paid; a paid payment is never unpaid: refund it through M-Pesa."
                    )
                to = (
                    AttemptState.FAILED
                    if current.state is AttemptState.FAILED
                    else decide(
                        Evidence.MANAGER_NOT_PAID, current.state, sale_paid_by_other=False
                    ).to
                )
                fields = {"review_note": note}
                if current.state is not AttemptState.FAILED:
                    fields["result_code"] = MANAGER_NOT_PAID.code
                    fields["result_desc"] = "Not paid, per the manager's check of the statement"
                clear = AttemptFlag.NONE
            if to is None:
                raise ActionRefused(f"A {current.state.value} payment cannot be resolved so.")
            result = await self.store.attempts.transition(
                tx,
                self.shop_id,
                current.id,
                {current.state},
                to,
                Actor.MANAGER,
                add_flags=flags,
                clear_flags=clear,
                detail=detail,
                **fields,
            )
            if to is AttemptState.COMPLETED:
                # Paid by the manager's word: the sale's tender, in this same transaction.
                if current.state is AttemptState.COMPLETED:
                    filled = result.attempt.receipt_number
                    if filled is not None:
                        await self.store.sales.fill_receipt(tx, self.shop_id, current.id, filled)
                else:
                    await record_paid_attempt(self.store, tx, result.attempt, Actor.MANAGER)
        return result.attempt

    def _resolve_blocked(self, attempt: Attempt) -> str | None:
        if attempt.flags & AttemptFlag.RESOLVED_BY_MANAGER:
            return "It is already marked resolved."
        if attempt.state in LIVE:
            return "M-Pesa may still answer: re-check it, or wait until it has a final state."
        if attempt.state not in PROBLEM_STATES and not attempt.flags & PROBLEM_FLAGS:
            return "It is not a problem payment."
        return None

    async def _record_detail(self, problem: Problem) -> ProblemDetail:
        row = record_row(problem)
        facts: list[tuple[str, str]] = [
            ("Problem", f"{row.key} · {row.what}"),
            ("Recorded", kenya_time(problem.created_at)),
            ("Till", problem.till_id or "(the shop)"),
        ]
        for name, value in sorted(problem.detail.items()):
            if name in ("attempt_ref",) or value is None:
                continue
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            facts.append((name.replace("_", " ").capitalize(), shown))
        timeline = [TimelineStep(problem.created_at, "Till", row.summary)]
        if problem.resolved_at is not None:
            timeline.append(
                TimelineStep(
                    problem.resolved_at, "Manager", f"Marked resolved: {problem.resolution_note}"
                )
            )
        return ProblemDetail(
            row=row,
            facts=tuple(facts),
            timeline=tuple(timeline),
            advice=tuple(record_advice(problem)),
            recheck_blocked="Only a payment can be re-checked with M-Pesa.",
            resolve_blocked="It is already marked resolved." if row.resolved else None,
        )

    async def recheck(self, key: str) -> ActionResult:
        """Ask M-Pesa about a payment now (STK query) and apply the answer."""
        self._signed_in()
        kind, number = parse_key(key)
        if kind != "A":
            raise ActionRefused("Only a payment can be re-checked with M-Pesa.")
        attempt = await self._attempt(number)
        blocked = self._recheck_blocked(attempt)
        if blocked is not None or self.payments is None:
            raise ActionRefused(blocked or "Re-checking needs the till's M-Pesa connection.")
        async with self.store.write() as tx:
            await self.store.audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_RECHECK,
                shop_id=self.shop_id,
                attempt_id=attempt.id,
                detail={"state": attempt.state.value},
            )
        try:
            await self.payments.check_now(str(attempt.id))
        except PaymentError as error:
            raise ActionRefused(error.message) from None
        after = await self._attempt(attempt.id)
        detail = await self._attempt_detail(after)
        return ActionResult(_recheck_message(attempt, after, detail), detail)

    def reverse_blocked(self, row: PaymentRow) -> str | None:
        """None when a reversal of the payment in `row` may be asked for; else why not."""
        if self.reversals is None:
            return "reversals need the relay (M-Pesa answers through it)"
        if row.paid_twice:
            return "it is resolved" if row.resolved else None
        if (
            not row.key.startswith("A")
            or row.state is not AttemptState.COMPLETED
            or not row.receipt
        ):
            return "only a paid payment with its receipt can be reversed"
        if row.reversed:
            return "it is already reversed"
        return None

    async def reversal_target(self, key: str) -> ReversalTarget:
        """What V on `key` reverses: a paid payment (A…) itself, or a "paid twice" problem's
        (P…) second payment. ActionRefused, saying why, when there is nothing to reverse."""
        self._signed_in()
        kind, number = parse_key(key)
        if kind == "A":
            row = attempt_row(await self._attempt(number))
            blocked = self.reverse_blocked(row)
            if blocked is not None or row.receipt is None or row.amount is None:
                raise ActionRefused(blocked or "it cannot be reversed")
            return ReversalTarget(row.receipt, row.amount, f"sale {row.sale_ref}")
        problem = await self._record(number)
        blocked = self.reverse_blocked(record_row(problem))
        if blocked is not None:
            raise ActionRefused(blocked)
        return await self._second_payment(problem)

    async def _second_payment(self, problem: Problem) -> ReversalTarget:
        """A sale paid twice: its later payment (the earlier one keeps paying the sale)."""
        detail = problem.detail
        receipts = detail.get("receipts")
        sale_ref = detail.get("sale_ref")
        if detail.get("pattern") != "paid_twice" or not isinstance(receipts, list):
            raise ActionRefused("only a paid payment, or a sale paid twice, can be reversed")
        paid: list[tuple[datetime, str, int, bool]] = []
        for receipt in {str(r) for r in receipts}:
            for attempt in await self.store.attempts.by_receipt(self.shop_id, receipt):
                if attempt.state is AttemptState.COMPLETED:
                    when = attempt.completed_at or attempt.created_at
                    reversed_ = AttemptFlag.REVERSED in attempt.flags
                    paid.append((when, receipt, attempt.amount, reversed_))
            direct = await self.store.c2b.get(self.shop_id, receipt)
            if direct is not None:
                paid.append((direct.paid_at, receipt, direct.amount, direct.reversed))
        if len(paid) < 2:
            raise ActionRefused(f"sale {sale_ref} is no longer paid twice here")
        when, receipt, amount, reversed_ = max(paid)
        if reversed_:
            raise ActionRefused(f"its second payment, receipt {receipt}, is already reversed")
        return ReversalTarget(receipt, amount, f"the second payment of sale {sale_ref}")

    async def reverse(self, key: str, note: str) -> ActionResult:
        """Ask M-Pesa to give a paid payment back (A…), or a sale's second payment (P…, a
        "paid twice" problem); the manager is signed in with the PIN, and the note goes to
        M-Pesa and the audit. REVERSED comes only with M-Pesa's code 0 result.
        ManagerInputError for a bad note, ActionRefused when it cannot be reversed."""
        verdict = await self._reverse(await self.reversal_target(key), note)
        return ActionResult(verdict.message, await self.detail(key))

    async def direct_reversal_target(self, trans_id: str) -> ReversalTarget:
        """What V on a direct payment reverses: that payment. ActionRefused when it is not
        one this till received, or is already reversed."""
        self._signed_in()
        if self.reversals is None:
            raise ActionRefused("reversals need the relay (M-Pesa answers through it)")
        record = await self.store.c2b.get(self.shop_id, trans_id.strip().upper())
        if record is None:
            raise ActionRefused(f"no direct payment {trans_id} has reached this till")
        if record.reversed:
            raise ActionRefused(f"direct payment {record.trans_id} is already reversed")
        what = f"direct payment for sale {record.sale_ref}" if record.sale_ref else "no sale"
        return ReversalTarget(record.trans_id, record.amount, what)

    async def reverse_direct(self, trans_id: str, note: str) -> ReversalVerdict:
        """Ask M-Pesa to give a direct payment back (the rules of `reverse`)."""
        return await self._reverse(await self.direct_reversal_target(trans_id), note)

    async def _reverse(self, target: ReversalTarget, note: str) -> ReversalVerdict:
        if self.reversals is None:
            raise ActionRefused("reversals need the relay (M-Pesa answers through it)")
        verdict = await self.reversals.reverse(target.receipt, note)
        if verdict.refusal in (ReversalRefusal.BAD_NOTE, ReversalRefusal.MALFORMED):
            raise ManagerInputError("note", verdict.message)
        return verdict

    async def resolve(
        self,
        key: str,
        note: str,
        outcome: Resolution | None = None,
        receipt: str | None = None,
    ) -> ActionResult:
        """Mark a problem payment or record resolved with the manager's note (audited).

        With an `outcome` for a payment, the resolution is a real transition that summaries,
        history and exports follow: PAID (with the statement's `receipt`) makes it COMPLETED,
        NOT_PAID makes it FAILED (safe to charge again). ManagerInputError or ActionRefused,
        nothing changed, when that cannot be.
        """
        self._signed_in()
        note = note.strip() if isinstance(note, str) else ""
        if not note:
            raise ManagerInputError("note", "say what was done (for example: refunded by M-Pesa)")
        if len(note) > NOTE_MAX:
            raise ManagerInputError(
                "note", f"must be at most {NOTE_MAX} characters, got {len(note)}"
            )
        if _CONTROL.search(note):
            raise ManagerInputError("note", "must be one line of text without control characters")
        kind, number = parse_key(key)
        if outcome is Resolution.PAID:
            receipt = _check_receipt(receipt)
        elif receipt is not None:
            raise ManagerInputError("receipt", "a receipt goes only with 'paid'")
        if kind == "A":
            attempt = await self._attempt(number)
            blocked = self._resolve_blocked(attempt)
            if blocked is not None:
                raise ActionRefused(blocked)
            if outcome is None:
                async with self.store.write() as tx:
                    resolved = await self.store.attempts.resolve(tx, self.shop_id, attempt.id, note)
            else:
                resolved = await self._settle(attempt, outcome, receipt, note)
            detail = await self._attempt_detail(resolved)
        else:
            if outcome is not None:
                raise ManagerInputError("outcome", "paid / not paid is for a payment (A12)")
            problem = await self._record(number)
            if problem.resolved_at is not None:
                raise ActionRefused("It is already marked resolved.")
            try:
                async with self.store.write() as tx:
                    done = await self.store.problems.resolve(tx, self.shop_id, problem.id, note)
            except NotFoundError:
                raise ActionRefused("It was resolved meanwhile.") from None
            detail = await self._record_detail(done)
        return ActionResult(f"{detail.row.key} marked resolved.", detail)

    async def export_csv(self, filters: ProblemFilter) -> ExportResult:
        """Write the problem list under `filters` to a new CSV file in `export_dir` (readable
        by this user only). Phones are masked: an export leaves the till (email, USB), and a
        masked phone with the time, amount and receipt is enough to find a payment on the
        M-Pesa statement."""
        self._signed_in()
        stamp = self.clock.now().astimezone(KENYA_TZ).strftime("%Y%m%d-%H%M%S")
        path, descriptor = await asyncio.to_thread(_new_export_file, self.export_dir, stamp)
        rows = 0
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            async for row in self.lists.all_problems(filters):
                writer.writerow(csv_values(row))
                rows += 1
        async with self.store.write() as tx:
            await self.store.audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_EXPORT,
                shop_id=self.shop_id,
                detail={"rows": rows, "filter": filters.describe(), "file": path.name},
            )
        return ExportResult(path, rows)

    # ---- M-Pesa settings --------------------------------------------------------------------

    async def settings_view(self) -> SettingsView:
        self._signed_in()
        return await self._settings_view(await self.store.shops.require(self.shop_id))

    async def _settings_view(self, shop: Shop) -> SettingsView:
        return await settings_view(self.store, self.settings, shop)

    async def save_settings(self, form: SettingsForm) -> tuple[SettingsView, str]:
        """Validate the whole form, then save it (secrets through the vault) in one
        transaction. ManagerInputError names the first wrong field; nothing is saved then."""
        self._signed_in()
        try:
            mpesa_type = ShopType(form.mpesa_type.strip().lower())
        except ValueError:
            raise ManagerInputError("mpesa_type", "must be paybill, till or platform") from None
        secrets = ShopSecrets(
            consumer_key=_given(form.consumer_key),
            consumer_secret=_given(form.consumer_secret),
            passkey=_given(form.passkey),
        )
        current = await self.store.shops.require(self.shop_id)
        config = ShopConfig(
            id=self.shop_id,
            name=form.name,
            mpesa_type=mpesa_type,
            account_prefix=form.account_prefix,
            business_shortcode=form.business_shortcode.strip() or None,
            till_number=form.till_number.strip() or None,
            enabled=form.enabled,
        )
        # A shop on the platform's paybill has no credentials of its own: switching to it
        # removes the stored ones (the relay holds the platform's).
        clear = mpesa_type is ShopType.PLATFORM and bool(current.secret_fields)
        if form.enabled and self.settings.mode is Mode.PRODUCTION:
            insecure = [
                t
                for t in await self.store.tills.for_shop(self.shop_id)
                if not t.relay_url.startswith("https://")
            ]
            if insecure:
                raise ManagerInputError(
                    "relay_url",
                    f"production mode needs an HTTPS relay URL; till {insecure[0].id} uses "
                    f"{insecure[0].relay_url}: enrol it again with the https:// address",
                )
        initiator = _initiator_pair(form)
        try:
            async with self.store.write() as tx:
                saved = await self.store.shops.update(
                    tx, config, secrets, clear_secrets=clear, actor=Actor.MANAGER
                )
                if initiator is not None:
                    # After the update: the pair is sealed under the shortcode just saved.
                    await self.store.initiators.set(tx, self.shop_id, *initiator)
        except ShopConfigError as error:
            raise ManagerInputError(error.field, error.message) from None
        if saved == current and initiator is None:
            message = "Nothing changed."
        else:
            message = "Saved."
            if clear:
                message += " The shop's own credentials were removed (it uses the platform)."
            if saved.verification_status is VerificationStatus.PENDING:
                message += " Verify the credentials with M-Pesa (F6)."
        return await self._settings_view(saved), message

    async def enrol_from_file(self, path_text: str) -> tuple[SettingsView, str]:
        """Store the relay enrolment (or a rotated callback secret) from the file the relay
        wrote, like `smartduka enrol FILE`."""
        self._signed_in()
        raw_path = path_text.strip()
        if not raw_path:
            raise ManagerInputError("enrolment", "type the path of the relay's enrolment file")
        try:
            raw = await asyncio.to_thread(read_enrolment_file, raw_path)
            document = load_enrolment(raw)
        except EnrolmentError as error:
            raise ManagerInputError("enrolment", str(error)) from None
        if document.shop_id != self.shop_id:
            raise ManagerInputError(
                "enrolment",
                f"the file is for shop {document.shop_id!r}, not this shop ({self.shop_id})",
            )
        try:
            tills = await TillSetup(self.store, self.settings).enrol(document)
        except InputError as error:
            raise ManagerInputError("enrolment", f"{error.field}: {error.message}") from None
        except NotFoundError as error:
            raise ManagerInputError("enrolment", str(error)) from None
        names = ", ".join(f"{t.till_id} (kid {t.active_callback_kid})" for t in tills)
        message = (
            f"Enrolled: till {names} with {tills[0].relay_url}. The file holds secrets in "
            "plain text: delete it now."
        )
        return await self._settings_view(await self.store.shops.require(self.shop_id)), message

    async def verify_credentials(self) -> VerifyResult:
        """Ask Daraja for an OAuth token with the shop's consumer key and secret (not from a
        cache) and record the outcome and time. The passkey is only checked by a payment."""
        self._signed_in()
        shop = await self.store.shops.require(self.shop_id)
        if shop.mpesa_type is ShopType.PLATFORM:
            raise ActionRefused(
                "This shop uses the platform's paybill: the relay holds and checks those "
                "credentials."
            )
        try:
            credentials = await self.store.shops.credentials(self.shop_id)
        except ShopConfigError as error:
            raise ManagerInputError(error.field, f"{error.message}: save it first") from None
        app = DarajaCredentials(
            consumer_key=SecretStr(credentials.consumer_key.reveal()),
            consumer_secret=SecretStr(credentials.consumer_secret.reveal()),
        )
        client = DarajaClient.from_settings(self.settings, self.clock, transport=self._transport)
        status: VerificationStatus | None
        try:
            await client.check_credentials(app)
        except AuthenticationFailed:
            outcome, status = VerifyOutcome.REFUSED, VerificationStatus.FAILED
            message = (
                "M-Pesa refused the consumer key and secret. Copy them again from the Daraja "
                "portal (the app's Keys), save, and verify again."
            )
        except DarajaError as error:
            outcome, status = VerifyOutcome.UNREACHABLE, None
            message = f"M-Pesa could not be asked ({error.message}); nothing was recorded."
        else:
            outcome, status = VerifyOutcome.VERIFIED, VerificationStatus.VERIFIED
            message = (
                "M-Pesa accepted the consumer key and secret. The passkey is checked by the "
                "first payment."
            )
        finally:
            await client.aclose()
        async with self.store.write() as tx:
            if status is None:
                await self.store.audit.append(
                    tx,
                    actor=Actor.MANAGER,
                    action=AuditAction.SHOP_VERIFICATION_UNREACHABLE,
                    shop_id=self.shop_id,
                    detail={"reason": message},
                )
                shop = await self.store.shops.require(self.shop_id, tx=tx)
            else:
                shop = await self.store.shops.set_verification(
                    tx, self.shop_id, status, actor=Actor.MANAGER
                )
        return VerifyResult(outcome, message, await self._settings_view(shop))

    # ---- audit log -------------------------------------------------------------------------

    async def audit_page(
        self, filters: AuditFilter, before_id: int | None = None, limit: int = PAGE_SIZE
    ) -> AuditPage:
        self._signed_in()
        entries = await self.store.audit.search(
            self.shop_id,
            include_system=filters.include_till,
            actors=filters.actors,
            action_prefix=filters.action_prefix,
            since=filters.since,
            until=filters.until,
            attempt_id=filters.attempt_id,
            limit=limit + 1,
            before_id=before_id,
        )
        lines = tuple(audit_line(e) for e in entries[:limit])
        return AuditPage(lines, lines[-1].id if len(entries) > limit and lines else None)

    async def verify_chain(self) -> ChainVerdict:
        self._signed_in()
        checkpoint, unchecked = None, ""
        if self.chain_checkpoint is not None:
            try:
                checkpoint = await self.chain_checkpoint()
            except ConnectionError as error:
                unchecked = (
                    f" The relay's checkpoint could not be read ({error}), so a cut-off tail "
                    "would not show: check again when the relay is reachable."
                )
        report = await self.store.audit.verify_chain(checkpoint)
        if report.intact:
            message = f"The audit log is intact: {report.entries:,} entries, none altered."
            if report.checkpoint is not None:
                message += f" It matches the relay's checkpoint of entry {report.checkpoint.seq}."
            message += unchecked
        else:
            message = (
                f"The audit log is BROKEN at entry {report.first_broken_id} "
                f"({report.state.value}): {report.reason}. "
                f"The {report.entries:,} entries before it are intact. Keep a copy of the "
                "database and report it."
            )
        return ChainVerdict(report.intact, report.entries, report.first_broken_id, message)

    # ---- summary ---------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock.now().astimezone(KENYA_TZ).date()

    async def daily_summary(self, day: date | None = None) -> DailySummary:
        self._signed_in()
        return await summarise_day(self.store, self.shop_id, day or self.today())

    # ---- direct payments and the M-Pesa statement ------------------------------------------

    async def direct_payments(self) -> DirectPaymentsView:
        """Direct payments no sale holds, newest first, and the last pull per shortcode."""
        self._signed_in()
        shop = await self.store.shops.require(self.shop_id)
        codes = (shop.business_shortcode,) if shop.business_shortcode else ()
        return await direct_payments_view(self.store, self.shop_id, codes, self.clock.now())

    async def pull_statement(self, progress: Progress | None = None) -> PullReport:
        """Pull the shortcode's M-Pesa statement now; ActionRefused with the reason when it
        cannot be pulled or M-Pesa's answer cannot be used (then nothing was taken)."""
        from smartduka_tui.payments.service import PaymentEngine

        self._signed_in()
        pull = (
            statement_pull_for(self.payments, self.shop_receipts)
            if isinstance(self.payments, PaymentEngine)
            else None
        )
        if pull is None:
            raise ActionRefused("This till has no shortcode of its own to pull the statement of.")
        try:
            return await pull.pull(progress=progress)
        except PullFailed as error:
            raise ActionRefused(f"Pull failed: {error.message}") from None

    @classmethod
    def for_engine(cls, engine: Any, **options: Any) -> ManagerService:
        """The manager service beside a running `PaymentEngine` (its store, settings, clock,
        shop and till), able to re-check payments through it."""
        return cls(
            engine.store,
            engine.settings,
            engine.clock,
            shop_id=engine.shop_id,
            till_id=engine.till_id,
            payments=engine,
            **options,
        )


def _given(secret: Secret | None) -> Secret | None:
    if secret is None:
        return None
    value = secret.reveal().strip()
    return Secret(value) if value else None


def _initiator_pair(form: SettingsForm) -> tuple[Secret, Secret] | None:
    """The initiator name and password typed, or None when neither was. One without the other
    is refused: the password is never shown, so the pair is replaced together."""
    name = _given(form.initiator_name)
    # The password as typed: spaces may be part of it (blank means not typed).
    password = form.initiator_password
    if password is not None and not password.reveal().strip():
        password = None
    if name is None and password is None:
        return None
    if name is None:
        raise ManagerInputError("initiator_name", "type the initiator name with its password")
    if password is None:
        raise ManagerInputError("initiator_password", "type the initiator password with its name")
    return name, password


def _recheck_message(before: Attempt, after: Attempt, detail: ProblemDetail) -> str:
    last = detail.timeline[-1].text if detail.timeline else ""
    if after.state is not before.state:
        late = " (a late payment)" if after.flags & AttemptFlag.LATE else ""
        return f"M-Pesa's answer moved it from {before.state.value} to {after.state.value}{late}."
    return f"Asked M-Pesa: {last}."


def _new_export_file(folder: Path, stamp: str) -> tuple[Path, int]:
    """A new, private (0600) CSV file in `folder` (made 0700 if new), never overwriting one."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        path = folder / f"problem-payments-{stamp}{suffix}.csv"
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            number += 1
