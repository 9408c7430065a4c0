"""The Textual cashier app (and the place the manager screens plug into).

Layout:

- `app.py`: `SmartDukaApp` and its one factory `make_app(settings, services)`, used by
  `smartduka`, `smartduka demo`, the screenshot script, the benchmark and every test. The app
  owns the state every screen shows (the clock's `now`, the connection state, the number of
  attempts awaiting an outcome) and pushes it to its screens; it turns the payment engine's and
  the connection source's listeners into messages (`events.py`).
- `services.py`: `AppServices` (the payment service, the clock, the connection source, who
  this till is, extra F1 help, the log path, the manager service), `TillIdentity`,
  `HelpSection`, `UiOptions`.
- the connection state it shows (`ConnectionSource`, `ConnectionBoard`) lives outside the UI
  in `smartduka_tui.connectivity`, beside `ConnectivityMonitor`, the source of a running till.
- `screens/`: one module per screen with its `.tcss` beside it, scoped under the screen's type
  name: checkout, phone entry, waiting, success, failure, help (F1), item, confirm-no-SMS and the
  manager menu (F9). `screens/base.py` holds the frame (status bar, offline banner, notice,
  footer) and the rules for moving between sale screens. Screens hold no business logic: they
  call the payment service from workers and render the `PaymentView`s it returns.
- `widgets/`: the status bar, the offline banner, the notice line, the large receipt font, the
  footer, inputs.
- `freshness.py`, `summary.py`, `format.py`, `amounts.py`: small pure helpers
  (which of two views is newer; words for a stage; money and time; checkout totals). The next
  sale reference comes from the engine (`PaymentService.next_sale_ref`).

Adding screens (the manager tools do): write the screen in `ui/manager/` (one module and its
`.tcss` each), subclass `screens.base.TillScreen` to get the frame, and list a
`extensions.ScreenCommand` for it in `ui.manager.screen_commands()`. The app then offers it in
the command palette (Ctrl+P) and the manager menu (F9) with no other change; `make_app(...,
extensions=[...])` replaces the list (tests do). Call services with `call_service` (on every
`TillScreen` and dialog: one worker, its answer routed on the message loop). To grey keys out,
override `ready` (not `check_action` or `action_state`) and list in `WAITS` the actions that call
a service, which are greyed while `busy`; `TillScreen.check_action` already ignores keys that
reach a screen before it has mounted. Do not `watch` the app's reactives from a screen's widgets
(a watcher keeps the closed screen alive): implement `clock_moved`, `show_connection` or
`show_awaiting`, which the app calls on every `TillScreen` in the stack.
"""
