"""A module import that lasts until a test lets it finish: `slow_module` writes one.

The module it writes busies the interpreter (holding the GIL between the thread switches, as
a real import's bytecode does) until its gate is opened, and gives up after a bound so that a
test whose loop it has blocked fails instead of hanging.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

GIVE_UP_S = 60


@dataclass
class Gate:
    started: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)


GATES: dict[str, Gate] = {}

SOURCE = f"""
import time
from tests.support.import_gate import GATES

gate = GATES[__name__]
gate.started.set()
deadline = time.monotonic() + {GIVE_UP_S}
while not gate.opened.is_set():
    if time.monotonic() > deadline:
        raise RuntimeError("the import gate was never opened")
    sum(range(1000))
"""


def slow_module(folder: Path) -> tuple[str, Gate]:
    """Write a slow module into `folder` (which the test puts on sys.path): its name, its gate."""
    name = f"slow_import_{uuid.uuid4().hex}"
    (folder / f"{name}.py").write_text(SOURCE, encoding="utf-8")
    gate = GATES[name] = Gate()
    return name, gate
