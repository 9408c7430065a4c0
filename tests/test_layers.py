"""The layers of DESIGN.md section 2: import-linter's contracts (pyproject's [tool.importlinter])
hold on the source, and a fresh interpreter that loads the core loads no UI framework."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CORE = (
    "smartduka_tui.model",
    "smartduka_tui.mpesa",
    "smartduka_tui.payments",
    "smartduka_tui.store",
    "smartduka_tui.clock",
    "smartduka_tui.background",
    "smartduka_tui.limits",
    "smartduka_tui.config",
    "smartduka_tui.connectivity",
    "smartduka_tui.relay_client",
    "smartduka_tui.till",
    "smartduka_tui.receipts",
    "smartduka_tui.printing",
    "smartduka_tui.manager",
)
UI_FRAMEWORKS = ("textual", "starlette")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH puts `root`'s packages ahead of the editable install's.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_contracts_catch_a_core_module_importing_the_ui(tmp_path: Path) -> None:
    """The contracts must be able to fail: the same tree with one import pointing upward."""
    for package in ("smartduka_tui", "callback_relay"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "smartduka_tui" / "store" / "audit.py").open("a") as audit:
        audit.write("\nfrom smartduka_tui.ui.format import shillings  # noqa: E402, F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "The core never imports a face, Textual or Starlette BROKEN" in result.stdout
    assert "smartduka_tui.store.audit -> smartduka_tui.ui.format" in result.stdout


def test_contracts_catch_the_engine_importing_the_manager_layer(tmp_path: Path) -> None:
    """The application layer is above the engine: an engine module reaching up to it breaks
    its contract."""
    for package in ("smartduka_tui", "callback_relay"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "smartduka_tui" / "payments" / "machine.py").open("a") as machine:
        machine.write("\nfrom smartduka_tui.manager.words import shillings  # noqa: E402, F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert (
        "The application layer sits above the engine and the store, below the faces BROKEN"
        in result.stdout
    )
    assert "smartduka_tui.payments.machine -> smartduka_tui.manager.words" in result.stdout


def test_importing_core_loads_no_ui_framework() -> None:
    code = (
        "import sys, importlib, pkgutil\n"
        f"for name in {CORE!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(getattr(module, '__path__', []), name + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{UI_FRAMEWORKS!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == ""
