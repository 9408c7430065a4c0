"""The payment engine: one shop, one till, every attempt moved only by evidence.

`PaymentEngine` implements `api.PaymentService`. Its promises (DESIGN.md section 3):

- An attempt row, keyed by an idempotency key derived from shop, till, sale and attempt number,
  is committed before its STK push goes out; a push is never repeated. CREATED rows found at
  start-up become UNKNOWN.
- Every state change is `machine.decide` applied to one piece of evidence, written with its
  previous state, cause and time in the same transaction as its audit entry. Evidence that
  changes nothing is logged in the audit too.
- Work on one attempt (its push, a callback, a query) is serialised by a per-attempt lock, so
  a callback that overtakes its own push response waits for it instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from smartduka_tui import faults
from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.limits import TokenBucket, whole_seconds
from smartduka_tui.model import (
    Actor,
    AttemptFlag,
    AttemptState,
    AuditAction,
    ConfirmingClaim,
    ProblemKind,
)
from smartduka_tui.mpesa import callback_path
from smartduka_tui.mpesa.kenya_time import kenya_clock
from smartduka_tui.mpesa.models import CallbackParseError, StkCallback, parse_stk_callback
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.payments.api import (
    AttemptId,
    CallbackEvent,
    CallbackOutcome,
    CallbackResult,
    PaymentListener,
    PaymentRefused,
    PaymentView,
    ReconcileReport,
    RefusalReason,
    RetryBlock,
)
from smartduka_tui.payments.codes import Outcome, advise
from smartduka_tui.payments.gateway import (
    DarajaGateway,
    NotReady,
    PushOrder,
    PushOutcomeUnknown,
    PushRejected,
    QueryAnswer,
    QueryKind,
    Unreachable,
)
from smartduka_tui.payments.inputs import (
    account_reference,
    check_amount,
    check_phone,
    check_sale_ref,
)
from smartduka_tui.payments.machine import Cause, Decision, Evidence, decide
from smartduka_tui.payments.monitor import Monitor
from smartduka_tui.payments.reconciler import Reconciler
from smartduka_tui.payments.sales import SaleDesk, record_paid_attempt
from smartduka_tui.payments.shop_receipts import ShopReceipts
from smartduka_tui.payments.views import (
    UNBOUND_SUCCESS,
    build_view,
    needs_no_sms_confirmation,
    retry_rule,
)
from smartduka_tui.store.db import WriteTx
from smartduka_tui.store.errors import IdempotencyKeyExistsError, PhoneBusyError
from smartduka_tui.store.records import Attempt, AttemptFilter, NewAttempt, Shop, TillCredentials
from smartduka_tui.store.store import Store

log = logging.getLogger(__name__)

TRANSACTION_DESC = "SmartDuka"
CUSTOMER_SMS_REASON = (
    "The customer reports an M-Pesa confirmation SMS for this payment: find its receipt on the "
    "statement and resolve it (paid, receipt X) before anyone charges again."
)
_ACTOR_FOR_CAUSE = {
    Cause.PUSH: Actor.SYSTEM,
    Cause.CALLBACK: Actor.CALLBACK,
    Cause.QUERY: Actor.QUERY,
    Cause.EXPIRY: Actor.EXPIRY,
    Cause.CASHIER: Actor.CASHIER,
    Cause.MANAGER: Actor.MANAGER,
    Cause.STARTUP: Actor.SYSTEM,
}


def idempotency_key(shop_id: str, till_id: str, sale_ref: str, attempt_number: int) -> str:
    """The same (shop, till, sale, attempt number) always gives the same key, so a command
    re-run after a crash finds the row it wrote instead of writing (and pushing) another."""
    text = f"{shop_id}\n{till_id}\n{sale_ref}\n{attempt_number}"
    return "sk1-" + hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a piece of evidence did: the attempt now, and whether it moved (`answer`: the STK
    query's answer, when a query brought the evidence)."""

    attempt: Attempt
    decision: Decision
    answer: QueryAnswer | None = None


async def enrolled_till(store: Store, shop: Shop, till_id: str | None = None) -> TillCredentials:
    """This shop's till as enrolled here: the one named, or the only one.

    Raises PaymentRefused(SHOP_NOT_READY) saying what is missing.
    """
    if till_id is None:
        tills = await store.tills.for_shop(shop.id)
        if len(tills) != 1:
            raise PaymentRefused(
                RefusalReason.SHOP_NOT_READY,
                f"Shop {shop.id!r} has {len(tills)} tills enrolled here; "
                + ("name the till." if tills else "enrol this till first."),
            )
        till_id = tills[0].id
    try:
        return await store.tills.credentials(shop.id, till_id)
    except LookupError as error:
        raise PaymentRefused(RefusalReason.SHOP_NOT_READY, str(error)) from None


class PaymentEngine:
    """The payment service for one shop and one till. Open with `PaymentEngine.open`."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        clock: Clock,
        shop: Shop,
        till: TillCredentials,
        gateway: DarajaGateway,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.shop = shop
        self.till = till
        self.gateway = gateway
        self.shop_id = shop.id
        self.till_id = till.till_id
        self.callback_base_url = settings.relay_url_for(till.relay_url)
        self.monitor = Monitor(store, settings, clock, shop.id, till.till_id)
        self._listeners: list[PaymentListener] = []
        # Weak: an attempt's lock lives while someone holds or awaits it, and a lock no one
        # holds is as good as a new one. A plain dict kept one for every attempt ever made.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._pushes: set[asyncio.Task[Attempt]] = set()
        per_minute = settings.limits.pushes_per_minute
        self.push_bucket = TokenBucket(clock, per_minute, per_minute / 60)
        self._reconciler: Reconciler | None = None
        self.sales = SaleDesk(store, shop.id, till.till_id, clock)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        store: Store,
        settings: Settings,
        clock: Clock,
        gateway: DarajaGateway,
        shop: Shop,
        *,
        till_id: str | None = None,
    ) -> PaymentEngine:
        """The engine for `shop` and its till (the only one enrolled, unless named).

        Raises PaymentRefused(SHOP_NOT_READY) when the till is not enrolled.
        """
        till = await enrolled_till(store, shop, till_id)
        return cls(
            store=store, settings=settings, clock=clock, shop=shop, till=till, gateway=gateway
        )

    async def start(
        self, *, run_reconciler: bool = True, shop_receipts: ShopReceipts | None = None
    ) -> None:
        """Recover from a crash (CREATED -> UNKNOWN; sales left open become abandoned), seed
        the push limit from recent pushes, and (unless told not to) run the reconciler in the
        background; its scheduled pull asks `shop_receipts`, the shop's receipt index (None:
        as a till with no relay)."""
        await self.recover()
        await self.sales.abandon_left_open()
        await self._seed_push_bucket()
        self._reconciler = Reconciler(self, shop_receipts)
        if run_reconciler:
            self._reconciler.start()

    async def close(self) -> None:
        """Stop the reconciler and wait for pushes in flight (never cancelled half way)."""
        if self._reconciler is not None:
            await self._reconciler.stop()
        if self._pushes:
            await asyncio.gather(*self._pushes, return_exceptions=True)

    async def recover(self) -> list[Attempt]:
        """CREATED rows at start-up: their push may have gone out. UNKNOWN, never re-pushed."""
        moved = []
        for attempt in await self.store.attempts.live(
            self.shop_id, self.till_id, {AttemptState.CREATED}
        ):
            held = self._locks.get(attempt.attempt_ref)
            if held is not None and held.locked():
                continue
            verdict = await self.apply_evidence(
                attempt,
                Evidence.PUSH_OUTCOME_UNKNOWN,
                Cause.STARTUP,
                result_desc="Found unsent or unanswered at start-up",
            )
            moved.append(verdict.attempt)
        return moved

    async def _seed_push_bucket(self) -> None:
        per_minute = self.settings.limits.pushes_per_minute
        since = self.clock.now() - timedelta(minutes=1)
        recent = await self.store.attempts.history(
            self.shop_id,
            AttemptFilter(since=since, till_id=self.till_id, include_resolved=True),
            limit=min(1000, per_minute + 1),
        )
        # The limit outlives a restart: pushes of the last minute count against it.
        self.push_bucket = TokenBucket(
            self.clock, per_minute, per_minute / 60, used=len(recent.items)
        )

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: PaymentListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def _notify(self, attempt: Attempt) -> None:
        if not self._listeners:
            return
        view = await self.view(attempt)
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("a payment listener failed")

    # ------------------------------------------------------------------ reads

    def lock_for(self, attempt_ref: str) -> asyncio.Lock:
        return self._locks.setdefault(attempt_ref, asyncio.Lock())

    async def view(self, attempt: Attempt) -> PaymentView:
        """The attempt as it is now: one query (its sale's rows, the attempt's among them)."""
        sale = await self.store.attempts.for_sale(self.shop_id, attempt.sale_ref)
        current = next((a for a in sale if a.id == attempt.id), attempt)
        return build_view(current, sale, self.clock.now(), self.settings)

    async def _attempt(self, attempt_id: AttemptId) -> Attempt:
        attempt = None
        if str(attempt_id).isdigit():
            attempt = await self.store.attempts.get(self.shop_id, int(attempt_id))
        if attempt is None or attempt.till_id != self.till_id:
            raise PaymentRefused(
                RefusalReason.NO_SUCH_ATTEMPT, f"There is no payment {attempt_id!r} on this till."
            )
        return attempt

    async def get(self, attempt_id: AttemptId) -> PaymentView:
        return await self.view(await self._attempt(attempt_id))

    async def sale_attempts(self, sale_ref: str) -> list[PaymentView]:
        """Every attempt of one sale at this till, oldest first (empty if the sale is unknown)."""
        sale = await self.store.attempts.for_sale(self.shop_id, sale_ref)
        return [await self.view(a) for a in sale if a.till_id == self.till_id]

    async def next_sale_ref(self, holder: str = "till") -> str:
        return await self.sales.numbers.next_free(holder)

    async def recent_phones(self, limit: int = 5) -> list[str]:
        page = await self.store.attempts.history(
            self.shop_id, AttemptFilter(till_id=self.till_id, include_resolved=True), limit=200
        )
        return list(dict.fromkeys(attempt.phone for attempt in page.items))[:limit]

    async def recent_payments(self, limit: int = 50) -> list[PaymentView]:
        live = sorted(
            await self.live_attempts(), key=lambda a: (a.created_at, a.sale_ref), reverse=True
        )
        page = await self.store.attempts.history(
            self.shop_id, AttemptFilter(till_id=self.till_id, include_resolved=True), limit=limit
        )
        seen = {attempt.id for attempt in live}
        ended = [attempt for attempt in page.items if attempt.id not in seen]
        return [await self.view(attempt) for attempt in [*live, *ended]]

    async def awaiting_count(self) -> int:
        return len(await self.store.attempts.live(self.shop_id, self.till_id))

    # ------------------------------------------------------------------ starting a payment

    async def start_payment(self, sale_ref: str, amount: int, phone: str) -> PaymentView:
        sale_ref = check_sale_ref(sale_ref, self.shop.account_prefix)
        amount = check_amount(amount)
        phone = check_phone(phone)
        sale = await self.store.attempts.for_sale(self.shop_id, sale_ref)
        if sale:
            latest = max(sale, key=lambda a: a.attempt_number)
            if latest.amount != amount or latest.phone != phone:
                raise PaymentRefused(
                    RefusalReason.SALE_REF_CONFLICT,
                    f"Sale {sale_ref} was already sent for KES {latest.amount:,} to "
                    f"{mask_phone(latest.phone)}; use a new sale number for another amount or "
                    "phone, or retry the sale.",
                )
            return await self.view(latest)
        return await self._new_attempt(sale_ref, amount, phone, attempt_number=1)

    async def retry(
        self, sale_ref: str, phone: str | None = None, customer_got_no_sms: bool = False
    ) -> PaymentView:
        sale_ref = check_sale_ref(sale_ref, self.shop.account_prefix)
        sale = await self.store.attempts.for_sale(self.shop_id, sale_ref)
        if not sale:
            raise PaymentRefused(
                RefusalReason.NO_SUCH_SALE, f"There is no payment for sale {sale_ref} to retry."
            )
        latest = max(sale, key=lambda a: a.attempt_number)
        new_phone = latest.phone if phone is None else check_phone(phone)
        rule = retry_rule(latest, sale, self.clock.now(), self.settings, phone=new_phone)
        if rule.block is RetryBlock.WAIT:
            assert rule.not_before is not None
            wait = (rule.not_before - self.clock.now()).total_seconds()
            raise PaymentRefused(RefusalReason.RETRY_TOO_SOON, rule.message, whole_seconds(wait))
        if rule.block is RetryBlock.NEEDS_NO_SMS_CONFIRMATION:
            if not customer_got_no_sms:
                raise PaymentRefused(RefusalReason.NEEDS_NO_SMS_CONFIRMATION, rule.message)
            if rule.not_before is not None:
                wait = (rule.not_before - self.clock.now()).total_seconds()
                raise PaymentRefused(
                    RefusalReason.RETRY_TOO_SOON,
                    f"You can retry at {kenya_clock(rule.not_before)} (Kenya time).",
                    whole_seconds(wait),
                )
        elif rule.block is RetryBlock.PAID:
            raise PaymentRefused(RefusalReason.ALREADY_PAID, rule.message)
        elif not rule.allowed_now:
            raise PaymentRefused(RefusalReason.RETRY_NOT_ALLOWED, rule.message)
        await self._ask_before_retry(latest)
        confirmed = rule.needs_no_sms_confirmation and customer_got_no_sms
        return await self._new_attempt(
            sale_ref,
            latest.amount,
            new_phone,
            attempt_number=latest.attempt_number + 1,
            retry_of=latest,
            no_sms_confirmed=confirmed,
        )

    async def _ask_before_retry(self, previous: Attempt) -> None:
        """Ask M-Pesa once about the previous attempt before a new prompt goes out: a failure
        it was told about (by a callback, maybe rewritten) may in truth be a payment.

        Raises PaymentRefused when the answer is that it was paid, or no answer came.
        """
        verdict = await self.query_and_apply(previous, asked_by=Cause.CASHIER, before_retry=True)
        if verdict is None:
            return  # no CheckoutRequestID: nothing to ask (the no-SMS rule covers it)
        if verdict.attempt.state is AttemptState.COMPLETED:
            raise PaymentRefused(
                RefusalReason.ALREADY_PAID,
                "M-Pesa says the previous request was paid after all: this sale is paid.",
            )
        if verdict.attempt.is_live or verdict.attempt.state is AttemptState.NEEDS_REVIEW:
            raise PaymentRefused(
                RefusalReason.RETRY_NOT_ALLOWED,
                "M-Pesa has not settled the previous request; wait for it before charging again.",
            )
        if verdict.answer is not None and verdict.answer.kind is QueryKind.PENDING:
            raise PaymentRefused(
                RefusalReason.RETRY_NOT_ALLOWED,
                "M-Pesa is still processing the previous request; wait for it before charging "
                "again.",
            )
        if verdict.answer is not None and verdict.answer.kind is QueryKind.NO_ANSWER:
            raise PaymentRefused(
                RefusalReason.DARAJA_UNREACHABLE,
                "M-Pesa could not confirm the previous request just now; try again in a moment.",
            )

    async def _new_attempt(
        self,
        sale_ref: str,
        amount: int,
        phone: str,
        *,
        attempt_number: int,
        retry_of: Attempt | None = None,
        no_sms_confirmed: bool = False,
    ) -> PaymentView:
        reference = account_reference(self.shop.account_prefix, sale_ref)
        self._check_shop_ready()
        live = await self.store.attempts.live_for_phone(self.shop_id, self.till_id, phone)
        if live is not None:
            raise self._phone_busy(live)
        wait = self.push_bucket.try_take()
        if wait > 0:
            raise PaymentRefused(
                RefusalReason.RATE_LIMITED,
                f"This till has sent {self.settings.limits.pushes_per_minute} payment requests "
                "in the last minute; wait a moment.",
                whole_seconds(wait),
            )
        try:
            await self.gateway.prepare()
        except (NotReady, Unreachable) as error:
            self.push_bucket.give_back()
            reason = (
                RefusalReason.SHOP_NOT_READY
                if isinstance(error, NotReady)
                else RefusalReason.DARAJA_UNREACHABLE
            )
            raise PaymentRefused(reason, error.message) from None

        secret = self.till.active_callback_secret.reveal()
        signed = callback_path.sign_new_attempt(
            secret, self.shop_id, self.till_id, self.till.active_callback_kid
        )
        lock = self.lock_for(signed.attempt_ref)
        await lock.acquire()
        try:
            try:
                async with self.store.write() as tx:
                    attempt = await self.store.attempts.create(
                        tx,
                        NewAttempt(
                            shop_id=self.shop_id,
                            till_id=self.till_id,
                            sale_ref=sale_ref,
                            amount=amount,
                            phone=phone,
                            idempotency_key=idempotency_key(
                                self.shop_id, self.till_id, sale_ref, attempt_number
                            ),
                            attempt_ref=signed.attempt_ref,
                            expires_at=self.clock.now()
                            + timedelta(seconds=self.settings.timings.attempt_expiry_s),
                        ),
                    )
                    if retry_of is not None:
                        await self.store.audit.append(
                            tx,
                            actor=Actor.CASHIER,
                            action=AuditAction.ATTEMPT_RETRY,
                            shop_id=self.shop_id,
                            attempt_id=attempt.id,
                            detail={
                                "retry_of": retry_of.id,
                                "previous_state": retry_of.state.value,
                                "previous_result_code": retry_of.result_code,
                                "customer_got_no_sms": no_sms_confirmed,
                                "same_phone": phone == retry_of.phone,
                            },
                        )
            except IdempotencyKeyExistsError as exists:
                self.push_bucket.give_back()
                return await self.view(exists.existing)
            except PhoneBusyError as busy:
                self.push_bucket.give_back()
                raise self._phone_busy(busy.existing) from None
            faults.fault_point(faults.AFTER_ATTEMPT_COMMIT)
            await self._notify(attempt)
            order = PushOrder(
                amount=amount,
                phone=phone,
                account_reference=reference,
                description=TRANSACTION_DESC,
                callback_url=self.callback_base_url + signed.path(),
            )
            task = asyncio.create_task(self._push(attempt, order, lock))
        except BaseException:
            lock.release()
            raise
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)
        # The push belongs to the engine: a cancelled caller (a screen closed) leaves it running.
        return await self.view(await asyncio.shield(task))

    async def _push(self, attempt: Attempt, order: PushOrder, lock: asyncio.Lock) -> Attempt:
        """Send the push and record its answer; releases the attempt's lock when done."""
        try:
            sent_at = self.clock.now()
            fields: dict[str, Any]
            try:
                accepted = await self.gateway.push(order)
            except PushRejected as rejected:
                evidence = Evidence.PUSH_REFUSED
                fields = {"result_code": rejected.code, "result_desc": rejected.message}
            except PushOutcomeUnknown as unknown:
                evidence = Evidence.PUSH_OUTCOME_UNKNOWN
                fields = {"result_desc": unknown.message}
            else:
                evidence = Evidence.PUSH_ACCEPTED
                fields = {
                    "merchant_request_id": accepted.merchant_request_id,
                    "checkout_request_id": accepted.checkout_request_id,
                }
            faults.fault_point(faults.BEFORE_RESPONSE_COMMIT)
            verdict = await self.apply_evidence(
                attempt, evidence, Cause.PUSH, push_sent_at=sent_at, **fields
            )
            if evidence is Evidence.PUSH_ACCEPTED and self._reconciler is not None:
                self._reconciler.wake()  # it plans its next sleep to this countdown's end
            return verdict.attempt
        finally:
            lock.release()

    def _check_shop_ready(self) -> None:
        if not self.shop.enabled:
            raise PaymentRefused(
                RefusalReason.SHOP_NOT_READY,
                "M-Pesa payments are switched off for this shop (a manager can enable them).",
            )

    def _phone_busy(self, live: Attempt) -> PaymentRefused:
        return PaymentRefused(
            RefusalReason.PHONE_BUSY,
            f"{mask_phone(live.phone)} already has a payment request waiting (sale "
            f"{live.sale_ref}); wait for it to finish.",
        )

    # ------------------------------------------------------------------ evidence

    async def apply_evidence(
        self,
        attempt: Attempt,
        evidence: Evidence,
        cause: Cause,
        *,
        detail: Mapping[str, Any] | None = None,
        add_flags: AttemptFlag = AttemptFlag.NONE,
        problem: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Verdict:
        """Decide and write one piece of evidence (one transaction with its audit entry).

        `problem`: evidence that disagrees with the attempt, recorded for the manager in the
        same transaction (and the attempt flagged suspicious when it moves nothing, so the
        problem list shows it).
        """
        async with self.store.write() as tx:
            current = await self.store.attempts.get(self.shop_id, attempt.id, tx=tx)
            assert current is not None
            sale = await self.store.attempts.for_sale(self.shop_id, current.sale_ref, tx=tx)
            paid_by_other = any(
                a.state is AttemptState.COMPLETED and a.id != current.id for a in sale
            )
            decision = decide(evidence, current.state, sale_paid_by_other=paid_by_other)
            record = {"evidence": evidence.value, "cause": cause.value, **(detail or {})}
            if decision.to is None:
                await self.store.audit.append(
                    tx,
                    actor=_ACTOR_FOR_CAUSE[cause],
                    action=AuditAction.EVIDENCE_NO_CHANGE,
                    shop_id=self.shop_id,
                    attempt_id=current.id,
                    detail={**record, "state": current.state.value},
                )
                if problem is not None:
                    add_flags |= AttemptFlag.SUSPICIOUS
                    await self._problem(tx, current, problem)
                if add_flags:
                    current = await self.store.attempts.add_flags(
                        tx, self.shop_id, current.id, add_flags, _ACTOR_FOR_CAUSE[cause]
                    )
                return Verdict(current, decision)
            flags = add_flags
            if decision.late:
                flags |= AttemptFlag.LATE
            if decision.duplicate_payment:
                flags |= AttemptFlag.DUPLICATE_PAYMENT
            kept = {name: value for name, value in fields.items() if value is not None}
            if current.checkout_request_id is not None:
                kept.pop("checkout_request_id", None)
            if (
                decision.to is AttemptState.COMPLETED
                and (kept.get("receipt_number") or current.receipt_number) is None
            ):
                flags |= AttemptFlag.RECEIPT_PENDING
            if decision.to is AttemptState.NEEDS_REVIEW:
                reason = (detail or {}).get("review_reason")
                if isinstance(reason, str):
                    kept["review_reason"] = reason
            result = await self.store.attempts.transition(
                tx,
                self.shop_id,
                current.id,
                {current.state},
                decision.to,
                _ACTOR_FOR_CAUSE[cause],
                add_flags=flags,
                detail=record,
                **kept,
            )
            moved = result.attempt
            if moved.state is AttemptState.COMPLETED and current.state is not moved.state:
                # The sale's M-Pesa tender, in the transaction that completes the attempt.
                await record_paid_attempt(self.store, tx, moved, _ACTOR_FOR_CAUSE[cause])
            if decision.duplicate_payment:
                await self.store.problems.record(
                    tx,
                    self.shop_id,
                    ProblemKind.SUSPICIOUS_PATTERN,
                    {
                        "pattern": "duplicate_payment",
                        "sale_ref": moved.sale_ref,
                        "attempt_id": moved.id,
                        "paid_by": [a.id for a in sale if a.state is AttemptState.COMPLETED],
                        "amount": moved.amount,
                    },
                    till_id=self.till_id,
                )
            if problem is not None:
                await self._problem(tx, moved, problem)
        await self._notify(moved)
        if moved.state is AttemptState.FAILED:
            await self.monitor.after_failure(moved)
        return Verdict(moved, decision)

    async def _problem(self, tx: WriteTx, attempt: Attempt, detail: Mapping[str, Any]) -> None:
        """A callback that disagrees with Daraja's own word, kept for the manager."""
        await self.store.problems.record(
            tx,
            self.shop_id,
            ProblemKind.SUSPICIOUS_PATTERN,
            {"attempt_id": attempt.id, "sale_ref": attempt.sale_ref, **detail},
            till_id=self.till_id,
        )

    def evidence_from_query(self, answer: QueryAnswer, *, confirming: bool) -> Evidence:
        """An STK query's answer as evidence; `confirming` when it checks a success callback."""
        if answer.kind is not QueryKind.RESULT or answer.result_code is None:
            return Evidence.CONFIRMATION_INCONCLUSIVE if confirming else Evidence.QUERY_INCONCLUSIVE
        advice = advise(answer.result_code, answer.result_desc)
        if confirming:
            return (
                Evidence.CONFIRMED_SUCCESS
                if advice.outcome is Outcome.PAID
                else Evidence.CONFIRMATION_CONTRADICTED
            )
        if advice.outcome is Outcome.PAID:
            return Evidence.QUERY_SUCCESS
        if advice.known and advice.outcome is not Outcome.PENDING:
            return Evidence.QUERY_FAILURE
        return Evidence.QUERY_INCONCLUSIVE

    async def query_and_apply(
        self, attempt: Attempt, *, asked_by: Cause, before_retry: bool = False
    ) -> Verdict | None:
        """Query M-Pesa about `attempt` with its own CheckoutRequestID (holding its lock) and
        apply the answer; a callback's claim awaiting confirmation is settled by it.

        Returns None when there is nothing to query (no CheckoutRequestID of this till's own).
        """
        async with self.lock_for(attempt.attempt_ref):
            current = await self.store.attempts.get(self.shop_id, attempt.id)
            assert current is not None
            if current.checkout_request_id is None or current.state is AttemptState.CREATED:
                return None
            answer = await self.gateway.query(current.checkout_request_id)
            claim = current.confirming
            evidence = self.evidence_from_query(answer, confirming=claim is ConfirmingClaim.SUCCESS)
            fields: dict[str, Any] = {}
            if answer.kind is QueryKind.RESULT:
                fields = {"result_code": answer.result_code, "result_desc": answer.result_desc}
            if evidence is Evidence.CONFIRMED_SUCCESS:
                fields["receipt_number"] = current.confirming_receipt
            detail: dict[str, Any] = {
                "asked_by": asked_by.value,
                "query": answer.kind.value,
                "query_code": answer.result_code,
            }
            if before_retry:
                detail["before_retry"] = True
            verdict = await self.apply_evidence(
                current,
                evidence,
                Cause.QUERY,
                detail=detail,
                problem=_contradiction(claim, current.confirming_code, evidence, answer),
                **fields,
            )
            if claim is not None and evidence not in _INCONCLUSIVE:
                await self._end_confirmation(verdict.attempt, answer)
                moved = await self.store.attempts.get(self.shop_id, attempt.id)
                assert moved is not None
                verdict = Verdict(moved, verdict.decision)
            return Verdict(verdict.attempt, verdict.decision, answer)

    async def _end_confirmation(self, attempt: Attempt, answer: QueryAnswer) -> None:
        async with self.store.write() as tx:
            await self.store.attempts.end_confirmation(
                tx,
                self.shop_id,
                attempt.id,
                actor=Actor.QUERY,
                action=AuditAction.EVIDENCE_CONFIRMATION_SETTLED,
                detail={"query_code": answer.result_code},
            )

    async def check_now(self, attempt_id: AttemptId) -> PaymentView:
        attempt = await self._attempt(attempt_id)
        verdict = await self.query_and_apply(attempt, asked_by=Cause.CASHIER)
        return await self.view(verdict.attempt if verdict else attempt)

    async def report_customer_sms(self, attempt_id: AttemptId) -> PaymentView:
        attempt = await self._attempt(attempt_id)
        if needs_no_sms_confirmation(attempt):
            async with self.lock_for(attempt.attempt_ref):
                verdict = await self.apply_evidence(
                    attempt,
                    Evidence.CUSTOMER_GOT_SMS,
                    Cause.CASHIER,
                    detail={"review_reason": CUSTOMER_SMS_REASON},
                )
            attempt = verdict.attempt
        return await self.view(attempt)

    async def stop_waiting(self, attempt_id: AttemptId) -> PaymentView:
        attempt = await self._attempt(attempt_id)
        if attempt.is_live:
            async with self.store.write() as tx:
                attempt = await self.store.attempts.hand_over(
                    tx,
                    self.shop_id,
                    attempt.id,
                    action=AuditAction.ATTEMPT_HANDED_TO_RECONCILER,
                    actor=Actor.CASHIER,
                )
            if self._reconciler is not None:
                self._reconciler.wake()
            await self._notify(attempt)
        return await self.view(attempt)

    # ------------------------------------------------------------------ callbacks

    async def apply_callback(self, event: CallbackEvent) -> CallbackResult:
        if event.shop_id != self.shop_id or event.till_id != self.till_id:
            await self._security_event(
                AuditAction.CALLBACK_FOREIGN,
                {"shop_id": event.shop_id, "till_id": event.till_id},
            )
            return CallbackResult(outcome=CallbackOutcome.FOREIGN)
        try:
            callback = parse_stk_callback(event.body)
        except CallbackParseError as error:
            async with self.store.write() as tx:
                await self.store.problems.record(
                    tx,
                    self.shop_id,
                    ProblemKind.UNAPPLIED_EVENT,
                    {"attempt_ref": event.attempt_ref, "reason": str(error)},
                    till_id=self.till_id,
                )
            return CallbackResult(outcome=CallbackOutcome.MALFORMED)
        attempt = await self.store.attempts.by_attempt_ref(self.shop_id, event.attempt_ref)
        if attempt is None or attempt.till_id != self.till_id:
            await self.monitor.unmatched_callback(event.attempt_ref, callback)
            return CallbackResult(outcome=CallbackOutcome.UNMATCHED)
        async with self.lock_for(attempt.attempt_ref):
            return await self._apply_callback_locked(attempt, callback)

    async def _apply_callback_locked(
        self, attempt: Attempt, callback: StkCallback
    ) -> CallbackResult:
        """A callback is a hint: money state moves only on what ties it to this attempt (the
        CheckoutRequestID from this till's own push response), and with confirmation on only
        on what an STK query with that id says. The id in a callback body is never used."""
        current = await self.store.attempts.get(self.shop_id, attempt.id)
        assert current is not None
        mismatch = _mismatch(current, callback)
        advice = advise(callback.code_key, callback.description)
        fields: dict[str, Any] = {
            "result_code": callback.code_key,
            "result_desc": callback.description,
        }
        detail: dict[str, Any] = {
            "callback_code": callback.code_key,
            "callback_checkout_request_id": callback.checkout_request_id,
        }
        if mismatch is not None or not advice.known:
            reason = mismatch or f"unknown result code {callback.code_key}"
            detail["review_reason"] = f"The callback disagrees with the attempt: {reason}."
            verdict = await self.apply_evidence(
                current,
                Evidence.CALLBACK_SUSPECT,
                Cause.CALLBACK,
                detail=detail,
                problem={"pattern": "callback_disagrees", "reason": reason},
                **fields,
            )
            return await self._result(verdict, CallbackOutcome.NEEDS_REVIEW)
        if advice.outcome is not Outcome.PAID:
            if current.state is AttemptState.COMPLETED:
                verdict = await self.apply_evidence(
                    current,
                    Evidence.CALLBACK_FAILURE,
                    Cause.CALLBACK,
                    detail=detail,
                    problem={
                        "pattern": "failure_after_paid",
                        "callback_code": callback.code_key,
                        "reason": "A failure callback arrived for an attempt already paid.",
                    },
                )
                return await self._result(verdict, CallbackOutcome.NO_CHANGE)
            if (
                self.settings.confirm_by_query
                and current.checkout_request_id is not None
                and current.state is AttemptState.PENDING
            ):
                return await self._confirm(current, ConfirmingClaim.FAILURE, callback, detail)
            verdict = await self.apply_evidence(
                current, Evidence.CALLBACK_FAILURE, Cause.CALLBACK, detail=detail, **fields
            )
            return await self._result(verdict, CallbackOutcome.APPLIED)
        fields["receipt_number"] = callback.receipt
        detail["receipt"] = callback.receipt
        unbound = await self._unbound_reason(current, callback)
        if unbound is not None:
            detail["review_reason"] = f"{UNBOUND_SUCCESS} ({unbound})"
            verdict = await self.apply_evidence(
                current,
                Evidence.SUCCESS_UNBOUND,
                Cause.CALLBACK,
                detail=detail,
                problem={"pattern": "success_not_bound", "reason": unbound},
            )
            return await self._result(verdict, CallbackOutcome.NEEDS_REVIEW)
        if current.state is AttemptState.COMPLETED:
            return await self._success_for_completed(current, callback, detail)
        if not self.settings.confirm_by_query:
            verdict = await self.apply_evidence(
                current, Evidence.CALLBACK_SUCCESS, Cause.CALLBACK, detail=detail, **fields
            )
            return await self._result(verdict, CallbackOutcome.APPLIED)
        return await self._confirm(current, ConfirmingClaim.SUCCESS, callback, detail)

    async def _unbound_reason(self, attempt: Attempt, callback: StkCallback) -> str | None:
        """Why a success callback cannot be tied to `attempt`, or None (DESIGN.md section 10)."""
        if callback.receipt is not None:
            holders = await self.store.attempts.by_receipt(self.shop_id, callback.receipt)
            other = next((a for a in holders if a.id != attempt.id), None)
            if other is not None:
                return f"receipt {callback.receipt} already pays sale {other.sale_ref}"
        if attempt.checkout_request_id is None:
            return (
                "the push response was lost, so this till has no CheckoutRequestID of its own "
                "to confirm the payment with"
            )
        return None

    async def _confirm(
        self,
        attempt: Attempt,
        claim: ConfirmingClaim,
        callback: StkCallback,
        detail: dict[str, Any],
    ) -> CallbackResult:
        """Confirmation on: the callback is a hint, the query with this till's own
        CheckoutRequestID is the truth (DESIGN.md 4.4), for a success and a failure alike."""
        assert attempt.checkout_request_id is not None
        answer = await self.gateway.query(attempt.checkout_request_id)
        evidence = self.evidence_from_query(answer, confirming=claim is ConfirmingClaim.SUCCESS)
        detail = {**detail, "query": answer.kind.value, "query_code": answer.result_code}
        if evidence in _INCONCLUSIVE:
            async with self.store.write() as tx:
                moved = await self.store.attempts.await_confirmation(
                    tx,
                    self.shop_id,
                    attempt.id,
                    claim,
                    code=callback.code_key,
                    receipt=callback.receipt,
                    actor=Actor.CALLBACK,
                    action=AuditAction.EVIDENCE_AWAITING_CONFIRMATION,
                    detail={**detail, "evidence": evidence.value},
                )
            await self._notify(moved)
            return CallbackResult(outcome=CallbackOutcome.CONFIRMING, view=await self.view(moved))
        fields: dict[str, Any] = {
            "result_code": answer.result_code,
            "result_desc": answer.result_desc,
        }
        if evidence is Evidence.CONFIRMED_SUCCESS:
            fields = {
                "result_code": callback.code_key,
                "result_desc": callback.description,
                "receipt_number": callback.receipt,
            }
        problem = _contradiction(claim, callback.code_key, evidence, answer)
        if evidence is Evidence.CONFIRMATION_CONTRADICTED:
            detail["review_reason"] = (
                "A callback said the payment succeeded; M-Pesa's query says code "
                f"{answer.result_code}."
            )
        verdict = await self.apply_evidence(
            attempt, evidence, Cause.CALLBACK, detail=detail, problem=problem, **fields
        )
        outcome = (
            CallbackOutcome.NEEDS_REVIEW
            if verdict.attempt.state is AttemptState.NEEDS_REVIEW
            else CallbackOutcome.APPLIED
        )
        return await self._result(verdict, outcome)

    async def _success_for_completed(
        self, attempt: Attempt, callback: StkCallback, detail: dict[str, Any]
    ) -> CallbackResult:
        """A success for a paid attempt: fills a pending receipt, else changes nothing."""
        if attempt.receipt_number is None and callback.receipt:
            async with self.store.write() as tx:
                result = await self.store.attempts.transition(
                    tx,
                    self.shop_id,
                    attempt.id,
                    {AttemptState.COMPLETED},
                    AttemptState.COMPLETED,
                    Actor.CALLBACK,
                    clear_flags=AttemptFlag.RECEIPT_PENDING,
                    detail={**detail, "evidence": "receipt_arrived"},
                    receipt_number=callback.receipt,
                )
                await self.store.sales.fill_receipt(tx, self.shop_id, attempt.id, callback.receipt)
            await self._notify(result.attempt)
            return CallbackResult(
                outcome=CallbackOutcome.APPLIED, view=await self.view(result.attempt)
            )
        different = callback.receipt is not None and callback.receipt != attempt.receipt_number
        verdict = await self.apply_evidence(
            attempt,
            Evidence.CALLBACK_SUCCESS,
            Cause.CALLBACK,
            detail={**detail, "receipt_differs": different},
            problem={
                "pattern": "receipt_differs",
                "reason": "A second success callback carries another receipt for a paid attempt.",
            }
            if different
            else None,
        )
        return await self._result(verdict, CallbackOutcome.NO_CHANGE)

    async def fill_receipts(
        self, found: Sequence[tuple[int, str, str, Mapping[str, Any]]]
    ) -> list[Attempt]:
        """Paid attempts still without a receipt get the one M-Pesa's statement shows (Pull
        Transactions): (attempt id, attempt ref, receipt, audit detail) each, all in one
        transaction, holding their locks. Those that are no longer such attempts are left as
        they are; returns the ones filled."""
        async with contextlib.AsyncExitStack() as held:
            for ref in sorted({attempt_ref for _, attempt_ref, _, _ in found}):
                await held.enter_async_context(self.lock_for(ref))
            async with self.store.write() as tx:
                filled = await self.store.attempts.fill_receipts(
                    tx,
                    self.shop_id,
                    [
                        (
                            attempt_id,
                            receipt,
                            {**detail, "evidence": Evidence.STATEMENT_MATCHED.value},
                        )
                        for attempt_id, _, receipt, detail in found
                    ],
                )
                # A sale paid by these attempts shows the receipt on its tender too.
                receipts = {attempt_id: receipt for attempt_id, _, receipt, _ in found}
                for attempt in filled:
                    await self.store.sales.fill_receipt(
                        tx, self.shop_id, attempt.id, receipts[attempt.id]
                    )
        for attempt in filled:
            await self._notify(attempt)
        return filled

    async def _result(self, verdict: Verdict, outcome: CallbackOutcome) -> CallbackResult:
        if not verdict.decision.changes_state and outcome is CallbackOutcome.APPLIED:
            outcome = CallbackOutcome.NO_CHANGE
        return CallbackResult(outcome=outcome, view=await self.view(verdict.attempt))

    async def _security_event(self, action: AuditAction, detail: Mapping[str, Any]) -> None:
        async with self.store.write() as tx:
            await self.store.audit.append(
                tx, actor=Actor.SYSTEM, action=action, shop_id=self.shop_id, detail=dict(detail)
            )

    # ------------------------------------------------------------------ reconciliation

    async def reconcile_once(self) -> ReconcileReport:
        reconciler = self._reconciler or Reconciler(self)
        return await reconciler.run_pass()

    async def on_reconnected(self) -> None:
        if self._reconciler is not None:
            self._reconciler.wake()

    async def live_attempts(self) -> list[Attempt]:
        return await self.store.attempts.live(self.shop_id, self.till_id)

    async def ended_but_confirming(self) -> list[Attempt]:
        """FAILED or EXPIRED attempts of the last day whose late success callback still waits
        for its confirming query (the reconciler keeps asking)."""
        page = await self.store.attempts.history(
            self.shop_id,
            AttemptFilter(
                since=self.clock.now() - timedelta(days=1),
                states=frozenset({AttemptState.FAILED, AttemptState.EXPIRED}),
                till_id=self.till_id,
                include_resolved=True,
            ),
            limit=1000,
        )
        return [a for a in page.items if a.confirming is not None]


_INCONCLUSIVE = frozenset({Evidence.CONFIRMATION_INCONCLUSIVE, Evidence.QUERY_INCONCLUSIVE})


def _contradiction(
    claim: ConfirmingClaim | None,
    callback_code: str | None,
    evidence: Evidence,
    answer: QueryAnswer,
) -> dict[str, Any] | None:
    """A problem record for the manager when the query contradicts what a callback claimed."""
    if claim is ConfirmingClaim.FAILURE and evidence is Evidence.QUERY_SUCCESS:
        return {
            "pattern": "failure_callback_contradicted",
            "callback_code": callback_code,
            "query_code": answer.result_code,
            "reason": "A callback said the payment failed; M-Pesa's query says it was paid.",
        }
    if claim is ConfirmingClaim.SUCCESS and evidence is Evidence.CONFIRMATION_CONTRADICTED:
        return {
            "pattern": "success_callback_contradicted",
            "callback_code": callback_code,
            "query_code": answer.result_code,
            "reason": "A callback said the payment succeeded; M-Pesa's query says it did not.",
        }
    return None


def _mismatch(attempt: Attempt, callback: StkCallback) -> str | None:
    """Why a callback does not belong to its attempt (DESIGN.md 4.3), or None."""
    if (
        attempt.checkout_request_id is not None
        and callback.checkout_request_id != attempt.checkout_request_id
    ):
        return "CheckoutRequestID differs from the push response's"
    if callback.is_success:
        if callback.amount is None or callback.amount != Decimal(attempt.amount):
            return "amount differs from the attempt's"
        phone = callback.phone
        if phone is not None and "*" not in phone and phone != attempt.phone:
            return "phone number differs from the attempt's"
    return None
