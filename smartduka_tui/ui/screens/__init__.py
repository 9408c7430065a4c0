"""The cashier's screens: one module per screen, its `.tcss` beside it, all scoped by type name."""
