"""The M-Pesa statement APIs: C2B register URL and direct payments, Dynamic QR, Transaction
Status, Reversal and Pull Transactions (REFERENCE.md sections 7 and 7b).

State is kept per shortcode, like the STK side, so parallel tests isolate by shortcode. Results
of Transaction Status and Reversal, and C2B confirmations, are posted asynchronously by a small
scheduler on simulator time; a per-shortcode `AsyncResultScenario` delays, drops, duplicates or
times them out (a timeout posts to QueueTimeOutURL instead of ResultURL).
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import heapq
import io
import itertools
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import segno

from smartduka_tui.simulator import codes
from smartduka_tui.simulator.codes import ErrorSpec
from smartduka_tui.simulator.courier import BackgroundSender
from smartduka_tui.simulator.redact import redact_url
from smartduka_tui.simulator.replies import ControlError, Reply, json_reply, parse_body, refuse
from smartduka_tui.simulator.schemas import Environment, ShortcodeKind
from smartduka_tui.simulator.security import CredentialAuthority
from smartduka_tui.simulator.statement_schemas import (
    AsyncResultScenario,
    C2BPaymentRequest,
    C2BPaymentView,
    InitiatorRegistration,
    NoticeDelivery,
    NoticeKind,
    ValidationOutcome,
)
from smartduka_tui.simulator.statement_wire import (
    PULL_DATE_FORMAT,
    PullQueryRequest,
    PullRegisterRequest,
    QrCodeRequest,
    RegisterUrlRequest,
    ReversalRequest,
    TransactionStatusRequest,
    banned_word,
)
from smartduka_tui.simulator.wire import KENYA, daraja_timestamp, new_receipt

if TYPE_CHECKING:
    from smartduka_tui.simulator.engine import DarajaRequest, Simulator
    from smartduka_tui.simulator.records import Merchant

REGISTER_URL_PATH = "/mpesa/c2b/v2/registerurl"
QR_PATH = "/mpesa/qrcode/v1/generate"
TRANSACTION_STATUS_PATH = "/mpesa/transactionstatus/v1/query"
REVERSAL_PATH = "/mpesa/reversal/v1/request"
PULL_REGISTER_PATH = "/pulltransactions/v1/register"
PULL_QUERY_PATH = "/pulltransactions/v1/query"
PATHS = frozenset(
    {
        REGISTER_URL_PATH,
        QR_PATH,
        TRANSACTION_STATUS_PATH,
        REVERSAL_PATH,
        PULL_REGISTER_PATH,
        PULL_QUERY_PATH,
    }
)

URLS_ALREADY_REGISTERED = ErrorSpec(500, "500.003.1001", "Urls are already registered.")
ACCEPTED_TEXT = "Accept the service request successfully."
PULL_WINDOW = timedelta(hours=48)
# Reversal's documented result codes (REFERENCE.md section 7); 0 is an integer, the rest strings.
ALREADY_REVERSED = "R000001"
INVALID_ORIGINAL = "R000002"
RESULT_TEXTS: dict[int | str, str] = {
    0: "The service request is processed successfully.",
    ALREADY_REVERSED: "The transaction has already been reversed.",
    INVALID_ORIGINAL: "The OriginalTransactionID is invalid.",
    2001: "The initiator information is invalid.",
    21: "The initiator is not allowed to initiate this request.",
    11: "The DebitParty is in an invalid state.",
    2006: "Declined due to account rule.",
    2028: "The request is not permitted according to product assignment.",
    8006: "The security credential is locked.",
    1: "The balance is insufficient for the transaction.",
}
QUEUE_TIMEOUT_TEXT = "The request timed out in the queue."


def describe(code: int | str) -> str:
    return RESULT_TEXTS.get(code, codes.describe(code))


def mask_msisdn(phone: str) -> str:
    """C2B v2's mask: "2547 ***** 149" (REFERENCE.md section 7)."""
    return f"{phone[:4]} ***** {phone[-3:]}"


def _conversation_id(moment: datetime) -> str:
    return f"AG_{moment.astimezone(KENYA):%Y%m%d}_" + secrets.token_hex(10)


def _originator_id() -> str:
    return f"{secrets.randbelow(90000) + 10000}-{secrets.randbelow(9_000_000) + 1_000_000}-1"


def _money_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _json_number(amount: Decimal) -> int | str:
    """Daraja writes whole amounts as bare numbers in result parameters; an amount with cents
    is written as text, so it never passes through a float."""
    return int(amount) if amount == amount.to_integral_value() else _money_text(amount)


@dataclass(eq=False)
class StatementEntry:
    """One credit to a shortcode: a direct C2B payment, or a paid STK push."""

    trans_id: str
    shortcode: str
    phone: str
    amount: Decimal
    first_name: str
    bill_ref_number: str
    transaction_type: str
    at: datetime
    completed: bool = True
    reversed: bool = False
    validation: ValidationOutcome = ValidationOutcome.OFF
    confirmation_registered: bool = False


@dataclass(eq=False)
class _Ledger:
    """What one shortcode has told, and been paid, through the statement APIs."""

    confirmation_url: str | None = None
    validation_url: str | None = None
    response_type: str = "Completed"
    pull_callback_url: str | None = None
    initiators: dict[str, str] = field(default_factory=dict, repr=False)
    payments: list[StatementEntry] = field(default_factory=list)
    scenario: AsyncResultScenario = field(default_factory=AsyncResultScenario)
    scenario_left: int | None = None
    balance: Decimal = Decimal("0.00")
    qr_codes: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Receipts reversed, paid STK pushes included (their entries are rebuilt on each read).
    reversed_receipts: set[str] = field(default_factory=set)
    trans_ids: set[str] = field(default_factory=set)
    # The statement as last read, oldest first, with what it was read from: a pull of 10,000
    # rows asks for it once per page, and sorting it each time made the pull quadratic.
    statement: tuple[tuple[int, int, int], list[StatementEntry]] | None = field(
        default=None, repr=False
    )


@dataclass(order=True)
class _Notice:
    due: float
    seq: int
    kind: NoticeKind = field(compare=False)
    shortcode: str = field(compare=False)
    reference: str = field(compare=False)
    url: str = field(compare=False, repr=False)
    payload: str = field(compare=False)
    copy_number: int = field(compare=False)


class Statement(BackgroundSender[_Notice]):
    """The statement side of one simulator: ledgers, the credential authority, the notices."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim.clock)
        self.sim = sim
        self.authority = CredentialAuthority()
        self._ledgers: dict[str, _Ledger] = {}
        self._log: deque[NoticeDelivery] = deque(maxlen=sim.config.callback_log_limit)
        self._log_seq = itertools.count(1)

    def ledger(self, shortcode: str) -> _Ledger:
        return self._ledgers.setdefault(shortcode, _Ledger())

    def forget(self, shortcode: str) -> None:
        """A reset shortcode starts with an empty statement; planned notices are dropped."""
        self._ledgers.pop(shortcode, None)
        self._jobs = [job for job in self._jobs if job.shortcode != shortcode]
        heapq.heapify(self._jobs)

    # ----------------------------------------------------------------- Daraja endpoints

    async def handle(self, request: DarajaRequest, payload: dict[str, Any] | None) -> Reply:
        if request.method != "POST":
            raise refuse(codes.METHOD_NOT_ALLOWED)
        app = self.sim.bearer(request.authorization)
        body = self.sim.json_body(request, payload)
        if request.path == REGISTER_URL_PATH:
            register = parse_body(RegisterUrlRequest, body)
            return self._register_url(self.sim.merchant_for(app, register.ShortCode), register)
        if request.path == QR_PATH:
            return self._qr(parse_body(QrCodeRequest, body))
        if request.path == TRANSACTION_STATUS_PATH:
            status = parse_body(TransactionStatusRequest, body)
            return self._transaction_status(self.sim.merchant_for(app, status.PartyA), status)
        if request.path == REVERSAL_PATH:
            if "RecieverIdentifierType" not in body:
                raise refuse(codes.invalid_field("RecieverIdentifierType"))
            reversal = parse_body(ReversalRequest, body)
            return self._reversal(self.sim.merchant_for(app, reversal.ReceiverParty), reversal)
        if request.path == PULL_REGISTER_PATH:
            pull = parse_body(PullRegisterRequest, body)
            return self._pull_register(self.sim.merchant_for(app, pull.ShortCode), pull)
        query = parse_body(PullQueryRequest, body)
        return self._pull_query(self.sim.merchant_for(app, query.ShortCode), query)

    def _register_url(self, merchant: Merchant, request: RegisterUrlRequest) -> Reply:
        production = self.sim.merchant_settings(merchant).environment is Environment.PRODUCTION
        for name in ("ValidationURL", "ConfirmationURL"):
            url = getattr(request, name)
            if url is None:
                continue
            word = banned_word(url)
            if word is not None:
                raise refuse(
                    ErrorSpec(
                        400, "400.003.02", f"Bad Request - Invalid {name} - URL has the word {word}"
                    )
                )
            if production and not url.startswith("https://"):
                raise refuse(codes.invalid_field(name))
        ledger = self.ledger(merchant.shortcode)
        if production and ledger.confirmation_url is not None:
            raise refuse(URLS_ALREADY_REGISTERED)
        ledger.confirmation_url = request.ConfirmationURL
        ledger.validation_url = request.ValidationURL
        ledger.response_type = request.ResponseType
        return json_reply(
            {
                # Safaricom's misspelling (REFERENCE.md section 7).
                "OriginatorCoversationID": _originator_id(),
                "ResponseCode": "0",
                "ResponseDescription": "Success",
            }
        )

    def _qr(self, request: QrCodeRequest) -> Reply:
        request_id = f"{secrets.randbelow(90000) + 10000}-{secrets.randbelow(10**8)}-1"
        # What Safaricom's QR holds is not published; the simulator's own text is enough for
        # a phone that "scans" it through the control API.
        content = "|".join(
            ("SIMQR", request.TrxCode, request.CPI, str(request.Amount), request.RefNo, request_id)
        )
        qr = segno.make_qr(content, error="m")
        width = qr.symbol_size(scale=1, border=4)[0]
        buffer = io.BytesIO()
        qr.save(buffer, kind="png", scale=max(1, request.Size // width), border=4)
        self.ledger(request.CPI).qr_codes[request_id] = (request.Amount, request.RefNo)
        return json_reply(
            {
                "ResponseCode": f"AG_{self.sim.clock.now():%Y%m%d}_" + secrets.token_hex(8),
                "RequestID": request_id,
                "ResponseDescription": "QR Code Successfully Generated.",
                "QRCode": base64.b64encode(buffer.getvalue()).decode("ascii"),
            }
        )

    def _accepted(self) -> tuple[Reply, str, str]:
        originator = _originator_id()
        conversation = _conversation_id(self.sim.clock.now())
        body = {
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED_TEXT,
        }
        return json_reply(body), originator, conversation

    def _initiator_ok(self, shortcode: str, name: str, credential: str) -> bool:
        expected = self.ledger(shortcode).initiators.get(name)
        password = self.authority.decrypt(credential)
        return (
            expected is not None
            and password is not None
            and secrets.compare_digest(expected.encode(), password.encode())
        )

    def entries(self, merchant: Merchant) -> list[StatementEntry]:
        """Every completed credit to a shortcode: its C2B payments and its paid STK pushes."""
        ledger = self.ledger(merchant.shortcode)
        settled = self.sim.settled_transactions(merchant)
        # Entries are only ever appended, settled pushes only grow, and a reversal adds its
        # receipt: the three counts tell whether the statement changed since it was read.
        read_from = (len(ledger.payments), len(settled), len(ledger.reversed_receipts))
        if ledger.statement is not None and ledger.statement[0] == read_from:
            return ledger.statement[1]
        found = [p for p in ledger.payments if p.completed]
        for transaction in settled:
            if transaction.result_code == 0:
                found.append(
                    StatementEntry(
                        trans_id=transaction.receipt,
                        shortcode=merchant.shortcode,
                        phone=transaction.phone,
                        amount=Decimal(transaction.amount),
                        first_name="",
                        bill_ref_number=transaction.account_reference,
                        transaction_type=_c2b_type(merchant),
                        at=transaction.resolved_wall(),
                        reversed=transaction.receipt in ledger.reversed_receipts,
                    )
                )
        statement = sorted(found, key=_moment)
        ledger.statement = (read_from, statement)
        return statement

    def _find(self, merchant: Merchant, receipt: str | None) -> StatementEntry | None:
        if receipt is None:
            return None
        return next((e for e in self.entries(merchant) if e.trans_id == receipt), None)

    def _find_in_organisation(
        self, merchant: Merchant, receipt: str | None
    ) -> tuple[StatementEntry, str] | None:
        """The receipt in the shortcode's statement, else in that of another shortcode of the
        same Daraja app (the organisation's other tills or branches), with the shortcode paid:
        Transaction Status sees those and names the credited party, so a till can tell a
        receipt paid to a sibling till from one that does not exist."""
        own = self._find(merchant, receipt)
        if own is not None:
            return own, merchant.shortcode
        for shortcode in self.sim.app_view(merchant.app).shortcodes:
            if shortcode != merchant.shortcode:
                sibling = self._find(self.sim.registered_merchant(shortcode), receipt)
                if sibling is not None:
                    return sibling, shortcode
        return None

    def _transaction_status(self, merchant: Merchant, request: TransactionStatusRequest) -> Reply:
        reply, originator, conversation = self._accepted()
        found = self._find_in_organisation(merchant, request.TransactionID)
        entry, paid_to = (None, merchant.shortcode) if found is None else found
        code: int | str
        parameters: list[dict[str, object]] = []
        if not self._initiator_ok(
            merchant.shortcode, request.Initiator, request.SecurityCredential
        ):
            code = 2001
        elif entry is None:
            # Safaricom documents no code for an unknown receipt here; Reversal's is used.
            code = INVALID_ORIGINAL
        else:
            code = 0
            moment = int(daraja_timestamp(entry.at))
            parameters = _result_parameters(
                {
                    "DebitPartyName": f"{mask_msisdn(entry.phone)} - {entry.first_name}",
                    "CreditPartyName": f"{paid_to} - SIMULATED SHOP",
                    "OriginatorConversationID": originator,
                    "InitiatedTime": moment,
                    "DebitAccountType": "MMF Account For Customer",
                    "DebitPartyCharges": "",
                    "TransactionReason": entry.bill_ref_number,
                    "ReasonType": entry.transaction_type,
                    "TransactionStatus": "Reversed" if entry.reversed else "Completed",
                    "FinalisedTime": moment,
                    "Amount": _json_number(entry.amount),
                    "ConversationID": conversation,
                    "ReceiptNo": entry.trans_id,
                }
            )
        self._plan_result(
            merchant.shortcode,
            NoticeKind.TRANSACTION_STATUS_RESULT,
            request.ResultURL,
            request.QueueTimeOutURL,
            reference=request.TransactionID or originator,
            build=lambda forced: _result_body(
                forced if forced is not None else code,
                originator,
                conversation,
                request.TransactionID or "",
                parameters if forced in (None, 0) else [],
                request.Occasion,
            ),
        )
        return reply

    def _reversal(self, merchant: Merchant, request: ReversalRequest) -> Reply:
        reply, originator, conversation = self._accepted()
        entry = self._find(merchant, request.TransactionID)
        code: int | str
        if not self._initiator_ok(
            merchant.shortcode, request.Initiator, request.SecurityCredential
        ):
            code = 2001
        elif entry is None or request.Amount != entry.amount:
            code = INVALID_ORIGINAL
        elif entry.reversed:
            code = ALREADY_REVERSED
        else:
            code = 0
        reversal_id = new_receipt()

        def build(forced: int | str | None) -> str:
            final = forced if forced is not None else code
            # The ledger changes when the result is decided, as at Safaricom, not on acceptance.
            parameters: list[dict[str, object]] = []
            ledger = self.ledger(merchant.shortcode)
            if final == 0 and entry is not None:
                if not entry.reversed:
                    entry.reversed = True
                    ledger.reversed_receipts.add(entry.trans_id)
                    ledger.balance -= entry.amount
                parameters = _result_parameters(
                    {
                        "DebitAccountBalance": f"Utility Account|KES|{_money_text(ledger.balance)}",
                        "Amount": _json_number(entry.amount),
                        "TransCompletedTime": int(daraja_timestamp(self.sim.clock.now())),
                        "OriginalTransactionID": entry.trans_id,
                        "Charge": 0,
                        "CreditPartyPublicName": mask_msisdn(entry.phone),
                        "DebitPartyPublicName": f"{merchant.shortcode} - SIMULATED SHOP",
                    }
                )
            return _result_body(
                final, originator, conversation, reversal_id, parameters, request.Occasion
            )

        self._plan_result(
            merchant.shortcode,
            NoticeKind.REVERSAL_RESULT,
            request.ResultURL,
            request.QueueTimeOutURL,
            reference=request.TransactionID,
            build=build,
        )
        return reply

    def _pull_register(self, merchant: Merchant, request: PullRegisterRequest) -> Reply:
        ledger = self.ledger(merchant.shortcode)
        if ledger.pull_callback_url is None:
            ledger.pull_callback_url = request.CallBackURL
            status, text = "1000", "Shortcode Registered Successfully"
        else:
            status, text = "1001", "Shortcode already Registered"
        body = {
            "ResponseRefID": secrets.token_hex(8),
            "ResponseStatus": status,
            "ShortCode": merchant.shortcode,
            "ResponseDescription": text,
        }
        return json_reply(body)

    def _pull_query(self, merchant: Merchant, request: PullQueryRequest) -> Reply:
        ledger = self.ledger(merchant.shortcode)
        settings = self.sim.merchant_settings(merchant)
        ref = secrets.token_hex(8)
        # Answers are HTTP 200 even when nothing is provisioned; 1001 means "none" either way.
        empty = {
            "ResponseRefID": ref,
            "ResponseCode": "1001",
            "ResponseMessage": "No transactions found",
            "Transaction": "[[]]",
        }
        if ledger.pull_callback_url is None:
            return json_reply(empty)
        oldest = self.sim.clock.now() - PULL_WINDOW
        start = max(request.StartDate, oldest)
        entries = self.entries(merchant)  # oldest first, so the window is found by bisection
        first = bisect.bisect_left(entries, start, key=_moment)
        last = bisect.bisect_right(entries, request.EndDate, key=_moment)
        begin = first + request.OffSetValue
        page = entries[begin : min(last, begin + settings.pull_page_size)]
        if not page:
            return json_reply(empty)
        kind = (
            "c2b-buy-goods-debit" if merchant.kind is ShortcodeKind.TILL else "c2b-pay-bill-debit"
        )
        body = {
            "ResponseRefID": ref,
            "ResponseCode": "1000",
            "ResponseMessage": "Success",
            "Response": [
                [
                    {
                        "transactionId": e.trans_id,
                        "trxDate": e.at.astimezone(KENYA).strftime(PULL_DATE_FORMAT),
                        "msisdn": mask_msisdn(e.phone),
                        "sender": "",
                        "transactiontype": kind,
                        "billreference": e.bill_ref_number,
                        "amount": _money_text(e.amount),
                        "organizationname": f"{merchant.shortcode} - SIMULATED SHOP",
                    }
                    for e in page
                ]
            ],
        }
        return json_reply(body)

    # ----------------------------------------------------------------- control operations

    def set_initiator(self, shortcode: str, registration: InitiatorRegistration) -> None:
        self.ledger(shortcode).initiators[registration.name] = (
            registration.password.get_secret_value()
        )

    def set_scenario(self, shortcode: str, scenario: AsyncResultScenario) -> AsyncResultScenario:
        ledger = self.ledger(shortcode)
        ledger.scenario = scenario
        ledger.scenario_left = scenario.times
        return scenario

    def _take_scenario(self, shortcode: str) -> AsyncResultScenario:
        ledger = self.ledger(shortcode)
        scenario = ledger.scenario
        if ledger.scenario_left is not None:
            ledger.scenario_left -= 1
            if ledger.scenario_left <= 0:
                ledger.scenario = AsyncResultScenario()
                ledger.scenario_left = None
        return scenario

    async def pay(self, merchant: Merchant, request: C2BPaymentRequest) -> C2BPaymentView:
        """A phone pays the shortcode directly: validation (if on), then the confirmation."""
        ledger = self.ledger(merchant.shortcode)
        if request.qr_request_id is not None:
            qr = ledger.qr_codes.get(request.qr_request_id)
            if qr is None:
                raise ControlError(404, f"no QR {request.qr_request_id} for {merchant.shortcode}")
            if Decimal(qr[0]) != request.amount:
                raise ControlError(422, f"the QR asks for KES {qr[0]}, not {request.amount}")
        trans_id = new_receipt()
        while trans_id in ledger.trans_ids:
            trans_id = new_receipt()
        entry = StatementEntry(
            trans_id=trans_id,
            shortcode=merchant.shortcode,
            phone=request.phone,
            amount=request.amount,
            first_name=request.first_name,
            bill_ref_number=request.bill_ref_number,
            transaction_type=_c2b_type(merchant),
            at=self.sim.clock.now(),
            confirmation_registered=ledger.confirmation_url is not None,
        )
        settings = self.sim.merchant_settings(merchant)
        if settings.c2b_external_validation and ledger.validation_url is not None:
            entry.validation = await self._validate(
                entry, ledger, settings.c2b_validation_timeout_s
            )
            if entry.validation is ValidationOutcome.REJECTED or (
                entry.validation is ValidationOutcome.DEFAULTED
                and ledger.response_type == "Cancelled"
            ):
                entry.completed = False
        ledger.payments.append(entry)
        ledger.trans_ids.add(entry.trans_id)
        if entry.completed:
            ledger.balance += entry.amount
            if ledger.confirmation_url is not None:
                scenario = self._take_scenario(merchant.shortcode)
                if not scenario.drop:
                    body = json.dumps(_c2b_body(entry, ledger.balance))
                    kind, url = NoticeKind.C2B_CONFIRMATION, ledger.confirmation_url
                    self._push_jobs(scenario, kind, entry.shortcode, entry.trans_id, url, body)
        return payment_view(entry)

    async def _validate(
        self, entry: StatementEntry, ledger: _Ledger, wait_s: float
    ) -> ValidationOutcome:
        assert ledger.validation_url is not None
        body = _c2b_body(entry, None)
        delivery = await self._post(
            NoticeKind.C2B_VALIDATION,
            entry.shortcode,
            entry.trans_id,
            ledger.validation_url,
            json.dumps(body),
            1,
            wait_s,
        )
        ok = delivery.status is not None and 200 <= delivery.status < 300
        if not ok or delivery.response_body is None:
            return ValidationOutcome.DEFAULTED
        try:
            answer = json.loads(delivery.response_body)
        except ValueError:
            return ValidationOutcome.DEFAULTED
        code = answer.get("ResultCode") if isinstance(answer, dict) else None
        if code in ("0", 0):
            return ValidationOutcome.ACCEPTED
        if isinstance(code, str) and code.startswith("C2B000"):
            return ValidationOutcome.REJECTED
        return ValidationOutcome.DEFAULTED

    def payments(self, shortcode: str) -> list[C2BPaymentView]:
        return [payment_view(p) for p in self.ledger(shortcode).payments]

    def notices(self, shortcode: str | None, kind: NoticeKind | None) -> list[NoticeDelivery]:
        return [
            n
            for n in self._log
            if (shortcode is None or n.shortcode == shortcode) and (kind is None or n.kind == kind)
        ]

    # ----------------------------------------------------------------- async notices

    def _plan_result(
        self,
        shortcode: str,
        kind: NoticeKind,
        result_url: str,
        timeout_url: str,
        *,
        reference: str,
        build: Callable[[int | str | None], str],
    ) -> None:
        scenario = self._take_scenario(shortcode)
        if scenario.timeout:
            body = json.dumps(
                {
                    "Result": {
                        "ResultType": 1,
                        "ResultCode": 1,
                        "ResultDesc": QUEUE_TIMEOUT_TEXT,
                        "OriginatorConversationID": "",
                        "ConversationID": "",
                        "TransactionID": reference,
                    }
                }
            )
            self._push_jobs(
                scenario, NoticeKind.QUEUE_TIMEOUT, shortcode, reference, timeout_url, body
            )
            return
        # A timed-out request was never processed; any other is decided now, so a reversal whose
        # result is dropped still moves the money, as when Safaricom's notice is lost.
        body = build(scenario.result_code)
        if scenario.drop:
            return
        self._push_jobs(scenario, kind, shortcode, reference, result_url, body)

    def _push_jobs(
        self,
        scenario: AsyncResultScenario,
        kind: NoticeKind,
        shortcode: str,
        reference: str,
        url: str,
        body: str,
    ) -> None:
        """Schedule a notice and its duplicates, one simulator second apart, after the
        scenario's delay."""
        due = self._clock.monotonic() + scenario.delay_s
        for copy_number in range(1, scenario.duplicates + 2):
            notice = _Notice(
                due + (copy_number - 1),
                next(self._job_seq),
                kind,
                shortcode,
                reference,
                url,
                body,
                copy_number,
            )
            self._schedule(notice)
        self._wake.set()

    async def _send(self, job: _Notice) -> None:
        await self._post(
            job.kind, job.shortcode, job.reference, job.url, job.payload, job.copy_number, 10.0
        )

    async def _post(
        self,
        kind: NoticeKind,
        shortcode: str,
        reference: str,
        url: str,
        payload: str,
        copy_number: int,
        wait_s: float,
    ) -> NoticeDelivery:
        attempted_at = self.sim.clock.now()
        status, error, response_body = await self.post_json(url, payload, wait_s)
        self.delivered += 1
        delivery = NoticeDelivery(
            seq=next(self._log_seq),
            kind=kind,
            shortcode=shortcode,
            reference=reference,
            copy_number=copy_number,
            url=redact_url(url),
            payload=payload,
            attempted_at=attempted_at,
            status=status,
            error=error,
            response_body=response_body,
        )
        self._log.append(delivery)
        return delivery


def _c2b_type(merchant: Merchant) -> str:
    return "Buy Goods" if merchant.kind is ShortcodeKind.TILL else "Pay Bill"


def _moment(entry: StatementEntry) -> datetime:
    return entry.at


def _c2b_body(entry: StatementEntry, balance: Decimal | None) -> dict[str, str]:
    """The flat C2B v2 body, every value a string, the MSISDN masked (REFERENCE.md 7)."""
    return {
        "TransactionType": entry.transaction_type,
        "TransID": entry.trans_id,
        "TransTime": daraja_timestamp(entry.at),
        "TransAmount": _money_text(entry.amount),
        "BusinessShortCode": entry.shortcode,
        "BillRefNumber": entry.bill_ref_number,
        "InvoiceNumber": "",
        "OrgAccountBalance": "" if balance is None else _money_text(balance),
        "ThirdPartyTransID": "",
        "MSISDN": mask_msisdn(entry.phone),
        "FirstName": entry.first_name,
        "MiddleName": "",
        "LastName": "",
    }


def _result_parameters(values: dict[str, object]) -> list[dict[str, object]]:
    """Daraja's `[{"Key": ..., "Value": ...}]` list, in the order given."""
    return [{"Key": key, "Value": value} for key, value in values.items()]


def _result_body(
    code: int | str,
    originator: str,
    conversation: str,
    transaction_id: str,
    parameters: list[dict[str, object]],
    occasion: str,
) -> str:
    result: dict[str, object] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": describe(code),
        "OriginatorConversationID": originator,
        "ConversationID": conversation,
        "TransactionID": transaction_id,
    }
    if parameters:
        result["ResultParameters"] = {"ResultParameter": parameters}
    result["ReferenceData"] = {"ReferenceItem": {"Key": "Occasion", "Value": occasion}}
    return json.dumps({"Result": result})


def payment_view(entry: StatementEntry) -> C2BPaymentView:
    """The entry as the control API shows it (its `at` is shown as the TransTime)."""
    return C2BPaymentView(
        **dataclasses.asdict(entry),
        masked_msisdn=mask_msisdn(entry.phone),
        trans_time=daraja_timestamp(entry.at),
    )
