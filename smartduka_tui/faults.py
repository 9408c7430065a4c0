"""Named crash points for crash tests.

`fault_point("after-attempt-commit")` does nothing unless the environment variable
`SMARTDUKA_FAULT` names that point; then the process SIGKILLs itself on the spot, as in a power
cut: no `finally`, no atexit, no flush. Crash tests run real subprocesses with it set and check
what a restart makes of the data left behind.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "SMARTDUKA_FAULT"

AFTER_ATTEMPT_COMMIT = "after-attempt-commit"
"""The attempt row is committed; nothing has gone to Daraja."""
AFTER_PUSH_SENT = "after-push-sent"
"""The push request is written to the socket; its response has not been read."""
BEFORE_RESPONSE_COMMIT = "before-response-commit"
"""The push response was read; its transition is not yet committed."""

POINTS: tuple[str, ...] = (
    AFTER_ATTEMPT_COMMIT,
    AFTER_PUSH_SENT,
    BEFORE_RESPONSE_COMMIT,
)


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL if SMARTDUKA_FAULT names `name`."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)
