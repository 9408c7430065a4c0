"""Audit entries and payment states in plain words for the manager."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from smartduka_tui.model import Actor, AttemptState, AuditAction
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.store.records import AuditEntry

ACTOR_WORDS: dict[Actor, str] = {
    Actor.CASHIER: "Cashier",
    Actor.MANAGER: "Manager",
    Actor.SYSTEM: "Till",
    Actor.CALLBACK: "M-Pesa callback",
    Actor.QUERY: "M-Pesa query",
    Actor.EXPIRY: "Expiry",
}

EVIDENCE_WORDS: dict[str, str] = {
    "push_accepted": "M-Pesa accepted the request; the prompt went to the customer's phone",
    "push_refused": "M-Pesa refused the request; nothing was charged",
    "push_outcome_unknown": "M-Pesa's answer to the request never arrived",
    "callback_success": "M-Pesa's callback said paid",
    "confirmed_success": "M-Pesa's callback said paid and a query confirmed it",
    "confirmation_inconclusive": "M-Pesa's callback said paid; the confirming query had no answer",
    "confirmation_contradicted": "M-Pesa's callback said paid but its query said not paid",
    "callback_failure": "M-Pesa's callback said not paid",
    "callback_suspect": "M-Pesa's callback did not match this payment",
    "query_success": "M-Pesa's query said paid",
    "query_failure": "M-Pesa's query said not paid",
    "query_inconclusive": "M-Pesa's query gave no final answer",
    "expiry": "No result from M-Pesa before the payment expired",
    "receipt_arrived": "The M-Pesa receipt number arrived",
}

# Why an STK query was made (the engine's `asked_by`). A cashier's "check now" and a manager's
# re-check both come through the engine's check_now; the manager's is audited just before.
ASKED_WORDS: dict[str, str] = {
    "query": "the till's regular check",
    "expiry": "the last check before expiry",
    "cashier": "asked on request",
    "manager": "asked by the manager",
}

STATE_WORDS: dict[AttemptState, str] = {
    AttemptState.CREATED: "being sent",
    AttemptState.PENDING: "waiting for the customer",
    AttemptState.UNKNOWN: "outcome unknown",
    AttemptState.COMPLETED: "paid",
    AttemptState.FAILED: "not paid",
    # Issue #11's words, as on the cashier's screens: expiry means no answer, not "not paid".
    AttemptState.EXPIRED: "outcome unknown",
    AttemptState.NEEDS_REVIEW: "needs review",
}


def kenya_time(moment: datetime) -> str:
    """How the manager screens and exports write a moment: Kenya wall-clock time."""
    return moment.astimezone(KENYA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def shillings(amount: int | None) -> str:
    return "" if amount is None else f"KES {amount:,}"


def _phone_words(value: Any) -> str:
    return mask_phone(value) if isinstance(value, str) and value.isdigit() else str(value)


def describe_entry(entry: AuditEntry) -> str:
    """One audit entry in plain words. Phone numbers are masked; no entry holds a secret."""
    detail = entry.detail
    action = entry.action
    if action == AuditAction.ATTEMPT_CREATED:
        return (
            f"Payment request for sale {detail.get('sale_ref')}: "
            f"{shillings(as_int(detail.get('amount')))} from "
            f"{_phone_words(detail.get('phone'))} (attempt {detail.get('attempt_number')})"
        )
    if action in (AuditAction.ATTEMPT_TRANSITION, AuditAction.ATTEMPT_UPDATED):
        return _describe_move(detail)
    if action == AuditAction.EVIDENCE_NO_CHANGE:
        words = EVIDENCE_WORDS.get(str(detail.get("evidence")), str(detail.get("evidence")))
        state = str(detail.get("state", "")).lower().replace("_", " ")
        code = detail.get("query_code") or detail.get("callback_code")
        said = f" (code {code})" if code is not None else ""
        return f"{words}{said}; nothing changed, it stayed {state}"
    if action == AuditAction.EVIDENCE_AWAITING_CONFIRMATION:
        receipt = f" (receipt {detail['receipt']})" if detail.get("receipt") else ""
        return f"M-Pesa's callback said paid{receipt}; waiting for a query to confirm it"
    if action == AuditAction.EVIDENCE_CONFIRMATION_SETTLED:
        return f"The confirming query answered (code {detail.get('query_code')})"
    if action == AuditAction.ATTEMPT_HANDED_TO_RECONCILER:
        return "The cashier stopped waiting; SmartDuka kept checking with M-Pesa"
    if action == AuditAction.ATTEMPT_RETRY:
        no_sms = (
            "; the cashier confirmed no M-Pesa SMS arrived"
            if detail.get("customer_got_no_sms")
            else ""
        )
        return (
            f"Retry of attempt {detail.get('retry_of')} (which was "
            f"{str(detail.get('previous_state', '')).lower()}){no_sms}"
        )
    if action == AuditAction.ATTEMPT_FLAGGED:
        flags = ", ".join(str(f).lower().replace("_", " ") for f in detail.get("flags", []))
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        return f"Flagged {flags}{reason}"
    if action == AuditAction.ATTEMPT_RESOLVED:
        return f"Marked resolved: {detail.get('note')}"
    if action == AuditAction.MANAGER_RECHECK:
        return "The manager asked M-Pesa about it again"
    if action == AuditAction.PROBLEM_RECORDED:
        kind = str(detail.get("kind", "")).replace("_", " ")
        return f"Problem {detail.get('problem_id')} recorded: {kind}"
    if action == AuditAction.PROBLEM_RESOLVED:
        return f"Problem {detail.get('problem_id')} marked resolved: {detail.get('note')}"
    if action.startswith("manager."):
        return _describe_manager(action, detail)
    if action.startswith("shop."):
        return _describe_shop(action, detail)
    if action.startswith("sale."):
        return _describe_sale(action, detail)
    if action.startswith("shift."):
        return _describe_shift(action, detail)
    return _generic(action, detail)


_TENDER_KIND_WORDS = {"CASH": "cash", "MPESA_STK": "M-Pesa prompt", "MPESA_C2B": "direct M-Pesa"}


def _describe_sale(action: str, detail: Mapping[str, Any]) -> str:
    sale = f"Sale {detail.get('sale_ref')}"
    total = shillings(as_int(detail.get("total")))
    if action == AuditAction.SALE_OPENED:
        was = as_int(detail.get("was"))
        if was is not None:
            return f"{sale}: total changed from {shillings(was)} to {total}"
        return f"{sale} opened: total {total}"
    if action == AuditAction.SALE_TENDER_ADDED:
        kind = _TENDER_KIND_WORDS.get(str(detail.get("kind")), str(detail.get("kind")))
        words = f"{sale}: {shillings(as_int(detail.get('amount')))} paid by {kind}"
        given = as_int(detail.get("cash_given"))
        if given is not None:
            change = shillings(as_int(detail.get("change_given")))
            words += f" (given {shillings(given)}, change {change})"
        if detail.get("receipt"):
            words += f", receipt {detail['receipt']}"
        return words
    if action == AuditAction.SALE_PAID:
        return f"{sale} paid in full ({total})"
    if action == AuditAction.SALE_ABANDONED:
        paid = shillings(as_int(detail.get("paid")))
        return f"{sale} abandoned with {paid} of {total} paid ({detail.get('how')})"
    if action in (AuditAction.SALE_VOIDED, AuditAction.SALE_REFUNDED):
        done = "voided" if action == AuditAction.SALE_VOIDED else "refunded"
        cash = shillings(as_int(detail.get("cash_back")))
        return f"{sale} {done}: {cash} cash given back; note: {detail.get('note')}"
    return _generic(action, detail)


def _describe_move(detail: Mapping[str, Any]) -> str:
    evidence = str(detail.get("evidence", ""))
    words = EVIDENCE_WORDS.get(evidence, "Updated")
    before, after = str(detail.get("from", "")), str(detail.get("to", ""))
    moved = f": {before} → {after}" if before != after else ""
    fields = detail.get("fields") or {}
    extra: list[str] = []
    code = fields.get("result_code")
    if code is not None:
        desc = fields.get("result_desc")
        extra.append(f"code {code}" + (f", {desc}" if desc else ""))
    elif fields.get("result_desc"):
        extra.append(str(fields["result_desc"]))
    if fields.get("receipt_number"):
        extra.append(f"receipt {fields['receipt_number']}")
    if detail.get("review_reason"):
        extra.append(f"why: {detail['review_reason']}")
    flags = [str(f).lower().replace("_", " ") for f in detail.get("flags_added", [])]
    if flags:
        extra.append("flagged " + ", ".join(flags))
    if detail.get("asked_by"):
        asked = str(detail["asked_by"])
        extra.append(ASKED_WORDS.get(asked, f"asked by the {asked}"))
    return words + moved + (f" ({'; '.join(extra)})" if extra else "")


def _describe_manager(action: str, detail: Mapping[str, Any]) -> str:
    purpose = f" to open {detail['purpose']}" if detail.get("purpose") else ""
    if action == AuditAction.MANAGER_SIGN_IN:
        return f"Manager signed in{purpose}"
    if action == AuditAction.MANAGER_SIGN_IN_FAILED:
        return f"Wrong manager PIN{purpose} ({detail.get('failures')} in a row)"
    if action == AuditAction.MANAGER_LOCKED_OUT:
        return f"Manager PIN locked after too many wrong tries, until {detail.get('locked_until')}"
    if action == AuditAction.MANAGER_SIGN_IN_REFUSED:
        return f"Manager PIN refused while locked{purpose}"
    if action == AuditAction.MANAGER_SIGNED_OUT:
        return f"Manager signed out ({detail.get('reason')})"
    if action == AuditAction.MANAGER_PIN_SET:
        return "Manager PIN set"
    if action == AuditAction.MANAGER_PIN_CHANGED:
        return "Manager PIN changed"
    if action == AuditAction.MANAGER_PIN_RESET:
        return f"Manager PIN reset ({detail.get('reason')})"
    if action == AuditAction.MANAGER_PIN_COUNTERS_SEALED:
        return "Manager PIN's count of wrong tries protected by the encryption key from now on"
    if action == AuditAction.MANAGER_EXPORT:
        return f"Exported {detail.get('rows')} problem payments to CSV ({detail.get('filter')})"
    return _generic(action, detail)


def _describe_shop(action: str, detail: Mapping[str, Any]) -> str:
    if action == AuditAction.SHOP_VERIFICATION:
        return f"M-Pesa credentials checked: {detail.get('status')}"
    if action == AuditAction.SHOP_VERIFICATION_UNREACHABLE:
        return f"M-Pesa credentials could not be checked: {detail.get('reason')}"
    if action == AuditAction.SHOP_UPDATED:
        changed = ", ".join(f"{k}={v}" for k, v in (detail.get("changed") or {}).items())
        secrets_set = ", ".join(detail.get("secrets_set") or [])
        cleared = ", ".join(detail.get("secrets_cleared") or [])
        parts = [p for p in (changed, secrets_set and f"replaced {secrets_set}") if p]
        if cleared:
            parts.append(f"removed {cleared}")
        return "M-Pesa settings changed: " + ("; ".join(parts) or "nothing")
    if action == AuditAction.SHOP_ADDED:
        return f"Shop added ({detail.get('mpesa_type')})"
    return _generic(action, detail)


_SHIFT_REPORT_OUT: dict[str, str] = {
    AuditAction.SHIFT_REPORT_PRINTED: "printed",
    AuditAction.SHIFT_REPORT_EXPORTED: "exported",
}


def _describe_shift(action: str, detail: Mapping[str, Any]) -> str:
    """A shift's entry as what happened to the drawer; the stored detail is as it always was
    (the words are made when the log is read, so old entries read the same way)."""
    till = f"till {detail.get('till_id')}"
    if action == AuditAction.SHIFT_OPENED:
        return (
            f"Shift opened on {till} by {detail.get('cashier')} with a float of "
            f"{shillings(as_int(detail.get('float')))}"
        )
    if action == AuditAction.SHIFT_CLOSED:
        counted = as_int(detail.get("counted_cash"))
        expected = as_int(detail.get("expected_cash"))
        return (
            f"Shift closed on {till}: Z {detail.get('z_number')}, counted {shillings(counted)}"
            f" against {shillings(expected)} expected, {_drawer(as_int(detail.get('difference')))}"
        )
    if action == AuditAction.SHIFT_X_VIEWED:
        return (
            f"X report of the open shift on {till} viewed ({detail.get('via')}): "
            f"{shillings(as_int(detail.get('expected_cash')))} expected in the drawer"
        )
    done = _SHIFT_REPORT_OUT.get(action)
    if done is not None:
        z_number = detail.get("z_number")
        which = (
            f"Z report {z_number}"
            if detail.get("report") == "Z" and z_number is not None
            else "X report of the open shift"
        )
        where = f" to {detail['file']}" if detail.get("file") else ""
        return f"{which} on {till} {done}{where} ({detail.get('via')})"
    return _generic(action, detail)


def _drawer(difference: int | None) -> str:
    """The counted drawer against the expected, as the Z report says it."""
    if difference is None:
        return "no difference recorded"
    if difference == 0:
        return "the drawer matched"
    if difference > 0:
        return f"{shillings(difference)} over"
    return f"{shillings(-difference)} short"


def _generic(action: str, detail: Mapping[str, Any]) -> str:
    shown = ", ".join(
        f"{key}={_phone_words(value) if key == 'phone' else value}"
        for key, value in sorted(detail.items())
    )
    return action + (f" ({shown})" if shown else "")


def as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+(\.0+)?", value):
        return int(value.split(".")[0])
    return None
