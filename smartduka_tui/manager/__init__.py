"""The manager's side of the till: PIN sign-in, problem payments, M-Pesa settings, the audit log,
sales history and the daily summary.

This is the application layer: it sits above the engine (`payments/`) and the store, below the
faces, and the import-linter contracts keep it there (it imports no face, Textual or Starlette,
and nothing beneath it imports it). The manager screens and the `smartduka` commands call this
package and render what it returns; the rules (what is a problem payment, what a manager can do
about it, what a setting must look like, when a session ends) live here, so neither face opens
the store for them. Three parts:

- `PaymentLists` (lists.py): read-only lists over the store (the problem-payments list, the
  history, export rows), used by `smartduka transactions` and by the service.
- `ManagerService` (service.py): everything behind the manager PIN. Every method but the PIN
  ones needs a signed-in session (`sign_in`), which ends on `sign_out` or after
  `idle_timeout_s` without activity by the injectable clock.
- `TillSetup` and `PinDesk` (setup.py): the till's own set-up for the `smartduka` commands
  (shops and their credentials, the initiator, enrolment, the manager PIN), without a session:
  a command asks for the PIN first, and the first shop comes before any PIN. What it shares
  with the settings screen (a shop's settings as shown, keeping an enrolment file) is written
  once, there.

Nothing here returns or logs a secret: credentials come back masked (`****` and the last four
characters), enrolment files are parsed with their secrets hidden, exports carry masked phones.
"""

from smartduka_tui.manager.audit import (
    ACTOR_NAMES,
    AuditFilter,
    AuditLine,
    AuditPage,
    ChainVerdict,
    audit_filter_from_text,
)
from smartduka_tui.manager.detail import ProblemDetail, TimelineStep
from smartduka_tui.manager.errors import (
    ActionRefused,
    EnrolmentProblem,
    EnrolmentRefused,
    ManagerError,
    ManagerInputError,
    NotSignedIn,
)
from smartduka_tui.manager.lists import (
    CSV_COLUMNS,
    PAGE_SIZE,
    HistoryFilter,
    ListCursor,
    PaymentLists,
    PaymentRow,
    ProblemCategory,
    ProblemFilter,
    RowPage,
    csv_values,
    history_filter_from_text,
    problem_filter_from_text,
    row_json,
)
from smartduka_tui.manager.service import (
    ActionResult,
    ExportResult,
    ManagerService,
    Resolution,
)
from smartduka_tui.manager.session import IDLE_TIMEOUT_S, ManagerSession
from smartduka_tui.manager.settings import (
    SettingsForm,
    SettingsView,
    TillView,
    VerifyOutcome,
    VerifyResult,
)
from smartduka_tui.manager.setup import PinDesk, ShopChanges, TillSetup
from smartduka_tui.manager.summary import CodeShare, DailySummary, summarise_day
from smartduka_tui.manager.words import kenya_time
from smartduka_tui.store.pin import PinCheck, PinOutcome, PinStatus

# The values the faces hand to the services here and read back, taken from here rather than
# from the store (faces never import the store): a typed PIN or pasted credential is held as a
# Secret from the moment it is read, and a command gives a new shop's settings and credentials
# as the store's own records of them (plain frozen values; the store's methods stay behind
# TillSetup).
from smartduka_tui.store.records import ShopConfig, ShopSecrets
from smartduka_tui.store.secret import Secret

__all__ = [
    "ACTOR_NAMES",
    "CSV_COLUMNS",
    "IDLE_TIMEOUT_S",
    "PAGE_SIZE",
    "ActionRefused",
    "ActionResult",
    "AuditFilter",
    "AuditLine",
    "AuditPage",
    "ChainVerdict",
    "CodeShare",
    "DailySummary",
    "EnrolmentProblem",
    "EnrolmentRefused",
    "ExportResult",
    "HistoryFilter",
    "ListCursor",
    "ManagerError",
    "ManagerInputError",
    "ManagerService",
    "ManagerSession",
    "NotSignedIn",
    "PaymentLists",
    "PaymentRow",
    "PinCheck",
    "PinDesk",
    "PinOutcome",
    "PinStatus",
    "ProblemCategory",
    "ProblemDetail",
    "ProblemFilter",
    "Resolution",
    "RowPage",
    "Secret",
    "SettingsForm",
    "SettingsView",
    "ShopChanges",
    "ShopConfig",
    "ShopSecrets",
    "TillSetup",
    "TillView",
    "TimelineStep",
    "VerifyOutcome",
    "VerifyResult",
    "audit_filter_from_text",
    "csv_values",
    "history_filter_from_text",
    "kenya_time",
    "problem_filter_from_text",
    "row_json",
    "summarise_day",
]
