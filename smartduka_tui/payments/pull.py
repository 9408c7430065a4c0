"""Pull Transactions in the reconciler: the shortcode's M-Pesa statement of the last 48 hours
(REFERENCE.md section 7b.2), read page by page and reconciled against this till.

A pull registers the shortcode once, reads every page from the start of the window, and
refuses the whole pull (changing nothing but the last-pull status) when a page is unreadable
or refused, a row has an amount with cents, or one transactionId comes with two different
amounts. Then it keeps the new rows (idempotent by transactionId), and for each row nothing
here knew before:

- an attempt holding that receipt, or a C2B row with that TransID: known;
- else the one attempt without a receipt that the row fits (amount, the sale's
  AccountReference, time and masked phone): a paid attempt gets its receipt; a FAILED,
  EXPIRED, UNKNOWN or NEEDS_REVIEW one gets STATEMENT_MATCHED through the engine (never a
  downgrade: COMPLETED is never left); a PENDING one is left to its callback or query;
- else, when the shop's receipt index (at the relay) says another till's sale holds it:
  "known at another till", counted and not a problem;
- else "money without a sale", a problem for the manager.

Every till of a shop pulls the same statement, so a pull first tells the shop's index which of
the pulled receipts this till's sales hold, then asks about the rows nothing here knows, and
about this till's open "money without a sale" problems: those another till now holds are
resolved (with their audit entry). A relay that cannot be asked does not stop the pull: the
problems are recorded as before, and the report says the shop-wide check could not be made.

A sale that two receipts pay ("paid twice") becomes a problem too, unless the engine already
flagged its duplicate payment. Each finding is recorded once, however often the same 48 hours
are pulled.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from smartduka_tui.background import BackgroundTask
from smartduka_tui.model import Actor, AttemptState, ProblemKind
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.statement import PullTransaction
from smartduka_tui.payments.gateway import DirectGateway, GatewayError, direct_gateway
from smartduka_tui.payments.inputs import account_reference
from smartduka_tui.payments.machine import Cause, Evidence
from smartduka_tui.payments.shop_receipts import (
    ReceiptHolder,
    ShopReceipts,
    ShopReceiptsUnavailable,
)
from smartduka_tui.store.db import WriteTx
from smartduka_tui.store.pull import PulledRow, ReceiptlessAttempt
from smartduka_tui.store.pull import PullStatus as PullStatus  # re-exported: the faces name it
from smartduka_tui.store.records import to_ms

if TYPE_CHECKING:
    from smartduka_tui.payments.service import PaymentEngine

log = logging.getLogger(__name__)

PULL_WINDOW = timedelta(hours=48)
# The window's start is kept this far inside Daraja's 48 hours, so that it is still inside
# when the last page is asked for.
WINDOW_MARGIN = timedelta(minutes=1)
# M-Pesa's clock and the till's may differ: the window ends this far past the till's now,
# and a row fits an attempt this far outside the attempt's own lifetime.
CLOCK_SKEW = timedelta(minutes=10)
# A bound on one pull (at 100 rows a page, a million rows): a Daraja that never stops
# paging is an error, not a hang.
MAX_PAGES = 10_000
_MASKED = re.compile(r"^(\d{3,6})\s*\*+\s*(\d{2,4})$")
_FULL = re.compile(r"^254[17]\d{8}$")
# Still waiting for their own callback or query: the statement does not settle these.
_AWAITING = frozenset({AttemptState.CREATED, AttemptState.PENDING})
MONEY_WITHOUT_SALE = "money_without_sale"
# This till's open "money without a sale" problems that each pull asks the shop about.
OPEN_PROBLEMS_CHECKED = 1000


class PullFailed(Exception):
    """A pull that changed nothing (but the last-pull status); the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PullInputError(PullFailed):
    """A pull asked for wrongly (e.g. --since out of range); nothing was asked or changed."""


@dataclass(frozen=True, slots=True)
class PullProgress:
    """How far a pull has read: pages and rows so far."""

    pages: int
    rows: int


@dataclass(frozen=True, slots=True)
class PullReport:
    """What one pull did."""

    shortcode: str
    start: datetime
    end: datetime
    pages: int
    rows: int
    new_rows: int
    receipts_filled: int
    money_without_sale: int
    paid_twice: int
    known_elsewhere: int = 0
    """Rows nothing on this till knows that another till's sale holds (not problems)."""
    resolved_elsewhere: int = 0
    """Open "money without a sale" problems resolved: another till's sale holds them now."""
    shop_check: str | None = None
    """Why the shop-wide check could not be made (None when it was, or needs no relay)."""

    @property
    def problems_found(self) -> int:
        return self.money_without_sale + self.paid_twice


Progress = Callable[[PullProgress], None]


def _whole_shillings(row: PullTransaction, page: int) -> int:
    amount = row.amount
    if amount != amount.to_integral_value():
        raise PullFailed(
            f"page {page}: {row.transaction_id} has an amount with cents (KES {amount}); "
            "M-Pesa payments here are whole shillings, so nothing was taken from this pull"
        )
    if amount < 1:
        raise PullFailed(f"page {page}: {row.transaction_id} has no amount (KES {amount})")
    return int(amount)


def _phone_fits(payer: str, phone: str) -> bool:
    """Whether M-Pesa's view of the payer (masked, full, hashed or blank) can be `phone`."""
    text = payer.strip()
    if _FULL.fullmatch(text):
        return text == phone
    masked = _MASKED.fullmatch(text)
    if masked:
        return phone.startswith(masked.group(1)) and phone.endswith(masked.group(2))
    return True


def _detail(row: PulledRow) -> dict[str, Any]:
    """What the audit entry of a receipt from the statement says about where it came from."""
    return {
        "source": "pull",
        "receipt": row.transaction_id,
        "paid_at": row.paid_at.isoformat(),
        "shortcode": row.shortcode,
    }


def _kenya(moment: datetime) -> str:
    return moment.astimezone(KENYA_TZ).strftime("%Y-%m-%d %H:%M")


class StatementPull:
    """Pull Transactions for one engine's shop and shortcode."""

    def __init__(
        self, engine: PaymentEngine, source: DirectGateway, receipts: ShopReceipts | None = None
    ) -> None:
        self.engine = engine
        self.source = source
        # The shop's receipt index; None for a till with no relay (nothing to ask).
        self.receipts = receipts
        # Receipts the index already holds for this till (no need to send them again).
        self._published: set[str] = set()
        self.store = engine.store
        self.clock = engine.clock
        self.shop_id = engine.shop_id
        self._running = asyncio.Lock()

    @property
    def shortcode(self) -> str:
        return self.source.shortcode

    def window_start(self, since: datetime | None) -> datetime:
        """Where a pull from `since` (default: as far back as Daraja allows) starts;
        PullInputError for a time in the future or more than 48 hours ago."""
        now = self.clock.now()
        oldest = now - PULL_WINDOW
        if since is None:
            return oldest + WINDOW_MARGIN
        if since.tzinfo is None:
            raise PullInputError("--since must say its timezone (naive times are Kenya time)")
        if since > now:
            raise PullInputError(
                f"--since {_kenya(since)} is in the future (now {_kenya(now)}, Kenya time)"
            )
        if since < oldest:
            raise PullInputError(
                f"--since {_kenya(since)} is more than 48 hours ago: Pull Transactions covers "
                f"only the last 48 hours (from {_kenya(oldest)}, Kenya time)"
            )
        return max(since, oldest + WINDOW_MARGIN)

    async def status(self) -> PullStatus | None:
        return await self.store.pull.status(self.shop_id, self.shortcode)

    async def seconds_until_due(self, interval_s: int) -> float:
        status = await self.status()
        if status is None or status.last_pull_at is None:
            return 0.0
        due = status.last_pull_at + timedelta(seconds=interval_s)
        return max(0.0, (due - self.clock.now()).total_seconds())

    async def pull(
        self, since: datetime | None = None, progress: Progress | None = None
    ) -> PullReport:
        """Pull and reconcile the window from `since`; PullFailed (recorded as the last-pull
        status) when M-Pesa's answer cannot be used, PullInputError for a bad `since`."""
        start = self.window_start(since)
        async with self._running:
            end = self.clock.now() + CLOCK_SKEW
            try:
                await self._ensure_registered()
                rows, pages = await self._fetch(start, end, progress)
                report = await self._reconcile(rows, pages, start, end)
            except PullFailed as failure:
                async with self.store.write() as tx:
                    await self.store.pull.record_pull(
                        tx, self.shop_id, self.shortcode, error=failure.message
                    )
                raise
        log.info("pull of %s: %s", self.shortcode, report)
        return report

    async def _ensure_registered(self) -> None:
        status = await self.status()
        if status is not None and status.registered_at is not None:
            return
        nominated = self.engine.settings.pull.nominated_number
        if not nominated:
            raise PullFailed(
                f"shortcode {self.shortcode} is not registered for Pull Transactions: set "
                "pull.nominated_number (the owner's M-Pesa phone) in the settings"
            )
        production = self.engine.settings.mode.value == "production"
        try:
            await self.source.register_pull(
                nominated, self.engine.callback_base_url, production=production
            )
        except GatewayError as error:
            raise PullFailed(error.message) from None
        async with self.store.write() as tx:
            await self.store.pull.mark_registered(tx, self.shop_id, self.shortcode)

    async def _fetch(
        self, start: datetime, end: datetime, progress: Progress | None
    ) -> tuple[dict[str, PulledRow], int]:
        rows: dict[str, PulledRow] = {}
        offset = 0
        for page in range(1, MAX_PAGES + 1):
            try:
                answer = await self.source.pull_page(start, end, offset)
            except GatewayError as error:
                raise PullFailed(f"page {page}: {error.message}") from None
            if answer.empty:
                return rows, page - 1
            for wire in answer.transactions:
                row = PulledRow(
                    transaction_id=wire.transaction_id,
                    shortcode=self.shortcode,
                    amount=_whole_shillings(wire, page),
                    paid_at=wire.trx_date,
                    payer=wire.msisdn.strip(),
                    bill_ref=wire.bill_reference.strip(),
                    transaction_type=wire.transaction_type,
                )
                seen = rows.get(row.transaction_id)
                if seen is not None and (seen.amount, seen.paid_at) != (row.amount, row.paid_at):
                    raise PullFailed(
                        f"page {page}: {row.transaction_id} comes twice, as KES "
                        f"{seen.amount:,} and as KES {row.amount:,}; nothing was taken from "
                        "this pull"
                    )
                rows[row.transaction_id] = row
            offset += len(answer.transactions)
            if progress is not None:
                progress(PullProgress(page, len(rows)))
        raise PullFailed(f"M-Pesa kept paging past {MAX_PAGES} pages; nothing was taken")

    async def _reconcile(
        self, rows: dict[str, PulledRow], pages: int, start: datetime, end: datetime
    ) -> PullReport:
        pull = self.store.pull
        known = await pull.known(self.shop_id, rows)
        for receipt, (amount, paid_at) in known.items():
            now = rows[receipt]
            if (amount, paid_at) != (now.amount, to_ms(now.paid_at)):
                raise PullFailed(
                    f"{receipt} was pulled before as KES {amount:,} and is now KES "
                    f"{now.amount:,}; nothing was taken from this pull"
                )
        fresh = [row for receipt, row in rows.items() if receipt not in known]
        async with self.store.write() as tx:
            new_rows = await pull.add(tx, self.shop_id, self.shortcode, fresh)
        since = start - CLOCK_SKEW
        # Rows an attempt or a C2B row holds by receipt are matched in SQL below; only the
        # rest are matched here (by amount, reference, time and phone), unless another till
        # of the shop holds them.
        unknown = await pull.unknown(self.shop_id, since)
        shop = await self._shop_wide(rows, unknown)
        matcher = _Matcher(self, [r for r in unknown if r.transaction_id not in shop.elsewhere])
        await matcher.run()
        # Every sale a pulled receipt pays, not only those matched now: a direct payment
        # attached after an earlier pull can make a sale paid twice.
        paid_twice = await self._paid_twice({*rows, *matcher.receipts})
        findings = [*matcher.findings, *paid_twice]
        async with self.store.write() as tx:
            await pull.match_known(tx, self.shop_id, since)
            problem_ids = await self.store.problems.record_many(
                tx,
                self.shop_id,
                ProblemKind.SUSPICIOUS_PATTERN,
                [detail for _, detail in findings],
                till_id=self.engine.till_id,
            )
            await pull.add_findings(
                tx,
                self.shop_id,
                [(f, n) for (f, _), n in zip(findings, problem_ids, strict=True)],
            )
            report = PullReport(
                shortcode=self.shortcode,
                start=start,
                end=end,
                pages=pages,
                rows=len(rows),
                new_rows=new_rows,
                receipts_filled=matcher.filled,
                money_without_sale=len(matcher.findings),
                paid_twice=len(paid_twice),
                known_elsewhere=len(shop.elsewhere),
                resolved_elsewhere=await self._resolve_elsewhere(tx, shop),
                shop_check=shop.unavailable,
            )
            await pull.record_pull(
                tx,
                self.shop_id,
                self.shortcode,
                error=None,
                pages=pages,
                rows_seen=len(rows),
                new_rows=new_rows,
                receipts_filled=report.receipts_filled,
                problems_found=report.problems_found,
            )
        return report

    async def _shop_wide(self, rows: dict[str, PulledRow], unknown: list[PulledRow]) -> _ShopView:
        """Tell the shop's index which pulled receipts this till holds, then ask it about the
        rows nothing here knows and this till's open money-without-a-sale problems."""
        if self.receipts is None:
            return _ShopView()
        problems = await self._open_money_problems()
        try:
            await self._publish(rows)
            held = await self.receipts.known([*(r.transaction_id for r in unknown), *problems])
        except ShopReceiptsUnavailable as error:
            log.warning("pull of %s: shop-wide check not made: %s", self.shortcode, error)
            return _ShopView(
                unavailable=(
                    f"the shop-wide check could not be made ({error}): payments another till "
                    "took may be listed as money without a sale; the next pull checks again"
                )
            )
        return _ShopView(
            elsewhere={
                r.transaction_id: held[r.transaction_id]
                for r in unknown
                if r.transaction_id in held
            },
            problems={n: held[r] for r, n in problems.items() if r in held},
        )

    async def _publish(self, rows: dict[str, PulledRow]) -> None:
        """Catch-up: every pulled receipt a sale here holds, not yet sent, to the index."""
        assert self.receipts is not None
        held = dict(await self.store.pull.held_here(self.shop_id, rows))
        new = [(r, sale) for r, sale in held.items() if r not in self._published]
        conflicts = await self.receipts.register(new)
        for holder in conflicts:
            log.warning(
                "receipt %s is held here by sale %s, and in the shop by %s",
                holder.receipt,
                held.get(holder.receipt),
                holder.words(),
            )
        self._published.update(r for r, _ in new)

    async def _open_money_problems(self) -> dict[str, int]:
        """This till's open money-without-a-sale problems: receipt -> problem id."""
        open_problems = await self.store.problems.list(self.shop_id, limit=OPEN_PROBLEMS_CHECKED)
        return {
            str(p.detail["receipt"]): p.id
            for p in open_problems
            if p.kind is ProblemKind.SUSPICIOUS_PATTERN
            and p.detail.get("pattern") == MONEY_WITHOUT_SALE
            and p.till_id in (None, self.engine.till_id)
            and "receipt" in p.detail
        }

    async def _resolve_elsewhere(self, tx: WriteTx, shop: _ShopView) -> int:
        """Resolve the open problems whose receipt a sale of the shop now holds, each with
        its audit entry, in the pull's transaction."""
        for problem_id, holder in shop.problems.items():
            await self.store.problems.resolve(
                tx,
                self.shop_id,
                problem_id,
                f"Not money without a sale: receipt {holder.receipt} is held by "
                f"{holder.words()} of this shop (the shop's receipt index, at a pull).",
                actor=Actor.SYSTEM,
            )
        return len(shop.problems)

    async def _paid_twice(self, receipts: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """Sales two receipts pay, not yet reported (by a pull, or by the engine's flag)."""
        candidates = [
            money
            for money in await self.store.pull.paid_twice(self.shop_id, receipts)
            if not money.flagged_duplicate
        ]
        reported = await self.store.pull.reported(
            self.shop_id, (f"twice:{m.sale_ref}" for m in candidates)
        )
        return [
            (
                f"twice:{money.sale_ref}",
                {
                    "pattern": "paid_twice",
                    "sale_ref": money.sale_ref,
                    "receipts": sorted(money.receipts),
                    "shortcode": self.shortcode,
                },
            )
            for money in candidates
            if f"twice:{money.sale_ref}" not in reported
        ]


@dataclass(frozen=True, slots=True)
class _ShopView:
    """What the shop's receipt index said during one pull."""

    elsewhere: dict[str, ReceiptHolder] = field(default_factory=dict)
    """Rows nothing here knows, by receipt, with the sale of the shop that holds each."""
    problems: dict[int, ReceiptHolder] = field(default_factory=dict)
    """Open money-without-a-sale problems (by id) whose receipt a sale of the shop holds."""
    unavailable: str | None = None


class _Matcher:
    """One pull's matching of the rows nothing here knows, even by receipt: each gets the
    one receipt-less attempt it fits, or becomes "money without a sale"."""

    def __init__(self, pull: StatementPull, rows: list[PulledRow]) -> None:
        self.pull = pull
        self.rows = rows
        self.findings: list[tuple[str, dict[str, Any]]] = []
        # The receipts this matching gave to an attempt (their sales may be paid twice).
        self.receipts: set[str] = set()
        self.filled = 0

    async def run(self) -> None:
        if not self.rows:
            return
        pull, shop_id, leftovers = self.pull.store.pull, self.pull.shop_id, self.rows
        expiry = timedelta(seconds=self.pull.engine.settings.timings.attempt_expiry_s)
        pool = await pull.attempts_without_receipt(
            shop_id,
            min(r.paid_at for r in leftovers) - expiry - CLOCK_SKEW,
            max(r.paid_at for r in leftovers) + CLOCK_SKEW,
        )
        by_amount: dict[int, list[ReceiptlessAttempt]] = defaultdict(list)
        for candidate in pool:
            by_amount[candidate.amount].append(candidate)
        reported = await pull.reported(shop_id, (f"money:{r.transaction_id}" for r in leftovers))
        prefix = self.pull.engine.shop.account_prefix
        to_fill: list[tuple[PulledRow, ReceiptlessAttempt]] = []
        for row in leftovers:
            fits = [
                c
                for c in by_amount.get(row.amount, ())
                if c.created_at - CLOCK_SKEW <= row.paid_at <= c.expires_at + CLOCK_SKEW
                and (not row.bill_ref or row.bill_ref == account_reference(prefix, c.sale_ref))
                and _phone_fits(row.payer, c.phone)
            ]
            if len(fits) == 1:
                # Taken from the pool: one attempt is paid by one receipt.
                by_amount[row.amount].remove(fits[0])
                if fits[0].state == AttemptState.COMPLETED:
                    to_fill.append((row, fits[0]))
                else:
                    await self._settle(row, fits[0])
                continue
            if f"money:{row.transaction_id}" not in reported:
                self.findings.append((f"money:{row.transaction_id}", self._money(row, len(fits))))
        await self._fill(to_fill)

    async def _fill(self, found: list[tuple[PulledRow, ReceiptlessAttempt]]) -> None:
        """Paid attempts without a receipt get theirs, in one transaction."""
        if not found:
            return
        filled = await self.pull.engine.fill_receipts(
            [(c.id, c.attempt_ref, row.transaction_id, _detail(row)) for row, c in found]
        )
        for attempt in filled:
            self.filled += 1
            if attempt.receipt_number is not None:
                self.receipts.add(attempt.receipt_number)

    async def _settle(self, row: PulledRow, candidate: ReceiptlessAttempt) -> None:
        """The one fitting attempt that is not paid here: STATEMENT_MATCHED through the engine
        (FAILED, EXPIRED, UNKNOWN and NEEDS_REVIEW become COMPLETED); a PENDING one is left to
        its callback or query, and the next pull looks again."""
        engine = self.pull.engine
        async with engine.lock_for(candidate.attempt_ref):
            current = await engine.store.attempts.get(engine.shop_id, candidate.id)
            if current is None or current.state in _AWAITING or current.receipt_number:
                return
            verdict = await engine.apply_evidence(
                current,
                Evidence.STATEMENT_MATCHED,
                Cause.QUERY,
                detail=_detail(row),
                receipt_number=row.transaction_id,
            )
        if verdict.attempt.state is AttemptState.COMPLETED:
            self.filled += 1
            self.receipts.add(row.transaction_id)

    @staticmethod
    def _money(row: PulledRow, fits: int) -> dict[str, Any]:
        if fits:
            reason = (
                f"It fits {fits} payment requests equally; check which sale it pays before "
                "handing over goods or refunding."
            )
        else:
            reason = (
                "No sale on this till and no direct payment it has received knows this "
                "payment: find the customer or refund it."
            )
        return {
            "pattern": MONEY_WITHOUT_SALE,
            "receipt": row.transaction_id,
            "amount": row.amount,
            "phone": row.payer,
            "paid_at": row.paid_at.isoformat(),
            "bill_ref": row.bill_ref,
            "shortcode": row.shortcode,
            "reason": reason,
        }


def statement_pull_for(
    engine: PaymentEngine, receipts: ShopReceipts | None = None
) -> StatementPull | None:
    """The engine's pull, or None when its shop has no own shortcode (a platform shop's
    statement belongs to the platform's paybill). It asks `receipts`, the shop's receipt index
    the composition root built (`smartduka_tui.till.open_till`); None pulls as a till with no
    relay does, calling every payment no sale here holds money without a sale."""
    gateway = direct_gateway(engine.gateway)
    if gateway is None:
        return None
    return StatementPull(engine, gateway, receipts)


class PullSchedule:
    """The reconciler's scheduled pull: every `pull.interval_s` on the engine's clock, once
    the shortcode can be registered (`pull.nominated_number`) or already is."""

    def __init__(self, pull: StatementPull, interval_s: int) -> None:
        self.pull = pull
        self.interval_s = interval_s
        self._loop = BackgroundTask(self._run, "smartduka-pull")

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            wait = await self.pull.seconds_until_due(self.interval_s)
            if wait > 0:
                await self.pull.clock.sleep(wait)
            try:
                await self.pull.pull()
            except PullFailed as failure:
                log.warning("pull of %s failed: %s", self.pull.shortcode, failure.message)
            except Exception:
                log.exception("pull of %s failed; trying again next interval", self.pull.shortcode)
                await self.pull.clock.sleep(self.interval_s)


def scheduled_pull(
    engine: PaymentEngine, receipts: ShopReceipts | None = None
) -> PullSchedule | None:
    """The schedule the reconciler runs, asking `receipts` (as `statement_pull_for`), or
    None: pulls off (interval 0), no own shortcode, or no nominated number to register with."""
    settings = engine.settings.pull
    pull = statement_pull_for(engine, receipts)
    if pull is None or settings.interval_s <= 0 or not settings.nominated_number:
        return None
    return PullSchedule(pull, settings.interval_s)
