"""Named crash points for crash tests.

`fault_point(AFTER_ATTEMPT_COMMIT)` does nothing unless the environment variable
`SMARTDUKA_FAULT` names that point (`NAME`, or `NAME:N` for the N-th time the point is
reached); then the process SIGKILLs itself on the spot, as in a power cut: no `finally`, no
atexit, no flush. Crash tests run real subprocesses with it set and check what a restart makes
of the data left behind. Unset, a fault point costs one environment look-up.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_VAR = "SMARTDUKA_FAULT"

AFTER_ATTEMPT_COMMIT = "after-attempt-commit"
"""The attempt row is committed; nothing has gone to Daraja."""
AFTER_PUSH_SENT = "after-push-sent"
"""The push request is written to the socket; its response has not been read."""
BEFORE_RESPONSE_COMMIT = "before-response-commit"
"""The push response was read; its transition is not yet committed."""
ROTATE_AFTER_KEYRING = "rotate-after-keyring"
"""Key rotation: the keyring file has the new key; no secret is re-encrypted yet."""
ROTATE_AFTER_BATCH = "rotate-after-batch"
"""Key rotation: one batch of secrets is re-encrypted and committed (`:N` for the N-th)."""

POINTS: tuple[str, ...] = (
    AFTER_ATTEMPT_COMMIT,
    AFTER_PUSH_SENT,
    BEFORE_RESPONSE_COMMIT,
    ROTATE_AFTER_KEYRING,
    ROTATE_AFTER_BATCH,
)

_reached: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL if SMARTDUKA_FAULT names `name` (the N-th time, with
    `:N`)."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    wanted = os.environ.get(ENV_VAR)
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] >= (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
