"""Named fault points for crash tests: `SMARTDUKA_FAULT=NAME` (or `NAME:N`, the N-th time the
point is reached) makes the process SIGKILL itself there, as a power cut would, with no
cleanup. Unset, a fault point costs one dictionary look-up."""

from __future__ import annotations

import os
import signal
from collections import Counter

FAULT_ENV = "SMARTDUKA_FAULT"
_reached: Counter[str] = Counter()


def fault_point(name: str) -> None:
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] >= (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
