"""The Daraja reference material the tests read, copied into the repo so a fresh clone with no
`../shared` beside it runs every test. `scripts/sync_daraja_data.py` refreshes the copy."""

from __future__ import annotations

from pathlib import Path

DARAJA = Path(__file__).resolve().parents[1] / "data" / "daraja"
PAYLOADS = DARAJA / "payloads"
REFERENCE = DARAJA / "REFERENCE.md"
