"""The schema's history, oldest first. A released migration is never edited: add a new one.

Each migration runs in its own `BEGIN IMMEDIATE` transaction together with the row that records
its version, so a database is always exactly at one version. Times are epoch milliseconds;
money is INTEGER shillings; STRICT tables refuse a float where an integer belongs.
"""

from __future__ import annotations

from dataclasses import dataclass

# "SDT1": marks a file as a SmartDuka till database (PRAGMA application_id).
APPLICATION_ID = 0x53445431


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1_SHOPS_VAULT_TILLS = Migration(
    1,
    "shops, the credential vault and tills",
    (
        """
        CREATE TABLE shops (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            mpesa_type TEXT NOT NULL CHECK (mpesa_type IN ('paybill', 'till', 'platform')),
            business_shortcode TEXT,
            till_number TEXT,
            account_prefix TEXT NOT NULL,
            enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
            verification_status TEXT NOT NULL
                CHECK (verification_status IN ('pending', 'verified', 'failed')),
            verified_at INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) STRICT
        """,
        # One row per key id: proof of which key a kid stands for, to tell a wrong key from
        # tampered data.
        """
        CREATE TABLE key_checks (
            kid TEXT PRIMARY KEY,
            check_blob BLOB NOT NULL,
            created_at INTEGER NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE secrets (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            field TEXT NOT NULL,
            kid TEXT NOT NULL REFERENCES key_checks(kid),
            blob BLOB NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (shop_id, field)
        ) STRICT
        """,
        "CREATE INDEX secrets_by_kid ON secrets(kid, shop_id)",
        """
        CREATE TABLE tills (
            id TEXT PRIMARY KEY,
            shop_id TEXT NOT NULL REFERENCES shops(id),
            relay_url TEXT NOT NULL,
            active_callback_kid TEXT NOT NULL,
            enrolled_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE (shop_id, id)
        ) STRICT
        """,
    ),
)

_V2_ATTEMPTS_AUDIT = Migration(
    2,
    "payment attempts and the hash-chained audit log",
    (
        """
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            shop_id TEXT NOT NULL,
            till_id TEXT NOT NULL,
            sale_ref TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount BETWEEN 1 AND 250000),
            phone TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            attempt_ref TEXT NOT NULL,
            attempt_number INTEGER NOT NULL CHECK (attempt_number >= 1),
            state TEXT NOT NULL CHECK (state IN ('CREATED', 'PENDING', 'UNKNOWN', 'COMPLETED',
                                                 'FAILED', 'EXPIRED', 'NEEDS_REVIEW')),
            previous_state TEXT,
            merchant_request_id TEXT,
            checkout_request_id TEXT,
            result_code TEXT,
            result_desc TEXT,
            receipt_number TEXT,
            created_at INTEGER NOT NULL,
            push_sent_at INTEGER,
            completed_at INTEGER,
            expires_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            flags INTEGER NOT NULL DEFAULT 0,
            review_note TEXT,
            FOREIGN KEY (shop_id, till_id) REFERENCES tills(shop_id, id),
            UNIQUE (shop_id, idempotency_key),
            UNIQUE (shop_id, attempt_ref),
            UNIQUE (shop_id, checkout_request_id),
            UNIQUE (shop_id, sale_ref, attempt_number)
        ) STRICT
        """,
        # One live attempt per phone per till, enforced by the database itself.
        """
        CREATE UNIQUE INDEX attempts_one_live_per_phone ON attempts(till_id, phone)
            WHERE state IN ('CREATED', 'PENDING', 'UNKNOWN')
        """,
        # Live attempts: the engine's restart scan, the reconciler and expiry.
        """
        CREATE INDEX attempts_live ON attempts(shop_id, till_id, created_at, id)
            WHERE state IN ('CREATED', 'PENDING', 'UNKNOWN')
        """,
        # History lists and the daily summary: one shop's attempts by time.
        "CREATE INDEX attempts_by_time ON attempts(shop_id, created_at, id)",
        """
        CREATE INDEX attempts_by_receipt ON attempts(shop_id, receipt_number)
            WHERE receipt_number IS NOT NULL
        """,
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            shop_id TEXT,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            attempt_id INTEGER,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX audit_by_shop ON audit_log(shop_id, id)",
        "CREATE INDEX audit_by_attempt ON audit_log(attempt_id) WHERE attempt_id IS NOT NULL",
        # The chain's head: a deleted tail shows up as a head that names a missing entry.
        """
        CREATE TABLE audit_head (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            last_id INTEGER NOT NULL,
            last_hash TEXT NOT NULL
        ) STRICT
        """,
        # Append-only by construction; the hash chain catches anyone who drops these.
        """
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
        """,
        """
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
        """,
    ),
)

_V3_PROBLEMS = Migration(
    3,
    "problems for the manager and the problem-payments index",
    (
        """
        CREATE TABLE problems (
            id INTEGER PRIMARY KEY,
            shop_id TEXT NOT NULL REFERENCES shops(id),
            till_id TEXT,
            kind TEXT NOT NULL
                CHECK (kind IN ('unmatched_callback', 'unapplied_event', 'suspicious_pattern')),
            detail TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            resolved_at INTEGER,
            resolution_note TEXT
        ) STRICT
        """,
        "CREATE INDEX problems_by_time ON problems(shop_id, created_at, id)",
        # The problem-payments list: failed, stuck or flagged attempts, newest first. The WHERE
        # here must stay word for word the same as attempts.PROBLEM_SQL for SQLite to use it.
        """
        CREATE INDEX attempts_problems ON attempts(shop_id, created_at, id)
            WHERE (state IN ('FAILED', 'EXPIRED', 'NEEDS_REVIEW', 'UNKNOWN') OR (flags & 15) != 0)
        """,
    ),
)

_V4_BY_PHONE = Migration(
    4,
    "an index for finding a customer's payments by phone",
    (
        # "The customer says they paid": one shop's attempts for one phone, newest first.
        "CREATE INDEX attempts_by_phone ON attempts(shop_id, phone, created_at, id)",
    ),
)

_V5_MANAGER_PIN = Migration(
    5,
    "the manager PIN (scrypt hash) and its lockout",
    (
        # One PIN per till database (store/pin.py). A lockout survives a restart of the till.
        """
        CREATE TABLE manager_pin (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            pin_hash TEXT NOT NULL,
            set_at INTEGER NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
            locked_until INTEGER
        ) STRICT
        """,
    ),
)

_V6_ATTEMPT_TRUTH = Migration(
    6,
    "the attempt row holds its whole truth: confirming, handed over, finished, review reason",
    (
        # A callback waiting for its confirming STK query: what it claimed ('success' or
        # 'failure'), its code and its receipt. Cleared when the query settles it.
        "ALTER TABLE attempts ADD COLUMN confirming TEXT"
        " CHECK (confirming IS NULL OR confirming IN ('success', 'failure'))",
        "ALTER TABLE attempts ADD COLUMN confirming_code TEXT",
        "ALTER TABLE attempts ADD COLUMN confirming_receipt TEXT",
        # The cashier stopped waiting: the reconciler owns the attempt.
        "ALTER TABLE attempts ADD COLUMN handed_over_at INTEGER",
        # When it reached a final state (retry delays count from here).
        "ALTER TABLE attempts ADD COLUMN finished_at INTEGER",
        # Why it went to NEEDS_REVIEW, in words for the manager.
        "ALTER TABLE attempts ADD COLUMN review_reason TEXT",
        # Rows written before this version: the same facts, read once from their audit entries.
        """
        UPDATE attempts SET handed_over_at = (
            SELECT min(at) FROM audit_log
            WHERE audit_log.attempt_id = attempts.id
              AND action = 'attempt.handed_to_reconciler'
        )
        """,
        """
        UPDATE attempts SET finished_at = coalesce(
            CASE WHEN state = 'COMPLETED' THEN completed_at END,
            (SELECT max(at) FROM audit_log
             WHERE audit_log.attempt_id = attempts.id AND action = 'attempt.transition'
               AND json_extract(detail, '$.to') = attempts.state),
            updated_at
        ) WHERE state NOT IN ('CREATED', 'PENDING', 'UNKNOWN')
        """,
        """
        UPDATE attempts SET confirming = 'success', confirming_receipt = (
            SELECT json_extract(detail, '$.receipt') FROM audit_log
            WHERE audit_log.attempt_id = attempts.id
              AND action = 'evidence.awaiting_confirmation'
            ORDER BY id DESC LIMIT 1
        )
        WHERE state NOT IN ('COMPLETED', 'NEEDS_REVIEW') AND (
            SELECT action FROM audit_log
            WHERE audit_log.attempt_id = attempts.id
              AND action IN ('evidence.awaiting_confirmation', 'evidence.confirmation_settled')
            ORDER BY id DESC LIMIT 1
        ) = 'evidence.awaiting_confirmation'
        """,
    ),
)

_V7_KEYED_AUDIT_AND_PIN = Migration(
    7,
    "the audit chain keyed by the vault key, and the PIN lockout's escalation",
    (
        # The kid whose derived key MACs the entry; NULL for entries written without a key
        # (before this version, or by a store opened without one), checked by SHA-256 only.
        "ALTER TABLE audit_log ADD COLUMN kid TEXT",
        # Lockouts in a row since the last good PIN: each lasts longer (store/pin.py).
        "ALTER TABLE manager_pin ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0"
        " CHECK (lockouts >= 0)",
    ),
)

_V8_PIN_COUNTERS_TAG = Migration(
    8,
    "the manager PIN's lockout counters MACed under the vault key",
    (
        # MAC of (PIN record, failures, locked_until, lockouts, the audit entry that last set
        # them) under the PIN's pepper (store/pin.py): an edit or a replayed older row is seen.
        # NULL on rows written before this version, until their next change seals them.
        "ALTER TABLE manager_pin ADD COLUMN counters_tag TEXT",
    ),
)

_V9_C2B_PAYMENTS = Migration(
    9,
    "C2B payments: customers paying the shortcode directly, and the sale each is attached to",
    (
        # One row per M-Pesa receipt (TransID) per shop, whichever till's feed brought it.
        # The payer is kept only as M-Pesa showed it (masked); the full number is never known.
        """
        CREATE TABLE c2b_payments (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            trans_id TEXT NOT NULL,
            shortcode TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount BETWEEN 1 AND 250000),
            paid_at INTEGER NOT NULL,
            payer TEXT NOT NULL,
            first_name TEXT NOT NULL,
            bill_ref TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            body_sha256 TEXT NOT NULL,
            sale_ref TEXT,
            attached_till TEXT,
            attached_at INTEGER,
            PRIMARY KEY (shop_id, trans_id)
        ) STRICT
        """,
        "CREATE INDEX c2b_unattached ON c2b_payments (shop_id, sale_ref, paid_at)",
    ),
)

_V10_PULLED_STATEMENT = Migration(
    10,
    "Pull Transactions: the statement rows pulled, the last pull per shortcode, the findings",
    (
        # One row per M-Pesa receipt (transactionId) per shop: pulling again adds nothing.
        # `matched` says what here knows the payment (an attempt or a C2B row); NULL while
        # nothing does. The payer is kept as M-Pesa showed it (masked).
        """
        CREATE TABLE pulled_transactions (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            transaction_id TEXT NOT NULL,
            shortcode TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount >= 1),
            paid_at INTEGER NOT NULL,
            payer TEXT NOT NULL,
            bill_ref TEXT NOT NULL,
            transaction_type TEXT NOT NULL,
            pulled_at INTEGER NOT NULL,
            matched TEXT CHECK (matched IN ('attempt', 'c2b')),
            sale_ref TEXT,
            PRIMARY KEY (shop_id, transaction_id)
        ) STRICT
        """,
        "CREATE INDEX pulled_unmatched ON pulled_transactions(shop_id, paid_at)"
        " WHERE matched IS NULL",
        """
        CREATE TABLE pull_status (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            shortcode TEXT NOT NULL,
            registered_at INTEGER,
            last_pull_at INTEGER,
            last_ok_at INTEGER,
            error TEXT,
            pages INTEGER NOT NULL DEFAULT 0,
            rows_seen INTEGER NOT NULL DEFAULT 0,
            new_rows INTEGER NOT NULL DEFAULT 0,
            receipts_filled INTEGER NOT NULL DEFAULT 0,
            problems_found INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (shop_id, shortcode)
        ) STRICT
        """,
        # What a pull has already told the manager ("money:<receipt>", "twice:<sale>"), so a
        # later pull of the same 48 hours records each finding once.
        """
        CREATE TABLE pull_findings (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            finding TEXT NOT NULL,
            problem_id INTEGER NOT NULL REFERENCES problems(id),
            PRIMARY KEY (shop_id, finding)
        ) STRICT
        """,
    ),
)

_V11_STATEMENT_REQUESTS = Migration(
    11,
    "Transaction Status and Reversal requests with their asynchronous results",
    (
        # One row per request, written before it is sent; its result (from the relay's feed)
        # lands once, compare-and-set on state 'sent'. Money is whole shillings.
        """
        CREATE TABLE statement_requests (
            id INTEGER PRIMARY KEY,
            shop_id TEXT NOT NULL REFERENCES shops(id),
            till_id TEXT NOT NULL,
            request_ref TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('transaction_status', 'reversal')),
            receipt TEXT NOT NULL,
            sale_ref TEXT,
            attempt_id INTEGER REFERENCES attempts(id),
            amount INTEGER CHECK (amount IS NULL OR amount > 0),
            state TEXT NOT NULL CHECK (state IN ('sent', 'refused', 'answered', 'timed_out')),
            result_code TEXT,
            result_body TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) STRICT
        """,
        "CREATE INDEX statement_requests_by_receipt ON statement_requests(shop_id, receipt, id)",
    ),
)

_V12_SALES = Migration(
    12,
    "sales with their lines and tenders (cash and M-Pesa), and abandoned sales as problems",
    (
        # One row per sale per shop: its total in whole shillings and where it stands. A sale
        # is PAID when its tenders add up to the total exactly; VOIDED and REFUNDED sales leave
        # the day's figures.
        """
        CREATE TABLE sales (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            till_id TEXT NOT NULL,
            sale_ref TEXT NOT NULL,
            total INTEGER NOT NULL CHECK (total >= 1),
            state TEXT NOT NULL
                CHECK (state IN ('OPEN', 'PAID', 'ABANDONED', 'VOIDED', 'REFUNDED')),
            opened_at INTEGER NOT NULL,
            closed_at INTEGER,
            note TEXT,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (shop_id, sale_ref)
        ) STRICT
        """,
        # A till's open sales (start-up finds those left part paid) and its day's sales.
        "CREATE INDEX sales_by_till ON sales(shop_id, till_id, state, opened_at)",
        "CREATE INDEX sales_by_time ON sales(shop_id, opened_at)",
        """
        CREATE TABLE sale_lines (
            shop_id TEXT NOT NULL,
            sale_ref TEXT NOT NULL,
            line_no INTEGER NOT NULL CHECK (line_no >= 1),
            description TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity >= 1),
            unit_price INTEGER NOT NULL CHECK (unit_price >= 0),
            PRIMARY KEY (shop_id, sale_ref, line_no),
            FOREIGN KEY (shop_id, sale_ref) REFERENCES sales(shop_id, sale_ref)
        ) STRICT
        """,
        # What each payment pays toward its sale's total (`amount`); a cash tender also keeps
        # the cash handed over and the change given back (given - amount, never negative).
        """
        CREATE TABLE sale_tenders (
            id INTEGER PRIMARY KEY,
            shop_id TEXT NOT NULL,
            sale_ref TEXT NOT NULL,
            till_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('CASH', 'MPESA_STK', 'MPESA_C2B')),
            amount INTEGER NOT NULL CHECK (amount >= 1),
            cash_given INTEGER,
            change_given INTEGER,
            receipt_number TEXT,
            attempt_id INTEGER REFERENCES attempts(id),
            at INTEGER NOT NULL,
            CHECK ((kind = 'CASH') = (cash_given IS NOT NULL AND change_given IS NOT NULL)),
            CHECK (kind != 'CASH' OR (change_given >= 0 AND cash_given = amount + change_given)),
            CHECK ((kind = 'MPESA_STK') = (attempt_id IS NOT NULL)),
            FOREIGN KEY (shop_id, sale_ref) REFERENCES sales(shop_id, sale_ref)
        ) STRICT
        """,
        "CREATE INDEX sale_tenders_by_sale ON sale_tenders(shop_id, sale_ref, id)",
        # The shift reports: a shop's tenders by time window and kind.
        "CREATE INDEX sale_tenders_by_time ON sale_tenders(shop_id, at, kind)",
        # One tender per paid attempt, one per direct payment: evidence that arrives twice
        # (a callback and a query) pays once.
        "CREATE UNIQUE INDEX sale_tenders_per_attempt ON sale_tenders(attempt_id)"
        " WHERE attempt_id IS NOT NULL",
        "CREATE UNIQUE INDEX sale_tenders_per_direct ON sale_tenders(shop_id, receipt_number)"
        " WHERE kind = 'MPESA_C2B'",
        # A problem kind for sales part paid and then abandoned: the kind's CHECK is part of
        # the table, so the table is built again. pull_findings points at problems, and with
        # foreign keys on (they cannot be switched off inside this transaction) a referenced
        # table cannot be dropped: its rows wait in a plain table meanwhile.
        "CREATE TABLE pull_findings_v11 AS SELECT * FROM pull_findings",
        "DROP TABLE pull_findings",
        """
        CREATE TABLE problems_v12 (
            id INTEGER PRIMARY KEY,
            shop_id TEXT NOT NULL REFERENCES shops(id),
            till_id TEXT,
            kind TEXT NOT NULL
                CHECK (kind IN ('unmatched_callback', 'unapplied_event', 'suspicious_pattern',
                                'abandoned_sale')),
            detail TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            resolved_at INTEGER,
            resolution_note TEXT
        ) STRICT
        """,
        "INSERT INTO problems_v12 SELECT id, shop_id, till_id, kind, detail, created_at,"
        " resolved_at, resolution_note FROM problems",
        "DROP TABLE problems",
        "ALTER TABLE problems_v12 RENAME TO problems",
        "CREATE INDEX problems_by_time ON problems(shop_id, created_at, id)",
        """
        CREATE TABLE pull_findings (
            shop_id TEXT NOT NULL REFERENCES shops(id),
            finding TEXT NOT NULL,
            problem_id INTEGER NOT NULL REFERENCES problems(id),
            PRIMARY KEY (shop_id, finding)
        ) STRICT
        """,
        "INSERT INTO pull_findings SELECT shop_id, finding, problem_id FROM pull_findings_v11",
        "DROP TABLE pull_findings_v11",
    ),
)

_V13_SHIFTS = Migration(
    13,
    "shifts: a till's float, counted cash and gapless Z numbers",
    (
        # A shift is opened with a float and closed with the cash counted; its Z number is
        # given at close, per till, in the closing transaction (max + 1 under the write lock),
        # with the Z report as it stood then (JSON: a later refund never rewrites a closed day).
        # Closed shifts never change and are never deleted (the triggers below), so a Z number
        # is never given twice and the sequence has no gaps. Money is whole shillings.
        """
        CREATE TABLE shifts (
            id INTEGER PRIMARY KEY,
            shop_id TEXT NOT NULL REFERENCES shops(id),
            till_id TEXT NOT NULL,
            cashier TEXT NOT NULL CHECK (length(cashier) BETWEEN 1 AND 40),
            opened_at INTEGER NOT NULL,
            float INTEGER NOT NULL CHECK (float BETWEEN 0 AND 10000000),
            closed_at INTEGER,
            counted_cash INTEGER CHECK (counted_cash BETWEEN 0 AND 100000000),
            expected_cash INTEGER,
            z_number INTEGER CHECK (z_number >= 1),
            z_report TEXT,
            CHECK ((closed_at IS NULL) = (z_number IS NULL)
                AND (closed_at IS NULL) = (counted_cash IS NULL)
                AND (closed_at IS NULL) = (expected_cash IS NULL)
                AND (closed_at IS NULL) = (z_report IS NULL))
        ) STRICT
        """,
        # One open shift per till, whoever asks.
        "CREATE UNIQUE INDEX shifts_one_open ON shifts(shop_id, till_id) WHERE closed_at IS NULL",
        "CREATE UNIQUE INDEX shifts_by_z ON shifts(shop_id, till_id, z_number)"
        " WHERE z_number IS NOT NULL",
        "CREATE INDEX shifts_by_opening ON shifts(shop_id, till_id, opened_at)",
        """
        CREATE TRIGGER shifts_closed_never_change BEFORE UPDATE ON shifts
        WHEN OLD.closed_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'a closed shift never changes'); END
        """,
        """
        CREATE TRIGGER shifts_never_deleted BEFORE DELETE ON shifts
        BEGIN SELECT RAISE(ABORT, 'a shift is never deleted'); END
        """,
    ),
)

# Number 14: 12 and 13 are taken by work merged beside this one.
_V14_C2B_REVERSED = Migration(
    14,
    "Direct payments M-Pesa reversed: when its result said code 0",
    (
        # Set only with a Reversal result of code 0 for this receipt and amount, in the
        # transaction that lands the result (never on acceptance of the request).
        "ALTER TABLE c2b_payments ADD COLUMN reversed_at INTEGER",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1_SHOPS_VAULT_TILLS,
    _V2_ATTEMPTS_AUDIT,
    _V3_PROBLEMS,
    _V4_BY_PHONE,
    _V5_MANAGER_PIN,
    _V6_ATTEMPT_TRUTH,
    _V7_KEYED_AUDIT_AND_PIN,
    _V8_PIN_COUNTERS_TAG,
    _V9_C2B_PAYMENTS,
    _V10_PULLED_STATEMENT,
    _V11_STATEMENT_REQUESTS,
    _V12_SALES,
    _V13_SHIFTS,
    _V14_C2B_REVERSED,
)
LATEST_VERSION = MIGRATIONS[-1].version
