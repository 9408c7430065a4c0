"""Textual's render caches that outlive the widgets drawn with them, and their release.

Textual 8 caches `StylesCache.get_inner_outer` with `functools.lru_cache` on the method, so its
keys hold the styles cache of each of the last 1024 widgets drawn, and each of those holds the
widget's rendered lines: the screens of sales long finished stayed in memory (about 20 MB after
100 sales, most of the till's growth; Textualize/textual#6665). The cached values are two
background styles, cheap to make again, so the till empties that cache each time the checkout
comes back: what stays cached is only what the screens still open were drawn with.
"""

from __future__ import annotations

from textual._styles_cache import StylesCache


def release_closed_screens() -> None:
    """Let go of the rendered lines of widgets no longer shown (see the module's docstring).
    A Textual whose cache no longer has `cache_clear` (fixed upstream) needs nothing."""
    cache_clear = getattr(StylesCache.get_inner_outer, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()
