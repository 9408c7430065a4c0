"""The footer every screen uses: Textual's, without its leak.

Textual 8's Footer rebuilds its keys on every bindings refresh and binds each new key to its
`compact` reactive with `data_bind`. The binding is stored on the footer and pruned only when
`compact` changes, which it never does here, so every key ever shown stays in memory with its
render caches (Textualize/textual#6666): about half a megabyte per sale on a till. This footer
drops the entries of keys that have been removed each time it rebuilds.
"""

from __future__ import annotations

from textual.widgets import Footer

# Where Textual keeps `watch`/`data_bind` entries on the watched object (textual/reactive.py).
_WATCHERS = "__watchers"


class TillFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        watchers = getattr(self, _WATCHERS, {}).get("compact")
        if watchers:
            watchers[:] = [(node, callback) for node, callback in watchers if node.is_attached]

    @property
    def bound_keys(self) -> int:
        """How many keys are bound to this footer's `compact` (tests check it stays small)."""
        return len(getattr(self, _WATCHERS, {}).get("compact", []))
