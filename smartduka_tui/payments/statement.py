"""Receipt codes the customer shows: verified with M-Pesa's Transaction Status, then accepted
for a sale only when amount, shortcode and time fit and no other sale holds the receipt.

`StatementService.verify_receipt(code, sale_ref)`:

1. the code is normalised (`TKQ9 ZZ1A2B` -> `TKQ9ZZ1A2B`); a malformed one is refused here;
2. a receipt another attempt already holds is refused ("already used for sale 0115007"),
   and so is one another till's sale holds (the shop's receipt index at the relay);
3. the sale must exist, be unpaid, and have no prompt still open;
4. a request row is written (with its audit entry) before Transaction Status is sent, its
   ResultURL and QueueTimeOutURL signed for this till and this request
   (`mpesa.result_path`); the relay stores the result and the till's feed hands it to
   `accept_result`, which lands it once;
5. the result is judged: unknown receipt, another till's, reversed, amount or time that do not
   fit: each refused in plain words; a fit completes the sale's latest attempt through the
   STATEMENT_MATCHED evidence (one transaction with its audit entry, engine.apply_evidence),
   once the shop's receipt index has granted this sale the receipt (first holder wins across
   the shop's tills; a relay that cannot be asked refuses, changing nothing). When the engine
   then declines (the attempt changed meanwhile, its write failed) the grant is released, so
   the receipt stays usable by the sale it really pays.

Nothing changes money state until step 5 accepts; a timeout says so and changes nothing (a
result that arrives later is kept on its request row, and applies nothing). Without `sale_ref`
the check only reports what M-Pesa says about the receipt.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Protocol

from pydantic import SecretStr

from smartduka_tui.background import woken
from smartduka_tui.config import Settings, TimingSettings
from smartduka_tui.model import Actor, AttemptFlag, AttemptState, Mode
from smartduka_tui.mpesa import result_path
from smartduka_tui.mpesa.certificates import published_certificate
from smartduka_tui.mpesa.client import DarajaClient
from smartduka_tui.mpesa.errors import RequestOutcomeUnknown, RequestRefused
from smartduka_tui.mpesa.requests import DarajaCredentials, InvalidRequestError
from smartduka_tui.mpesa.security import SecurityCredentialError, load_certificate_key
from smartduka_tui.mpesa.statement import (
    INVALID_ORIGINAL,
    AsyncResult,
    ReversalOutcome,
    StatementParseError,
    TransactionStatus,
    parse_async_result,
    reversal_outcome,
)
from smartduka_tui.mpesa.statement_requests import (
    build_reversal,
    build_transaction_status,
    check_remarks,
    normalise_receipt,
)
from smartduka_tui.payments.api import PaymentView
from smartduka_tui.payments.machine import Cause, Evidence
from smartduka_tui.payments.reversal import (
    NOTE_MAX,
    NOTE_MIN,
    ReversalRefusal,
    ReversalVerdict,
)
from smartduka_tui.payments.reversal import refused as reversal_refused
from smartduka_tui.payments.reversal import result_words as reversal_result_words
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.payments.shop_receipts import (
    ReceiptHolder,
    ShopReceipts,
    ShopReceiptsUnavailable,
)
from smartduka_tui.store.db import WriteTx
from smartduka_tui.store.errors import ShopConfigError
from smartduka_tui.store.initiator import InitiatorCredentials
from smartduka_tui.store.records import Attempt
from smartduka_tui.store.statement import RequestKind, RequestState, StatementRequest
from smartduka_tui.words import day_and_time, exact_shillings

log = logging.getLogger(__name__)

# A customer may pay (by SMS prompt or the till number) a little before the cashier rings the
# sale up: receipts up to this long before the sale's first attempt still fit its window.
RECEIPT_LEAD: Final = timedelta(minutes=10)
# A reversal with no result this long after it was asked no longer blocks asking again.
REVERSAL_RESEND_AFTER: Final = timedelta(minutes=30)
# The initiator's error for a wrong name or password (REFERENCE.md section 7, Reversal codes).
INITIATOR_REFUSED: Final = 2001
_LEADING_NUMBER = re.compile(r"^\s*(\d{5,12})\b")
_NOT_A_RECEIPT: Final = (
    "That is not an M-Pesa receipt code: 10 letters and digits, e.g. TKQ9ZZ1A2B."
)


class ReceiptRefusal(StrEnum):
    """Why a receipt code was not accepted (the CLI's JSON and the screen use these)."""

    MALFORMED = "malformed"
    NO_SUCH_PAYMENT = "no_such_payment"
    OTHER_TILL = "other_till"
    ALREADY_USED = "already_used"
    AMOUNT_DIFFERS = "amount_differs"
    TOO_OLD = "too_old"
    REVERSED = "reversed"
    SALE_NOT_OPEN = "sale_not_open"
    TIMEOUT = "timeout"
    NOT_SET_UP = "not_set_up"
    MPESA_REFUSED = "mpesa_refused"
    SHOP_UNCHECKED = "shop_unchecked"
    """The shop's receipt index (at the relay) could not be asked whether another till's
    sale holds the receipt."""


@dataclass(frozen=True, slots=True)
class ReceiptVerdict:
    """What a receipt check found. `accepted`: the sale is now paid by this receipt (or, for a
    check without a sale, the receipt is a completed payment to this till that no sale holds)."""

    accepted: bool
    message: str
    """A refusal's words (errors are said where they are found); empty for an accepted
    verdict, whose words the faces say from its values (`smartduka_tui.words`)."""
    receipt: str | None = None
    refusal: ReceiptRefusal | None = None
    amount_paid: Decimal | None = None
    paid_at: datetime | None = None
    payment: PaymentView | None = None
    sale_ref: str | None = None
    """The sale an accepted receipt now pays (None for a check without a sale)."""
    paid_to: str | None = None
    """The shortcode an accepted receipt paid."""


class ReceiptChecks(Protocol):
    """What the screens and the CLI call (the app is given one; `StatementService` is it)."""

    async def verify_receipt(self, code: str, sale_ref: str | None = None) -> ReceiptVerdict: ...


class SendProblem(StrEnum):
    NOT_SET_UP = "not_set_up"
    REFUSED = "refused"
    """M-Pesa refused the request itself (no result will come)."""
    TIMEOUT = "timeout"
    """No result within `timings.statement_result_wait_s` (one may still come)."""


@dataclass(frozen=True, slots=True)
class NotSent:
    """Why a request has no result to judge; `message` in words (M-Pesa's, for REFUSED)."""

    problem: SendProblem
    message: str


@dataclass(frozen=True, slots=True)
class _Urls:
    result: str
    timeout: str


# Sends the built request with the shop's Daraja credentials.
Sent = Callable[[DarajaCredentials], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ResultEvent:
    """An initiator API's result (or queue timeout notice) as the relay's feed delivers it."""

    shop_id: str
    till_id: str
    request_ref: str
    timed_out: bool
    body: bytes


def _refused(refusal: ReceiptRefusal, message: str, receipt: str | None = None) -> ReceiptVerdict:
    return ReceiptVerdict(False, message, receipt=receipt, refusal=refusal)


def _credit_number(result: AsyncResult) -> str | None:
    """The shortcode M-Pesa says was paid ("600123 - SHOP NAME"), when the result names it."""
    found = _LEADING_NUMBER.match(result.text("CreditPartyName") or "")
    return None if found is None else found.group(1)


@dataclass(frozen=True, slots=True)
class _Reversible:
    """A payment a reversal may give back: a paid attempt's, or a direct payment (C2B)."""

    amount: int
    sale_ref: str | None
    reversed: bool
    words: str
    """What it paid, in words: "sale 0042", "direct payment, no sale"."""
    attempt: Attempt | None = None


class StatementService:
    """Transaction Status for one till's engine. `accept_result` is the relay feed's sink."""

    def __init__(
        self, engine: PaymentEngine, client: DarajaClient, receipts: ShopReceipts | None = None
    ) -> None:
        self.engine = engine
        self._client = client
        # The shop's receipt index: "no other sale holds it" is shop-wide (None: no relay).
        self.receipts = receipts
        self._waiters: dict[str, asyncio.Event] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ the feed's sink

    async def accept_result(self, event: ResultEvent) -> bool:
        """Land a result on its request (once). True when handled, including a result for an
        unknown or already answered request (kept as nothing: a replay changes nothing)."""
        store = self.engine.store
        if event.shop_id != self.engine.shop_id or event.till_id != self.engine.till_id:
            log.warning("a result for another till was ignored")
            return True
        try:
            result = parse_async_result(event.body)
            code = str(result.result_code)
        except StatementParseError as error:
            code = f"unreadable: {error}"
        async with store.write() as tx:
            landed = await store.statement.record_result(
                tx,
                event.shop_id,
                event.request_ref,
                timed_out=event.timed_out,
                result_code=code[:64],
                body=event.body.decode("utf-8", errors="replace"),
            )
            if landed is not None and landed.kind is RequestKind.REVERSAL and not event.timed_out:
                # Marked with the result, in its transaction: never on acceptance.
                await self._mark_reversed(tx, landed)
        if landed is None:
            log.info("a result for an unknown or already answered request changed nothing")
        waiter = self._waiters.get(event.request_ref)
        if waiter is not None:
            waiter.set()
        return True

    async def _mark_reversed(self, tx: WriteTx, request: StatementRequest) -> None:
        """Flag the reversed attempt (or mark the reversed direct payment) when the result is
        code 0 for this receipt and amount."""
        try:
            result = parse_async_result(request.result_body or "")
        except StatementParseError:
            return
        if reversal_outcome(result) is not ReversalOutcome.REVERSED:
            return
        original = result.text("OriginalTransactionID")
        amount = result.amount()
        if (original is not None and original != request.receipt) or (
            amount is not None and amount != Decimal(request.amount or 0)
        ):
            log.warning("a reversal result names another payment; nothing was marked")
            return
        reason = f"M-Pesa reversed receipt {request.receipt} (request {request.id})"
        if request.attempt_id is None:
            await self.engine.store.c2b.mark_reversed(
                tx, self.engine.shop_id, request.receipt, reason=reason
            )
            return
        attempt = await self.engine.store.attempts.get(
            self.engine.shop_id, request.attempt_id, tx=tx
        )
        if attempt is None or AttemptFlag.REVERSED in attempt.flags:
            return
        await self.engine.store.attempts.add_flags(
            tx,
            self.engine.shop_id,
            attempt.id,
            AttemptFlag.REVERSED,
            Actor.SYSTEM,
            reason=reason,
        )

    # ------------------------------------------------------------------ reversal

    async def reverse(self, code: str, note: str) -> ReversalVerdict:
        """Reverse the payment behind receipt `code` (the face has checked the manager's PIN)."""
        engine = self.engine
        try:
            receipt = normalise_receipt(code)
        except InvalidRequestError:
            return reversal_refused(ReversalRefusal.MALFORMED, _NOT_A_RECEIPT)
        remarks = " ".join(note.split())
        if not NOTE_MIN <= len(remarks) <= NOTE_MAX:
            return reversal_refused(
                ReversalRefusal.BAD_NOTE,
                f"The note must say why, in {NOTE_MIN} to {NOTE_MAX} characters (M-Pesa keeps "
                "it with the reversal). Nothing was sent.",
                receipt,
            )
        try:
            check_remarks(remarks)
        except InvalidRequestError as error:
            return reversal_refused(
                ReversalRefusal.BAD_NOTE,
                f"The note goes to M-Pesa, so it {error.message}. Nothing was sent.",
                receipt,
            )
        payment = await self._reversible(receipt)
        if payment is None:
            return reversal_refused(
                ReversalRefusal.NOT_OURS,
                f"No sale of this shop was paid with receipt {receipt}, and no direct payment "
                "to it has that receipt: only a payment the till took can be reversed here. "
                "Nothing was sent.",
                receipt,
            )
        if payment.reversed:
            return reversal_refused(
                ReversalRefusal.ALREADY_REVERSED,
                f"Receipt {receipt} ({payment.words}) is already reversed. Nothing was sent.",
                receipt,
            )
        waiting = await engine.store.statement.waiting_reversal(engine.shop_id, receipt)
        # A result lost for good (Safaricom does not retry) must not block the payment
        # forever: after a while it may be asked again, and M-Pesa answers R000001 if the first
        # one did go through.
        if waiting is not None and engine.clock.now() - waiting.created_at < REVERSAL_RESEND_AFTER:
            return reversal_refused(
                ReversalRefusal.WAITING,
                f"A reversal of receipt {receipt} is already waiting for M-Pesa's answer "
                f"(asked at {day_and_time(waiting.created_at)}; it may be asked again after "
                f"{REVERSAL_RESEND_AFTER.seconds // 60} minutes). Nothing was sent.",
                receipt,
            )

        def build(initiator: InitiatorCredentials, certificate: bytes, urls: _Urls) -> Sent:
            wire = build_reversal(
                shortcode=initiator.shortcode,
                receipt=receipt,
                amount=payment.amount,
                initiator=initiator.name.reveal(),
                password=SecretStr(initiator.password.reveal()),
                certificate=certificate,
                result_url=urls.result,
                queue_timeout_url=urls.timeout,
                remarks=remarks,
                production=engine.settings.mode is Mode.PRODUCTION,
            )
            return lambda credentials: self._client.reverse(credentials, wire)

        sent = await self._send(
            RequestKind.REVERSAL,
            receipt,
            payment.attempt,
            payment.sale_ref,
            build,
            actor=Actor.MANAGER,
            note=remarks,
            amount=payment.amount,
        )
        if isinstance(sent, NotSent):
            return _reversal_not_sent(sent, receipt, engine.settings.timings)
        return await self._reversal_judged(sent, receipt, payment)

    async def _reversible(self, receipt: str) -> _Reversible | None:
        """The payment of this shop behind `receipt`: a paid attempt holding it, else a
        direct payment (C2B) with that TransID; None when neither."""
        engine = self.engine
        paid = [
            a
            for a in await engine.store.attempts.by_receipt(engine.shop_id, receipt)
            if a.state is AttemptState.COMPLETED
        ]
        if paid:
            attempt = paid[0]
            return _Reversible(
                attempt.amount,
                attempt.sale_ref,
                AttemptFlag.REVERSED in attempt.flags,
                f"sale {attempt.sale_ref}",
                attempt,
            )
        direct = await engine.store.c2b.get(engine.shop_id, receipt)
        if direct is None:
            return None
        words = (
            f"direct payment for sale {direct.sale_ref}"
            if direct.sale_ref
            else "direct payment, no sale"
        )
        return _Reversible(direct.amount, direct.sale_ref, direct.reversed, words)

    async def _reversal_judged(
        self, request: StatementRequest, receipt: str, payment: _Reversible
    ) -> ReversalVerdict:
        sale = payment.words
        if request.state is RequestState.TIMED_OUT:
            return reversal_refused(
                ReversalRefusal.TIMEOUT,
                "M-Pesa's queue timed out on the reversal: nothing was reversed. Try again.",
                receipt,
            )
        now = await self._reversible(receipt)
        if now is not None and now.reversed:
            return ReversalVerdict(
                True,
                f"Reversed: KES {payment.amount:,} of receipt {receipt} ({sale}) went back to "
                "the customer.",
                receipt=receipt,
                sale_ref=payment.sale_ref,
                amount=payment.amount,
            )
        try:
            result = parse_async_result(request.result_body or "")
        except StatementParseError:
            return reversal_refused(
                ReversalRefusal.FAILED,
                "M-Pesa's answer to the reversal could not be read. Nothing was marked "
                "reversed: check the shop's M-Pesa statement.",
                receipt,
            )
        if result.succeeded:
            return reversal_refused(
                ReversalRefusal.FAILED,
                "M-Pesa's answer names another payment or amount. Nothing was marked "
                "reversed: check the shop's M-Pesa statement.",
                receipt,
            )
        return reversal_result_words(result, receipt, payment.amount)

    # ------------------------------------------------------------------ verify a receipt

    async def verify_receipt(self, code: str, sale_ref: str | None = None) -> ReceiptVerdict:
        try:
            receipt = normalise_receipt(code)
        except InvalidRequestError:
            return _refused(ReceiptRefusal.MALFORMED, _NOT_A_RECEIPT)
        held = await self._holder(receipt)
        if held is not None:
            return _refused(
                ReceiptRefusal.ALREADY_USED,
                f"Receipt {receipt} is already used for sale {held.sale_ref}.",
                receipt,
            )
        elsewhere = await self._held_elsewhere(receipt)
        if elsewhere is not None:
            return _used_elsewhere(elsewhere)
        target: Attempt | None = None
        if sale_ref is not None:
            found = await self._open_attempt(sale_ref, receipt)
            if isinstance(found, ReceiptVerdict):
                return found
            target = found
        request = await self._ask(receipt, target, sale_ref)
        if isinstance(request, ReceiptVerdict):
            return request
        return await self._judge(request, receipt, sale_ref)

    async def _held_elsewhere(self, receipt: str) -> ReceiptHolder | None:
        """The sale of another till that holds `receipt`, asked before M-Pesa is, so the
        cashier hears at once; a relay that cannot be asked now is asked again (and must
        answer) when the receipt is accepted."""
        if self.receipts is None:
            return None
        try:
            return (await self.receipts.known([receipt])).get(receipt)
        except ShopReceiptsUnavailable:
            return None

    async def _claim(self, receipt: str, sale_ref: str) -> ReceiptVerdict | None:
        """Hold `receipt` for `sale_ref` in the shop's index; the refusal, or None when this
        sale holds it now (or the till has no relay to ask)."""
        if self.receipts is None:
            return None
        try:
            conflicts = await self.receipts.register([(receipt, sale_ref)])
        except ShopReceiptsUnavailable as error:
            return _refused(
                ReceiptRefusal.SHOP_UNCHECKED,
                f"The shop's other tills could not be asked whether a sale there holds receipt "
                f"{receipt} ({error}). Nothing changed: try again in a moment.",
                receipt,
            )
        return _used_elsewhere(conflicts[0]) if conflicts else None

    async def _release(self, receipt: str, sale_ref: str) -> None:
        """Give back the receipt `_claim` granted when the sale did not take it (the engine
        declined the evidence or its write failed), so no unpaid sale keeps another sale of
        the shop from it. Not when an attempt of this sale holds it after all. Never raises."""
        if self.receipts is None:
            return
        try:
            held = await self._holder(receipt)
        except Exception:
            # The store that failed the write may fail this read too: no attempt holds it.
            log.exception("receipt %s: the store could not say who holds it", receipt)
            held = None
        if held is not None and held.sale_ref == sale_ref:
            return
        if not await self.receipts.release(receipt, sale_ref):
            log.warning(
                "receipt %s is still held at the relay for sale %s, which did not take it: the "
                "release is kept and sent again with the next call to the relay",
                receipt,
                sale_ref,
            )

    async def _holder(self, receipt: str) -> Attempt | None:
        held = await self.engine.store.attempts.by_receipt(self.engine.shop_id, receipt)
        return held[0] if held else None

    async def _open_attempt(self, sale_ref: str, receipt: str) -> Attempt | ReceiptVerdict:
        attempts = await self.engine.store.attempts.for_sale(self.engine.shop_id, sale_ref)
        if not attempts:
            return _refused(
                ReceiptRefusal.SALE_NOT_OPEN,
                f"There is no sale {sale_ref} on this till: ring it up and try M-Pesa first.",
                receipt,
            )
        paid = next((a for a in attempts if a.state is AttemptState.COMPLETED), None)
        if paid is not None:
            return _refused(
                ReceiptRefusal.SALE_NOT_OPEN,
                f"Sale {sale_ref} is already paid (receipt {paid.receipt_number or 'pending'}).",
                receipt,
            )
        latest = max(attempts, key=lambda a: a.attempt_number)
        if latest.state in (AttemptState.CREATED, AttemptState.PENDING):
            return _refused(
                ReceiptRefusal.SALE_NOT_OPEN,
                f"The M-Pesa prompt for sale {sale_ref} is still open: wait for its result, "
                "then check the receipt.",
                receipt,
            )
        return latest

    async def _ask(
        self, receipt: str, target: Attempt | None, sale_ref: str | None
    ) -> StatementRequest | ReceiptVerdict:
        """Send Transaction Status and wait for its result: the landed request, or why none."""

        def build(initiator: InitiatorCredentials, certificate: bytes, urls: _Urls) -> Sent:
            wire = build_transaction_status(
                shortcode=initiator.shortcode,
                receipt=receipt,
                initiator=initiator.name.reveal(),
                password=SecretStr(initiator.password.reveal()),
                certificate=certificate,
                result_url=urls.result,
                queue_timeout_url=urls.timeout,
                production=self.engine.settings.mode is Mode.PRODUCTION,
            )
            return lambda credentials: self._client.transaction_status(credentials, wire)

        sent = await self._send(
            RequestKind.TRANSACTION_STATUS,
            receipt,
            target,
            sale_ref,
            build,
            actor=Actor.CASHIER,
        )
        if not isinstance(sent, NotSent):
            return sent
        if sent.problem is SendProblem.TIMEOUT:
            wait_s = self.engine.settings.timings.statement_result_wait_s
            return _refused(
                ReceiptRefusal.TIMEOUT,
                f"M-Pesa has not answered the receipt check within {wait_s} s. Nothing "
                "changed: try again in a moment.",
                receipt,
            )
        if sent.problem is SendProblem.REFUSED:
            return _refused(
                ReceiptRefusal.MPESA_REFUSED,
                f"M-Pesa refused the receipt check ({sent.message}). Nothing changed.",
                receipt,
            )
        return _refused(ReceiptRefusal.NOT_SET_UP, sent.message, receipt)

    async def _send(
        self,
        kind: RequestKind,
        receipt: str,
        target: Attempt | None,
        sale_ref: str | None,
        build: Callable[[InitiatorCredentials, bytes, _Urls], Sent],
        *,
        actor: Actor,
        note: str | None = None,
        amount: int | None = None,
    ) -> StatementRequest | NotSent:
        """Write the request (with its audit entry), send it with URLs signed for this till and
        this request, and wait for its result on the engine's clock: the landed request, or
        why there is none."""
        engine = self.engine
        settings = engine.settings
        try:
            initiator = await engine.store.initiators.get(engine.shop_id)
        except ShopConfigError as error:
            return NotSent(SendProblem.NOT_SET_UP, f"Not set up: {error.message}.")
        if initiator is None:
            return NotSent(
                SendProblem.NOT_SET_UP,
                "No M-Pesa initiator is set for this shop: a manager sets it in the M-Pesa "
                "settings or with `smartduka shop initiator`. Nothing was sent.",
            )
        certificate = _certificate(settings)
        if isinstance(certificate, str):
            return NotSent(SendProblem.NOT_SET_UP, certificate)
        credentials = await engine.store.shops.credentials(engine.shop_id)
        till = engine.till
        result, timeout = result_path.sign_new_request(
            till.active_callback_secret.reveal(),
            till.shop_id,
            till.till_id,
            till.active_callback_kid,
        )
        base = engine.callback_base_url
        try:
            send = build(initiator, certificate, _Urls(base + result.path(), base + timeout.path()))
        except InvalidRequestError as error:
            return NotSent(
                SendProblem.NOT_SET_UP, f"The request cannot be sent: {error}. Nothing was sent."
            )
        ref = result.request_ref
        async with engine.store.write() as tx:
            await engine.store.statement.create(
                tx,
                shop_id=engine.shop_id,
                till_id=engine.till_id,
                request_ref=ref,
                kind=kind,
                receipt=receipt,
                sale_ref=sale_ref,
                attempt_id=None if target is None else target.id,
                amount=amount if target is None else target.amount,
                actor=actor,
                note=note,
            )
        waiter = self._waiters[ref] = asyncio.Event()
        try:
            try:
                await send(
                    DarajaCredentials(
                        consumer_key=SecretStr(credentials.consumer_key.reveal()),
                        consumer_secret=SecretStr(credentials.consumer_secret.reveal()),
                    )
                )
            except RequestRefused as error:
                async with engine.store.write() as tx:
                    await engine.store.statement.refused(tx, engine.shop_id, ref, error.message)
                return NotSent(SendProblem.REFUSED, error.message)
            except RequestOutcomeUnknown:
                # It may have started: its result may still come, so wait as for an accepted one.
                log.warning("%s outcome unknown; waiting for a result anyway", kind.value)
            if not await woken(waiter, engine.clock, settings.timings.statement_result_wait_s):
                return NotSent(SendProblem.TIMEOUT, "no result yet")
        finally:
            self._waiters.pop(ref, None)
        landed = await engine.store.statement.get(engine.shop_id, ref)
        assert landed is not None
        return landed

    async def _judge(
        self, request: StatementRequest, receipt: str, sale_ref: str | None
    ) -> ReceiptVerdict:
        engine = self.engine
        if request.state is RequestState.TIMED_OUT:
            return _refused(
                ReceiptRefusal.TIMEOUT,
                "M-Pesa's queue timed out on the receipt check. Nothing changed: try again.",
                receipt,
            )
        try:
            result = parse_async_result(request.result_body or "")
        except StatementParseError:
            return _refused(
                ReceiptRefusal.MPESA_REFUSED,
                "M-Pesa's answer to the receipt check could not be read. Nothing changed.",
                receipt,
            )
        shortcode = engine.shop.business_shortcode or ""
        if result.result_code == INVALID_ORIGINAL:
            return _refused(
                ReceiptRefusal.NO_SUCH_PAYMENT,
                f"No such payment: M-Pesa knows no receipt {receipt} paid to this till.",
                receipt,
            )
        if result.result_code == INITIATOR_REFUSED:
            return _refused(
                ReceiptRefusal.NOT_SET_UP,
                "M-Pesa refused the shop's initiator name or password (code 2001): a manager "
                "must set them again. Nothing changed.",
                receipt,
            )
        if not result.succeeded:
            return _refused(
                ReceiptRefusal.MPESA_REFUSED,
                f"M-Pesa could not check the receipt (code {result.result_code}: "
                f"{result.result_desc or 'no reason given'}). Nothing changed.",
                receipt,
            )
        try:
            status = TransactionStatus.from_result(result)
        except StatementParseError:
            return _refused(
                ReceiptRefusal.MPESA_REFUSED,
                "M-Pesa's answer names no receipt or amount. Nothing changed.",
                receipt,
            )
        if status.receipt != receipt:
            return _refused(
                ReceiptRefusal.MPESA_REFUSED,
                f"M-Pesa answered about receipt {status.receipt}, not {receipt}. Nothing changed.",
                receipt,
            )
        paid_to = _credit_number(result)
        ours = {n for n in (engine.shop.business_shortcode, engine.shop.till_number) if n}
        if paid_to is not None and paid_to not in ours:
            return _refused(
                ReceiptRefusal.OTHER_TILL,
                f"Paid to another till: receipt {receipt} paid {paid_to}, not {shortcode}.",
                receipt,
            )
        if status.status.lower() == "reversed":
            return _refused(
                ReceiptRefusal.REVERSED,
                f"Receipt {receipt} was reversed: the money went back to the customer.",
                receipt,
            )
        paid_at = status.finalised_at or result.moment("InitiatedTime")
        if request.attempt_id is None or sale_ref is None:
            return ReceiptVerdict(
                True,
                "",
                receipt=receipt,
                amount_paid=status.amount,
                paid_at=paid_at,
                paid_to=shortcode,
            )
        return await self._apply(request, receipt, sale_ref, status, paid_at)

    async def _apply(
        self,
        request: StatementRequest,
        receipt: str,
        sale_ref: str,
        status: TransactionStatus,
        paid_at: datetime | None,
    ) -> ReceiptVerdict:
        engine = self.engine
        attempt = await engine.store.attempts.get(engine.shop_id, request.attempt_id or 0)
        assert attempt is not None
        if status.amount != Decimal(attempt.amount):
            return _refused(
                ReceiptRefusal.AMOUNT_DIFFERS,
                f"Amount differs: {exact_shillings(status.amount)} paid, sale is "
                f"{exact_shillings(attempt.amount)}.",
                receipt,
            )
        sale = await engine.store.attempts.for_sale(engine.shop_id, sale_ref)
        began = min(a.created_at for a in sale)
        if paid_at is None or paid_at < began - RECEIPT_LEAD:
            when = "at an unknown time" if paid_at is None else f"at {day_and_time(paid_at)}"
            return _refused(
                ReceiptRefusal.TOO_OLD,
                f"Too old: receipt {receipt} was paid {when}, before sale {sale_ref} began "
                f"({day_and_time(began)}).",
                receipt,
            )
        async with engine.lock_for(attempt.attempt_ref):
            # Checked again under the attempt's lock: a callback may have brought it meanwhile.
            held = await self._holder(receipt)
            if held is not None:
                return _refused(
                    ReceiptRefusal.ALREADY_USED,
                    f"Receipt {receipt} is already used for sale {held.sale_ref}.",
                    receipt,
                )
            claimed = await self._claim(receipt, sale_ref)
            if claimed is not None:
                return claimed
            try:
                verdict = await engine.apply_evidence(
                    attempt,
                    Evidence.STATEMENT_MATCHED,
                    Cause.CASHIER,
                    detail={
                        "receipt": receipt,
                        "statement_request": request.id,
                        "amount_paid": str(status.amount),
                    },
                    receipt_number=receipt,
                )
            except Exception:
                await self._release(receipt, sale_ref)
                raise
            if not verdict.decision.changes_state:
                await self._release(receipt, sale_ref)
        view = await engine.view(verdict.attempt)
        if not verdict.decision.changes_state:
            return _refused(
                ReceiptRefusal.SALE_NOT_OPEN,
                f"Sale {sale_ref} could not take the receipt now ({view.cashier_message}). "
                "Nothing changed.",
                receipt,
            )
        return ReceiptVerdict(
            True,
            "",
            receipt=receipt,
            amount_paid=status.amount,
            paid_at=paid_at,
            payment=view,
            sale_ref=sale_ref,
            paid_to=engine.shop.business_shortcode or "",
        )


def _used_elsewhere(holder: ReceiptHolder) -> ReceiptVerdict:
    return _refused(
        ReceiptRefusal.ALREADY_USED,
        f"Receipt {holder.receipt} is already used for {holder.words()}. Nothing changed.",
        holder.receipt,
    )


def _reversal_not_sent(sent: NotSent, receipt: str, timings: TimingSettings) -> ReversalVerdict:
    if sent.problem is SendProblem.TIMEOUT:
        return reversal_refused(
            ReversalRefusal.TIMEOUT,
            f"M-Pesa has not answered the reversal within {timings.statement_result_wait_s} s. "
            "It may still happen: the payment shows REVERSED only when M-Pesa's result says "
            "so (`smartduka reverse` again shows whether it is waiting).",
            receipt,
        )
    if sent.problem is SendProblem.REFUSED:
        return reversal_refused(
            ReversalRefusal.MPESA_REFUSED,
            f"M-Pesa refused the reversal ({sent.message}). Nothing was reversed.",
            receipt,
        )
    return reversal_refused(ReversalRefusal.NOT_SET_UP, sent.message, receipt)


def _certificate(settings: Settings) -> bytes | str:
    """The certificate's bytes, or why there is none (in words for the screen): the configured
    file, else the one Safaricom publishes for the mode when the till talks to Safaricom."""
    path = settings.daraja.certificate_file
    if path is None:
        if settings.daraja.base_url is None:
            return published_certificate(production=settings.mode is Mode.PRODUCTION)
        return (
            f"This till talks to {settings.daraja_base_url}, not Safaricom, and no certificate "
            "is configured for it (daraja.certificate_file; the simulator serves its own at "
            "/__sim/certificate). Nothing was sent."
        )
    try:
        data = path.read_bytes()
        load_certificate_key(data)
    except OSError as error:
        return f"The M-Pesa certificate file cannot be read ({error.strerror}). Nothing was sent."
    except SecurityCredentialError as error:
        return f"The M-Pesa certificate file is unusable: {error}. Nothing was sent."
    return data


def statement_service(
    engine: PaymentEngine, receipts: ShopReceipts | None = None
) -> StatementService:
    """The receipt checks for a running engine, with a Daraja client of the till's settings
    and `receipts`, the shop's receipt index the composition root built (None: no relay, so
    "no other sale holds it" is asked of this till's own sales only)."""
    from smartduka_tui.payments.gateway import daraja_client

    return StatementService(engine, daraja_client(engine.settings, engine.clock), receipts)
