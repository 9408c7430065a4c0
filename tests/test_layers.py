"""The layers of DESIGN.md section 2, checked on the source and on a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = [
    "smartduka_tui/mpesa",
    "smartduka_tui/payments",
    "smartduka_tui/store",
    "smartduka_tui/receipts",
]
UI_FRAMEWORKS = ("textual", "starlette")


def imported_modules(folder: str, root: Path = ROOT) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in (root / folder).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        name = str(path.relative_to(root))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((name, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((name, node.module))
    return found


def offenders(folder: str, banned: tuple[str, ...], root: Path = ROOT) -> list[str]:
    return sorted(
        f"{path} imports {module}"
        for path, module in imported_modules(folder, root)
        if any(module == b or module.startswith(b + ".") for b in banned)
    )


@pytest.mark.parametrize("folder", CORE)
def test_core_imports_no_ui_framework(folder: str) -> None:
    assert offenders(folder, UI_FRAMEWORKS) == []


def test_relay_never_imports_till_ui_or_payments() -> None:
    assert offenders("callback_relay", ("smartduka_tui.ui", "smartduka_tui.payments")) == []


def test_simulator_never_imports_protocol_layer() -> None:
    assert offenders("smartduka_tui/simulator", ("smartduka_tui.mpesa",)) == []


def test_importing_core_loads_no_ui_framework() -> None:
    code = (
        "import sys, importlib, pkgutil\n"
        "import smartduka_tui.mpesa, smartduka_tui.payments, smartduka_tui.store\n"
        "for pkg in (smartduka_tui.mpesa, smartduka_tui.payments, smartduka_tui.store):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{UI_FRAMEWORKS!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == ""


def test_layer_check_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself must be able to fail."""
    core = tmp_path / "smartduka_tui" / "mpesa"
    core.mkdir(parents=True)
    (core / "fine.py").write_text("import json\n")
    (core / "bad.py").write_text("from textual.app import App\n")
    assert offenders("smartduka_tui/mpesa", UI_FRAMEWORKS, root=tmp_path) == [
        "smartduka_tui/mpesa/bad.py imports textual.app"
    ]
