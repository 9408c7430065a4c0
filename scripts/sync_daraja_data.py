"""Refresh tests/data/daraja from the shared reference folder (`../shared/daraja` by default).

The tests read only the copy inside the repository, so a fresh clone runs every test; run this
when the shared reference changes, review the diff, and commit it.

    python scripts/sync_daraja_data.py [SOURCE_FOLDER]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "tests" / "data" / "daraja"


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "daraja"
    if not (source / "REFERENCE.md").is_file():
        print(f"no Daraja reference at {source}", file=sys.stderr)
        return 2
    shutil.copy2(source / "REFERENCE.md", TARGET / "REFERENCE.md")
    (TARGET / "payloads").mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in sorted((source / "payloads").iterdir()):
        if path.is_file():
            shutil.copy2(path, TARGET / "payloads" / path.name)
            copied += 1
    print(f"copied REFERENCE.md and {copied} payload files into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
