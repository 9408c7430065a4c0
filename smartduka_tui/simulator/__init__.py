"""A Daraja simulator (STK push and the statement APIs), faithful to `daraja/REFERENCE.md`.

It has its own parsing and never imports `smartduka_tui.mpesa`, so the two check each other.
Run it with `smartduka-sim serve` (or `python -m smartduka_tui.simulator serve`); build it in
process with `smartduka_tui.simulator.app.create_app(config)`; script it with
`smartduka_tui.simulator.control.SimulatorControl`.

What each endpoint checks, in Daraja's order, what it answers, the magic phone numbers and the
control API are described once, in this package's README.md (and by `smartduka-sim --help`).
Simulator time is real time plus an offset that `POST /__sim/clock/advance` adds to. The control
API (`/__sim/...`) has no authentication: bind the simulator to loopback.
"""
