"""The canary scan itself must find a leak, in every form it claims to look for."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.store.canaries import scan

CANARY = "cnryTHISisNOTregistered0123456789ab"


@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: raw,
        lambda raw: raw.hex().encode(),
        lambda raw: base64.b64encode(raw),
        lambda raw: base64.b64encode(b"x" + raw),
        lambda raw: base64.urlsafe_b64encode(b"xy" + raw).rstrip(b"="),
        lambda raw: base64.b64encode(b'{"passkey": "' + raw + b'"}'),
    ],
    ids=["plain", "hex", "b64", "b64-offset1", "b64url-offset2", "b64-in-json"],
)
def test_scan_finds_a_planted_canary(tmp_path: Path, encode: object) -> None:
    leak = tmp_path / "sub" / "till.db-wal"
    leak.parent.mkdir()
    leak.write_bytes(b"\x00\x17binary" + encode(CANARY.encode()) + b"\xff tail")  # type: ignore[operator]
    (tmp_path / "clean.log").write_text("nothing to see " * 100)
    findings = scan(tmp_path, [CANARY])
    assert len(findings) == 1 and str(leak) in findings[0]
    assert CANARY not in findings[0]


def test_scan_passes_clean_files(tmp_path: Path) -> None:
    (tmp_path / "a.db").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "b.log").write_text("cnryTHISisNOTregistered01234567 is only a prefix")
    assert scan(tmp_path, [CANARY]) == []
