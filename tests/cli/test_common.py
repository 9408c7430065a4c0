"""`load_modules`: the app's modules load with the collector paused, which comes back on."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: freezing objects in the test process would keep its garbage alive.
PROBE = """
import gc, sys
from smartduka_tui.cli.common import load_modules
from smartduka_tui.cli.app import APP_MODULES
assert not any(name in sys.modules for name in APP_MODULES), "already loaded"
load_modules(APP_MODULES)
assert all(name in sys.modules for name in APP_MODULES)
print(gc.isenabled(), gc.get_freeze_count() > 10_000)
gc.disable()
load_modules(["json"])
print(gc.isenabled())
"""


def test_the_app_modules_load_and_collection_resumes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "False"]


def test_a_module_that_fails_to_load_leaves_collection_on() -> None:
    probe = (
        "import gc\nfrom smartduka_tui.cli.common import load_modules\n"
        "try:\n    load_modules(['smartduka_tui.no_such_module'])\n"
        "except ImportError:\n    print(gc.isenabled())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["True"], done.stderr
