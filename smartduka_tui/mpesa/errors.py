"""Typed failures of the Daraja client.

Each carries what Daraja said (HTTP status, errorCode, errorMessage, requestId) and, where one
applies, the catalogue's `ResultInfo` (outcome, retry rule, cashier message). Messages and reprs
are built only from those fields and our own words: never a token, Basic header, Password,
passkey, consumer key or secret, or a callback URL.

The engine relies on the push split:

- `PushRefused`: definitely not started (any Daraja error envelope, even on HTTP 500; any 4xx;
  connection refused or connect timeout; no token). Safe to record as FAILED.
- `PushOutcomeUnknown`: the request may have reached Daraja (read timeout or reset after
  sending; a 5xx without an envelope; an unreadable 2xx). Never re-sent; settle it by query or
  callback.

The hierarchy:

* DarajaError (Exception)
  * AuthenticationFailed
  * DarajaUnavailable
  * PushRefused
  * PushOutcomeUnknown
  * QueryFailed
    * QueryRefused
    * QueryNoAnswer
  * RequestRefused
  * RequestOutcomeUnknown
"""

from __future__ import annotations

from smartduka_tui.mpesa.result_codes import ResultInfo


class DarajaError(Exception):
    """Base of every client failure."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        request_id: str | None = None,
        info: ResultInfo | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.error_code = error_code
        self.error_message = error_message
        self.request_id = request_id
        self.info = info

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        for name in ("http_status", "error_code", "error_message"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        if self.info is not None:
            parts.append(f"outcome={self.info.outcome.value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class AuthenticationFailed(DarajaError):
    """Daraja refused the consumer key and secret (OAuth: HTTP 400 with an empty body)."""


class DarajaUnavailable(DarajaError):
    """No usable answer from Daraja (connection, timeout, 5xx, unreadable body)."""


class PushRefused(DarajaError):
    """The STK push was definitely not started; see `info` for the reason and retry rule."""


class PushOutcomeUnknown(DarajaError):
    """The STK push may have been started; it is never re-sent automatically."""


class QueryFailed(DarajaError):
    """An STK query gave no result; the attempt stays as it was."""


class QueryRefused(QueryFailed):
    """Daraja refused the query itself (a 4xx, or an envelope that retrying will not change)."""


class QueryNoAnswer(QueryFailed):
    """Busy, throttled or unreachable through every retry; ask again later."""


class RequestRefused(DarajaError):
    """A statement API call (C2B register, QR, Transaction Status, Reversal, Pull) was definitely
    refused: nothing was started."""


class RequestOutcomeUnknown(DarajaError):
    """A statement API call may have been started (no readable answer came back). A reversal in
    this state is never re-sent blindly: ask Transaction Status, or wait for its result."""
