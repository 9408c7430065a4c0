"""Each errors module draws its exception hierarchy at the top (as httpx does); the drawing
must match the classes, so it cannot go stale."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "smartduka_tui.mpesa.errors",
    "smartduka_tui.store.errors",
    "smartduka_tui.manager.errors",
    "smartduka_tui.payments.api",
    "smartduka_tui.secretbox",
]


def drawn_tree(module_name: str) -> str:
    """The tree as the docstrings draw it: one `* Name` line per class, two spaces a level,
    other bases in brackets."""
    module = importlib.import_module(module_name)
    own = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, Exception) and c.__module__ == module_name
    ]
    own.sort(key=lambda c: inspect.getsourcelines(c)[1])
    lines: list[str] = []

    def draw(cls: type, depth: int) -> None:
        first, *others = cls.__bases__
        if first not in own:
            note = f" ({', '.join(b.__name__ for b in cls.__bases__)})"
        else:
            note = f" (also {', '.join(b.__name__ for b in others)})" if others else ""
        lines.append("  " * depth + f"* {cls.__name__}{note}")
        for child in own:
            if child.__bases__[0] is cls:
                draw(child, depth + 1)

    for root in own:
        if root.__bases__[0] not in own:
            draw(root, 0)
    return "\n".join(lines)


@pytest.mark.parametrize("module_name", MODULES)
def test_the_drawn_hierarchy_matches_the_classes(module_name: str) -> None:
    doc = importlib.import_module(module_name).__doc__ or ""
    assert drawn_tree(module_name) in doc


def test_a_stale_drawing_is_caught() -> None:
    tree = drawn_tree("smartduka_tui.manager.errors")
    assert tree.splitlines()[0] == "* ManagerError (Exception)"
    assert "  * NotSignedIn" in tree.splitlines()
    assert tree.replace("NotSignedIn", "SignedOut") not in (
        importlib.import_module("smartduka_tui.manager.errors").__doc__ or ""
    )
