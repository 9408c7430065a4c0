#!/usr/bin/env bash
# Regenerate requirements.lock (every dependency and dev dependency pinned, with hashes) from
# pyproject.toml. Run it after changing a dependency, and commit both files together;
# tests/test_lock.py fails while they disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=uv
"$uv" pip compile pyproject.toml --extra dev --generate-hashes --universal \
    --python-version 3.11 --quiet --output-file requirements.lock
