"""Redaction for the request and callback logs: secrets and capabilities become "<redacted>".

Redacted: the STK Password, anything named like a secret, key, token or credential, the
Authorization header (only its scheme is kept) and URL paths (a callback path is a capability;
only scheme, host and port are kept). Bodies that are not JSON are not echoed at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

REDACTED = "<redacted>"
_SECRET_WORDS = ("password", "passkey", "secret", "token", "credential", "authorization")
_KNOWN_SCHEMES = ("Basic", "Bearer")


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS) or lowered.endswith("key")


def redact_url(value: object) -> str:
    """Keep where a URL points (scheme, host, port), never its path, query or user info."""
    if not isinstance(value, str):
        return REDACTED
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    shown_host = f"[{host}]" if ":" in host else host
    origin = f"{parts.scheme}://{shown_host}" + (f":{port}" if port is not None else "")
    return f"{origin}/{REDACTED}" if (parts.path not in ("", "/") or parts.query) else origin


def redact_value(name: str, value: Any) -> Any:
    if _is_secret_name(name):
        return REDACTED
    if name.lower().endswith("url"):
        return redact_url(value)
    return redact(value)


def redact(value: Any) -> Any:
    """A copy of parsed JSON with secret-named fields and URLs redacted, at any depth."""
    if isinstance(value, Mapping):
        return {str(key): redact_value(str(key), item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def redact_authorization(header: str | None) -> str | None:
    """ "Basic <redacted>" or "Bearer <redacted>"; any other header is redacted whole."""
    if header is None:
        return None
    scheme = header.split(" ", 1)[0]
    return f"{scheme} {REDACTED}" if scheme in _KNOWN_SCHEMES else REDACTED
