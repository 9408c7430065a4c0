"""Canary secrets: fake credentials whose plaintext must never reach a file.

Tests take secrets from `new_canary()`; at the end of the session every file under the
session's temporary folder (databases, WAL and SHM files, logs, outputs) is scanned for each
canary in plain text, in base64 (standard and URL-safe, at every byte alignment) and in hex.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

_registered: set[str] = set()


def new_canary(prefix: str = "cnry", *, alphabet: str = "alnum") -> str:
    """A fresh registered canary. `alnum` passes the consumer key/secret/passkey rules;
    `b64url` is a 256-bit callback secret as the relay would print it."""
    if alphabet == "b64url":
        value = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    else:
        value = prefix + secrets.token_hex(16)
    _registered.add(value)
    return value


def register_canary(value: str) -> None:
    """Watch a secret made elsewhere (by the relay, say) as a canary too."""
    _registered.add(value)


def registered() -> frozenset[str]:
    return frozenset(_registered)


def encodings(canary: str) -> set[bytes]:
    """Byte strings whose presence in a file means the canary leaked."""
    raw = canary.encode()
    found = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).rstrip(b"=")
            # Drop the characters that mix in neighbouring bytes; the middle is stable.
            middle = text[4 if offset else 0 : -4]
            found.add(middle)
    return {form for form in found if len(form) >= _WINDOW}


# Every form of every canary is made of these characters and is at least _WINDOW long, so a
# file is searched only inside runs of them: one regex pass, then set look-ups. (Ciphertext is
# random bytes and almost never holds such a run.)
_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{16,}")
_WINDOW = 16


def scan(root: Path, canaries: Iterable[str]) -> list[str]:
    """Findings as 'file: which canary' lines (never the canary itself)."""
    by_prefix: dict[bytes, list[tuple[int, bytes]]] = {}
    for number, canary in enumerate(canaries):
        for form in encodings(canary):
            by_prefix.setdefault(form[:_WINDOW], []).append((number, form))
    findings: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found: set[int] = set()
        for match in _RUN.finditer(data):
            run = match.group()
            for start in range(len(run) - _WINDOW + 1):
                for number, form in by_prefix.get(run[start : start + _WINDOW], ()):
                    if run.startswith(form, start):
                        found.add(number)
        findings.extend(f"{path}: canary #{number} found" for number in sorted(found))
    return findings
