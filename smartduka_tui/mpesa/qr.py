"""Dynamic QR images as terminal text: one character per module column, two module rows per line
(half blocks), so a version-6 code with its quiet zone fits an 80x24 terminal.

The QR API returns a scaled PNG; the module size is read from the top-left finder pattern (seven
modules wide), and each module is sampled at its centre.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, UnidentifiedImageError

MAX_COLUMNS: Final = 80
MAX_LINES: Final = 24
QUIET_MODULES: Final = 2
_FINDER_MODULES: Final = 7
_DARK_BELOW: Final = 128
# (top light, bottom light) -> character, for light-on-dark terminals: a lit cell is a light
# module, so the code reads as dark modules on a light ground, as scanners expect.
_CELLS: Final = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


class QrImageError(ValueError):
    """The image is not a QR code this renderer can read, or it would not fit the screen."""


def qr_modules(png: bytes) -> list[list[bool]]:
    """The QR's modules (True = dark) without its quiet zone."""
    try:
        with Image.open(io.BytesIO(png)) as opened:
            image = opened.convert("L")
    except (UnidentifiedImageError, OSError, ValueError):
        raise QrImageError("the QR image is not a readable PNG") from None
    width = image.size[0]
    pixels = image.load()
    if pixels is None:
        raise QrImageError("the QR image has no pixels")

    def dark(x: int, y: int) -> bool:
        value = pixels[x, y]
        level = value if isinstance(value, int | float) else 255
        return level < _DARK_BELOW

    box = image.point(lambda level: 255 if level < _DARK_BELOW else 0).getbbox()
    if box is None:
        raise QrImageError("the QR image is blank")
    left, top, right, bottom = box
    span = right - left
    if abs((bottom - top) - span) > 1:
        raise QrImageError("the QR image is not square")
    run = 0
    while left + run < width and dark(left + run, top):
        run += 1
    module = run / _FINDER_MODULES
    count = round(span / module) if module else 0
    if module < 1 or count < 21 or (count - 17) % 4 != 0:
        raise QrImageError("the image does not look like a QR code")
    return [
        [dark(int(left + (c + 0.5) * module), int(top + (r + 0.5) * module)) for c in range(count)]
        for r in range(count)
    ]


def qr_to_half_blocks(png: bytes) -> list[str]:
    """The QR as lines of half-block characters with a two-module quiet zone; QrImageError if
    it cannot be read or would not fit 80x24."""
    modules = qr_modules(png)
    size = len(modules) + 2 * QUIET_MODULES
    lines = (size + 1) // 2
    if size > MAX_COLUMNS or lines > MAX_LINES:
        raise QrImageError(f"a {len(modules)}-module QR code does not fit an 80x24 terminal")

    def light(row: int, col: int) -> bool:
        r, c = row - QUIET_MODULES, col - QUIET_MODULES
        inside = 0 <= r < len(modules) and 0 <= c < len(modules)
        return not (inside and modules[r][c])

    return [
        "".join(_CELLS[(light(2 * line, col), light(2 * line + 1, col))] for col in range(size))
        for line in range(lines)
    ]
