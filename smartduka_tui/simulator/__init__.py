"""A Daraja simulator (Starlette). It has its own parsing and never imports `smartduka_tui.mpesa`,
so the two check each other."""
