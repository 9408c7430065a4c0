"""The shift desk: open a till's shift with a float, read the X report mid-shift, close it with
the cash counted (the Z report), print and export the reports. What the CLI and the manager
screens call; no Textual here.

Every change is one transaction with its audit entry. The close reads the shift's tenders and
the statement inside its own transaction (which holds the write lock), so the expected cash,
the Z number and the stored Z report agree with each other whatever else the till is doing.
An X report changes nothing; viewing, printing or exporting a report is audited. A printer
that is missing or fails never undoes a close: the report is kept and can be printed again.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from smartduka_tui.model import Actor, AuditAction, ShopType
from smartduka_tui.payments.shift_report import (
    ReportKind,
    ShiftReport,
    StatementEntry,
    build_report,
    report_from_json,
    report_to_json,
)
from smartduka_tui.receipts.shift_report import render_csv, render_text
from smartduka_tui.store.shifts import Shift as Shift  # re-exported: the faces name it
from smartduka_tui.store.shifts import ShiftAlreadyOpenError, ShiftConflictError

if TYPE_CHECKING:
    from smartduka_tui.config import PrinterSettings
    from smartduka_tui.store import Store
    from smartduka_tui.store.db import Reader

MAX_FLOAT = 1_000_000
"""The largest float a till is opened with (a million shillings is a bank run, not a float)."""
MAX_COUNTED = 100_000_000
MAX_CASHIER = 40
_WHOLE = re.compile(r"\d{1,3}(,\d{3})+|\d+")


class ShiftError(Exception):
    """A shift action that cannot be done; `message` says why in words for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ShiftInputError(ShiftError):
    """A figure or name given is not acceptable; nothing was changed."""


class ShiftRefused(ShiftError):
    """The action makes no sense now (no open shift, one already open, already closed)."""


class ShiftPrintError(ShiftError):
    """The report did not print; nothing is lost, it can be printed again."""


def parse_shillings(text: str | int, what: str, maximum: int) -> int:
    """A whole number of shillings typed by a person ("2000", "2,000"); ShiftInputError
    saying what is wrong with anything else (blank, not a number, negative, with cents)."""
    if isinstance(text, bool):
        raise ShiftInputError(f"the {what} must be a whole number of shillings")
    if isinstance(text, int):
        value = text
    else:
        cleaned = text.strip().removeprefix("KES").removeprefix("Ksh").strip()
        if not cleaned:
            raise ShiftInputError(f"give the {what} in whole shillings, e.g. 2000")
        if cleaned.startswith("-"):
            raise ShiftInputError(f"the {what} cannot be negative (got {text.strip()})")
        if re.fullmatch(r"[\d,]*[.]\d*", cleaned):
            raise ShiftInputError(
                f"the {what} is in whole shillings, without cents (got {text.strip()})"
            )
        if not _WHOLE.fullmatch(cleaned):
            raise ShiftInputError(
                f"the {what} must be a whole number of shillings, e.g. 2000 (got {text.strip()!r})"
            )
        value = int(cleaned.replace(",", ""))
    if value < 0:
        raise ShiftInputError(f"the {what} cannot be negative (got {value})")
    if value > maximum:
        raise ShiftInputError(f"the {what} can be at most KES {maximum:,} (got KES {value:,})")
    return value


def clean_cashier(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ShiftInputError("give the cashier's name")
    if len(cleaned) > MAX_CASHIER:
        raise ShiftInputError(f"the cashier's name can be at most {MAX_CASHIER} characters")
    return cleaned


@dataclass(frozen=True, slots=True)
class ClosedShift:
    """A close that landed, its Z report, and how printing it went (`print_error` says
    what to do when it did not print; the close stands either way)."""

    shift: Shift
    report: ShiftReport
    printed: bool
    print_error: str | None = None


class ShiftDesk:
    """One till's shifts and reports."""

    def __init__(
        self,
        store: Store,
        shop_id: str,
        till_id: str,
        printer: PrinterSettings,
        *,
        actor: Actor = Actor.MANAGER,
    ) -> None:
        self._store = store
        self.shop_id = shop_id
        self.till_id = till_id
        self.printer = printer
        self.actor = actor

    @property
    def printer_configured(self) -> bool:
        from smartduka_tui.config import PrinterKind

        return self.printer.kind is not PrinterKind.NONE

    def _now(self) -> datetime:
        return self._store.db.clock.now()

    # ------------------------------------------------------------------ reading

    async def current(self) -> Shift | None:
        """The till's open shift, if any."""
        return await self._store.shifts.current(self.shop_id, self.till_id)

    async def recent(self, limit: int = 50) -> list[Shift]:
        """The till's shifts, newest first."""
        return await self._store.shifts.recent(self.shop_id, self.till_id, limit=limit)

    async def z_report(self, z_number: int) -> ShiftReport:
        """The Z report of a closed shift, as it was at close."""
        if z_number < 1:
            raise ShiftInputError(f"a Z number is 1 or more (got {z_number})")
        shift = await self._store.shifts.by_z(self.shop_id, self.till_id, z_number)
        if shift is None or shift.z_report is None:
            raise ShiftRefused(f"till {self.till_id} has no Z {z_number}")
        return report_from_json(shift.z_report)

    async def x_report(self, *, via: str) -> ShiftReport:
        """The open shift's report as it stands (changes nothing; the viewing is audited)."""
        shift = await self._require_open()
        report = await self._build(shift, ReportKind.X, self._now(), reader=None)
        async with self._store.write() as tx:
            await self._store.shifts.record_report(
                tx,
                shift,
                action=AuditAction.SHIFT_X_VIEWED,
                actor=self.actor,
                detail={"via": via, "expected_cash": report.expected_cash},
            )
        return report

    # ------------------------------------------------------------------ changes

    async def check_open(self, float_text: str | int, cashier: str) -> None:
        """What `open` would refuse (a bad figure or name, a shift open already), said before
        the manager is asked for the PIN; changes nothing. `open` checks again when it
        writes."""
        parse_shillings(float_text, "float", MAX_FLOAT)
        clean_cashier(cashier)
        shift = await self.current()
        if shift is not None:
            raise ShiftRefused(str(ShiftAlreadyOpenError(shift)))

    async def check_close(self, counted_text: str | int) -> None:
        """What `close` would refuse (a bad figure, no open shift), said before the manager is
        asked for the PIN; changes nothing. `close` checks again in its transaction."""
        parse_shillings(counted_text, "counted cash", MAX_COUNTED)
        if await self.current() is None:
            raise ShiftRefused(f"till {self.till_id} has no open shift to close; open one first")

    async def open(self, float_text: str | int, cashier: str) -> Shift:
        """Open the till's shift with its float. ShiftInputError for a bad figure or name,
        ShiftRefused when a shift is open already; nothing changes then."""
        opening_float = parse_shillings(float_text, "float", MAX_FLOAT)
        name = clean_cashier(cashier)
        try:
            async with self._store.write() as tx:
                return await self._store.shifts.open(
                    tx,
                    shop_id=self.shop_id,
                    till_id=self.till_id,
                    cashier=name,
                    opening_float=opening_float,
                    actor=self.actor,
                )
        except ShiftConflictError as error:
            raise ShiftRefused(str(error)) from None

    async def close(
        self, counted_text: str | int, *, via: str, print_report: bool = False
    ) -> ClosedShift:
        """Close the open shift with the cash counted: the Z number, the expected cash and
        the Z report are fixed in one transaction with the audit entry. Then, with
        `print_report`, the Z report prints; a printer that fails leaves the close standing
        and says to print it again."""
        counted = parse_shillings(counted_text, "counted cash", MAX_COUNTED)
        try:
            async with self._store.write() as tx:
                shift = await self._store.shifts.current(self.shop_id, self.till_id, tx=tx)
                if shift is None:
                    raise ShiftRefused(
                        f"till {self.till_id} has no open shift to close; open one first"
                    )
                now = self._now()
                draft = await self._build(shift, ReportKind.Z, now, reader=tx, counted=counted)

                def z_report(z_number: int, closed_at: datetime) -> str:
                    return report_to_json(replace(draft, z_number=z_number, until=closed_at))

                closed = await self._store.shifts.close(
                    tx,
                    shift,
                    counted_cash=counted,
                    expected_cash=draft.expected_cash,
                    z_report=z_report,
                    actor=self.actor,
                )
        except ShiftConflictError as error:
            raise ShiftRefused(str(error)) from None
        assert closed.z_report is not None
        report = report_from_json(closed.z_report)
        if not print_report:
            return ClosedShift(closed, report, printed=False)
        try:
            await self.print_report(report, via=via)
        except ShiftPrintError as error:
            return ClosedShift(closed, report, printed=False, print_error=error.message)
        return ClosedShift(closed, report, printed=True)

    # ------------------------------------------------------------------ out of the till

    async def print_report(self, report: ShiftReport, *, via: str) -> None:
        """Print `report` on the receipt printer (worker thread: a slow printer never holds
        the caller up); audited once the printer took it. ShiftPrintError otherwise."""
        from smartduka_tui.printing import PrinterError, print_text

        what = f"{report.kind.value} report"
        if not self.printer_configured:
            raise ShiftPrintError(
                f"no receipt printer is set up (printer.kind in the settings); the {what} "
                "is kept: print it once one is set up"
            )
        try:
            await asyncio.to_thread(print_text, self.printer, render_text(report), what)
        except PrinterError as error:
            raise ShiftPrintError(str(error)) from None
        await self._audit_out(report, AuditAction.SHIFT_REPORT_PRINTED, {"via": via})

    async def export_csv(self, report: ShiftReport, path: Path, *, via: str) -> Path:
        """Write `report` as CSV to a new file; an existing file is never overwritten."""
        target = Path(path)
        text = render_csv(report)
        try:
            await asyncio.to_thread(_write_new, target, text)
        except FileExistsError:
            raise ShiftInputError(
                f"{target} already exists; choose another file name (nothing was written)"
            ) from None
        except OSError as error:
            raise ShiftError(
                f"could not write {target} ({(error.strerror or str(error)).lower()})"
            ) from None
        await self._audit_out(
            report, AuditAction.SHIFT_REPORT_EXPORTED, {"via": via, "file": target.name}
        )
        return target

    # ------------------------------------------------------------------ inside

    async def _require_open(self) -> Shift:
        shift = await self.current()
        if shift is None:
            raise ShiftRefused(f"till {self.till_id} has no open shift; open one first")
        return shift

    async def _audit_out(
        self, report: ShiftReport, action: AuditAction, detail: dict[str, str]
    ) -> None:
        shift = await self._store.shifts.get(self.shop_id, report.shift_id)
        if shift is None:
            return
        async with self._store.write() as tx:
            await self._store.shifts.record_report(
                tx,
                shift,
                action=action,
                actor=self.actor,
                detail={"report": report.kind.value} | detail,
            )

    async def _build(
        self,
        shift: Shift,
        kind: ReportKind,
        until: datetime,
        *,
        reader: Reader | None,
        counted: int | None = None,
    ) -> ShiftReport:
        store = self._store
        shop = await store.shops.get(self.shop_id)
        shop_name = shop.name if shop is not None else self.shop_id
        shortcode = (
            shop.business_shortcode
            if shop is not None and shop.mpesa_type is not ShopType.PLATFORM
            else None
        )
        # The window runs to the end of `until`'s millisecond: a tender taken in the same
        # millisecond as the close belongs to the closing shift.
        window_end = until.replace(microsecond=until.microsecond // 1000 * 1000 + 999)
        rows = await store.shifts.tenders(
            self.shop_id, self.till_id, shift.opened_at, window_end, tx=reader
        )
        statement: list[StatementEntry] = []
        others: list[str] = []
        last_pulled: datetime | None = None
        if shortcode is not None:
            pulled = await store.shifts.statement_receipts(
                self.shop_id, self.till_id, shortcode, shift.opened_at, window_end, tx=reader
            )
            statement = [StatementEntry(p.receipt, p.amount, p.paid_at) for p in pulled]
            others = [p.receipt for p in pulled if p.other_till]
            status = await store.pull.status(self.shop_id, shortcode)
            last_pulled = None if status is None else status.last_ok_at
        return build_report(
            kind=kind,
            shop_name=shop_name,
            till_id=self.till_id,
            shift_id=shift.id,
            cashier=shift.cashier,
            opened_at=shift.opened_at,
            until=until,
            opening_float=shift.opening_float,
            tenders=rows,
            counted_cash=counted,
            shortcode=shortcode,
            statement=statement,
            other_till_receipts=others,
            last_pulled=last_pulled,
        )


def _write_new(path: Path, text: str) -> None:
    """Create `path` with `text`; FileExistsError if it is there (never overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


async def desk_for(
    store: Store,
    printer: PrinterSettings,
    *,
    shop_id: str | None,
    till_id: str | None = None,
    actor: Actor = Actor.MANAGER,
) -> ShiftDesk:
    """The shift desk of this data folder's till: the shop named (or the only one here) and
    the till named (or the shop's only till here). ShiftInputError naming what is missing."""
    if shop_id is None:
        shops = await store.shops.list_ids()
        if len(shops) != 1:
            raise ShiftInputError(
                "name the shop with --shop ID (or set shop_id in the settings): this data "
                f"folder has {len(shops)} shops"
            )
        shop_id = shops[0]
    elif await store.shops.get(shop_id) is None:
        raise ShiftInputError(f"there is no shop {shop_id!r} on this till")
    row_ids = [till.id for till in await store.tills.for_shop(shop_id)]
    if till_id is None:
        if len(row_ids) != 1:
            raise ShiftInputError(
                f"shop {shop_id!r} has {len(row_ids)} tills enrolled here: name one with --till"
            )
        till_id = row_ids[0]
    elif till_id not in row_ids:
        raise ShiftInputError(f"there is no till {till_id!r} of shop {shop_id!r} here")
    return ShiftDesk(store, shop_id, till_id, printer, actor=actor)


NO_SHIFT_FOR_CASH = (
    "Cash needs an open shift: a manager opens one with F9, Shifts, then O (the float in "
    "the drawer). M-Pesa needs none."
)


async def cash_refusal(
    store: Store, shop_id: str, till_id: str, *, tx: Reader | None = None
) -> str | None:
    """Why the till cannot take cash now (no open shift: the drawer's cash belongs to one),
    or None. The sales desk asks it inside the transaction that takes the cash."""
    if await store.shifts.current(shop_id, till_id, tx=tx) is None:
        return NO_SHIFT_FOR_CASH
    return None
