"""The text of a running app's screen, read from `export_screenshot()` (the SVG a person sees),
line by line: what masking and content tests look at."""

from __future__ import annotations

import html
import re
from typing import Any

# Rich's SVG export draws one terminal cell 12.2 units wide.
_CELL_WIDTH = 12.2

_TEXT = re.compile(
    r'<text[^>]*\bx="(?P<x>[\d.]+)"[^>]*clip-path="url\(#[\w-]*?line-(?P<line>\d+)\)"[^>]*>'
    r"(?P<body>.*?)</text>",
    re.S,
)


def screen_lines(app: Any) -> list[str]:
    svg = app.export_screenshot()
    lines: dict[int, list[tuple[float, str]]] = {}
    for match in _TEXT.finditer(svg):
        body = html.unescape(re.sub(r"<[^>]+>", "", match.group("body")))
        lines.setdefault(int(match.group("line")), []).append((float(match.group("x")), body))
    return [_place(sorted(parts)) for _, parts in sorted(lines.items())]


def _place(parts: list[tuple[float, str]]) -> str:
    """Put each run of text at its column (blank cells are not drawn as text)."""
    line = ""
    for x, text in parts:
        column = round(x / _CELL_WIDTH)
        line = line.ljust(column) + text.replace("\xa0", " ")
    return line.rstrip()


def screen_text(app: Any) -> str:
    return "\n".join(screen_lines(app))
