"""SmartDuka Till: an M-Pesa STK push checkout for Kenyan shops.

Kept import-light on purpose: importing `smartduka_tui.mpesa` must never load Textual.
"""

__version__ = "0.1.0"
