"""Large letters for the one thing a cashier must read across the counter: the receipt number.

M-Pesa receipt numbers are ten upper-case letters and digits. Textual's `Digits` draws only
digits and A-F, so this is a small 3x3 box-drawing font for 0-9 and A-Z in the same style.
Characters outside the font are drawn as a plain character in the middle row.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.widget import Widget

_ROWS = 3
_WIDTH = 3

# Each glyph is three rows of exactly three cells. O and 0 differ (0 has a slash), as do S
# and 5, I and 1, B and 8, so a receipt read aloud from the screen is unambiguous.
FONT: dict[str, tuple[str, str, str]] = {
    "0": ("┏━┓", "┃╱┃", "┗━┛"),
    "1": ("╺┓ ", " ┃ ", "╺┻╸"),
    "2": ("╺━┓", "┏━┛", "┗━╸"),
    "3": ("╺━┓", " ━┫", "╺━┛"),
    "4": ("╻ ╻", "┗━┫", "  ╹"),
    "5": ("┳━╸", "┗━┓", "╺━┛"),
    "6": ("┏━╸", "┣━┓", "┗━┛"),
    "7": ("╺━┓", "  ┃", "  ╹"),
    "8": ("┏━┓", "┣━┫", "┗━┛"),
    "9": ("┏━┓", "┗━┫", "╺━┛"),
    "A": ("┏━┓", "┣━┫", "╹ ╹"),
    "B": ("┳━┓", "┣━┫", "┻━┛"),
    "C": ("┏━╸", "┃  ", "┗━╸"),
    "D": ("┳━┓", "┃ ┃", "┻━┛"),
    "E": ("┏━╸", "┣━ ", "┗━╸"),
    "F": ("┏━╸", "┣━ ", "╹  "),
    "G": ("┏━╸", "┃╺┓", "┗━┛"),
    "H": ("╻ ╻", "┣━┫", "╹ ╹"),
    "I": ("╺┳╸", " ┃ ", "╺┻╸"),
    "J": ("╺━┓", "  ┃", "┗━┛"),
    "K": ("╻┏╸", "┣┫ ", "╹┗╸"),
    "L": ("╻  ", "┃  ", "┗━╸"),
    "M": ("┏┳┓", "┃╹┃", "╹ ╹"),
    "N": ("┏┓╻", "┃┃┃", "╹┗┛"),
    "O": ("┏━┓", "┃ ┃", "┗━┛"),
    "P": ("┏━┓", "┣━┛", "╹  "),
    "Q": ("┏━┓", "┃ ┃", "┗━╲"),
    "R": ("┏━┓", "┣┳┛", "╹┗╸"),
    "S": ("┏━╸", "┗━┓", "┗━┛"),
    "T": ("╺┳╸", " ┃ ", " ╹ "),
    "U": ("╻ ╻", "┃ ┃", "┗━┛"),
    "V": ("╻ ╻", "╲ ╱", " ╹ "),
    "W": ("╻ ╻", "┃┃┃", "┗┻┛"),
    "X": ("╲ ╱", " ╳ ", "╱ ╲"),
    "Y": ("╻ ╻", "┗┳┛", " ╹ "),
    "Z": ("╺━┓", " ╱ ", "┗━╸"),
    " ": ("   ", "   ", "   "),
    "-": ("   ", "╺━╸", "   "),
}


def render_rows(text: str) -> tuple[str, str, str]:
    """The three text rows that draw `text` (upper-cased), one space between glyphs."""
    rows: list[list[str]] = [[], [], []]
    for char in text.upper():
        glyph = FONT.get(char, ("   ", f" {char[:1]} ", "   "))
        for index in range(_ROWS):
            rows[index].append(glyph[index])
    return (" ".join(rows[0]), " ".join(rows[1]), " ".join(rows[2]))


class _BigRenderable:
    def __init__(self, text: str, style: Style) -> None:
        self.text = text
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for row in render_rows(self.text):
            yield Segment(row, self.style)
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = len(render_rows(self.text)[0])
        return Measurement(width, width)


class BigText(Widget):
    """Text drawn three rows high. Width follows the text; style follows the widget's CSS."""

    DEFAULT_CSS = """
    BigText {
        width: auto;
        height: 3;
    }
    """

    def __init__(self, text: str = "", *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._text = text

    @property
    def text(self) -> str:
        return self._text

    def update(self, text: str) -> None:
        self._text = text
        self.refresh(layout=True)

    def render(self) -> _BigRenderable:
        return _BigRenderable(self._text, self.rich_style)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return len(render_rows(self._text)[0]) if self._text else 0

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return _ROWS
