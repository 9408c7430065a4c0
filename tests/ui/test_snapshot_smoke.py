from pathlib import Path
from typing import Any

APP = Path(__file__).with_name("snapshot_smoke_app.py")


def test_snapshot_plugin_works(snap_compare: Any) -> None:
    assert snap_compare(str(APP), terminal_size=(40, 5))
