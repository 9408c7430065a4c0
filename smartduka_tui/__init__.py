"""SmartDuka Till: an M-Pesa STK push checkout for Kenyan shops.

Kept import-light on purpose: importing `smartduka_tui.mpesa` must never load Textual.
"""

import sys

# httpx loads its own command line (`httpx._main`: click, pygments and rich's markup, about
# 3 MB resident) with every `import httpx`, and no SmartDuka process ever runs it. A None entry
# makes that one import fail, which httpx allows for (its `main` is then a stub that says the
# command line's extras are missing). Set only while httpx is not loaded yet.
if "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]

__version__ = "0.1.0"
