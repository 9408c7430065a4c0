"""The big receipt font (ui/widgets/big_text.py)."""

from __future__ import annotations

from smartduka_tui.ui.widgets.big_text import FONT, render_rows


def test_every_glyph_is_three_by_three_and_letters_are_distinct() -> None:
    for char, glyph in FONT.items():
        assert len(glyph) == 3, char
        assert all(len(row) == 3 for row in glyph), char
    drawn = {glyph for char, glyph in FONT.items() if char.isalnum()}
    assert len(drawn) == sum(1 for char in FONT if char.isalnum())


def test_receipt_rows_have_one_column_between_glyphs() -> None:
    rows = render_rows("NLJ7RT61SV")
    assert all(len(row) == 10 * 3 + 9 for row in rows)
    assert render_rows("ab") == render_rows("AB")
