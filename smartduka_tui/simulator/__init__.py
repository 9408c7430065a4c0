"""A Daraja simulator (STK push and the statement APIs), faithful to `daraja/REFERENCE.md`.

It has its own parsing and never imports `smartduka_tui.mpesa`, so the two check each other.
Run it with `smartduka-sim serve` (or `python -m smartduka_tui.simulator serve`); build it in
process with `smartduka_tui.simulator.app.create_app(config)`; script it with
`smartduka_tui.simulator.control.SimulatorControl`.

Daraja endpoints and what they check, in Daraja's order:

- `GET /oauth/v1/generate?grant_type=client_credentials` with Basic auth: 200
  `{"access_token", "expires_in": "3599"}` (a number by setting). Another method: 404
  `404.001.04`; another grant type: 400 `400.008.02`; no Basic header: 400 `400.008.01`;
  wrong key or secret: 400 with an empty body.
- `POST /mpesa/stkpush/v1/processrequest`: bearer token (404 `404.001.03` if missing, unknown,
  expired or revoked) -> JSON content type (else "Invalid BusinessShortCode", as Daraja does)
  and a JSON object (400 `400.002.05`) -> each field in order (400 `400.002.02` "Bad Request -
  Invalid <Field>") -> the shortcode belongs to the token's app, or is shared like 174379 (500
  `500.001.1001` "Merchant does not exist"; a token may act only for its own app's shortcodes)
  -> spike arrest (500 `500.003.02`) and quota (500 `500.003.03`), counted per shortcode ->
  Password = base64(shortcode + passkey + Timestamp) (500 "Wrong credentials") -> no open prompt
  on the phone (500 "Unable to lock subscriber, ..."). Accepted: 200 with five strings.
- `POST /mpesa/stkpushquery/v1/query`: the same checks, then HTTP 500 "The transaction is being
  processed" (requestId = CheckoutRequestID) while pending, or 200 with a string ResultCode and
  "The service request has been accepted successsfully" (Safaricom's spelling). An unknown
  CheckoutRequestID gets 400 "Bad Request - Invalid CheckoutRequestID" by default.

Results decided before any prompt: a TransactionType that does not fit the shortcode's kind
gives 2028; a PartyB that is not the paybill itself or one of the store's till numbers gives
"SFC_IC0003" (a string); the same amount to the same phone from the same shortcode within two
simulator minutes of the last prompt gives 17 "Rule limited.". The push is accepted either way.

Callbacks are POSTed as JSON to the CallBackURL after the callback delay (simulator time, 1.5 s
by default). ResultCode is an integer (a string only for codes like SFC_IC0003); metadata only on
0: Amount (150.00 by default), MpesaReceiptNumber, Balance without a Value (or omitted),
TransactionDate and PhoneNumber as numbers. Any answer is recorded; nothing is retried.

Magic phone numbers (a scripted scenario for the phone overrides them):

- 254700000000 pays (0); ...01 cancels (1032); ...02 insufficient funds (1); ...03 wrong PIN
  (2001); ...04 cannot be reached (1037)
- ...05 pays but no callback is ever sent (the query knows)
- ...06 pays but the push response is held 60 real seconds (or until the client hangs up): a
  client read timeout whose push nevertheless went through
- ...07 never answers: the prompt expires with 1037 after the prompt timeout (90 s)
- ...08 callback twice; ...09 callback 60 s after the query knows; ...10 push answers HTTP 503
  without an envelope (but went through); ...11 callback before the push response
- any other number pays, the sandbox MSISDN 254708374149 included.

The statement APIs (C2B register URL, Dynamic QR, Transaction Status, Reversal, Pull
Transactions) live in `statement.py`; see the package README. A phone can pay a shortcode
directly through `POST /__sim/shortcodes/{code}/c2b/payments`.

Simulator time is real time plus an offset; `POST /__sim/clock/advance` adds to the offset,
delivers every callback then due and returns when they were delivered, which settles prompts,
expires tokens and ends code 17's window without waiting. The control API (`/__sim/...`, see
`smartduka-sim --help`) registers shortcodes and apps, scripts phones, changes settings, and
lists requests (secrets redacted), callback deliveries and transactions. It has no
authentication: bind the simulator to loopback.
"""
