"""Daraja protocol layer: wire models, phone numbers, request building, result codes, client.

- `models`: pydantic shapes of every Daraja body and `parse_stk_callback`.
- `phone`: `normalise_phone`, `mask_phone`, `format_local`.
- `requests`: `MerchantConfig`, `build_stk_push`, `build_stk_query`, `stk_password`.
- `result_codes`: what each ResultCode or refusal means at the counter (`describe_result`).
- `client` and `errors`: the async `DarajaClient` and its typed failures.
- `callback_path`: signed per-attempt callback URLs; `kenya_time`: Daraja timestamps.
- `enrolment`: the enrolment file the relay writes and the till reads, and its one loader;
  `broker_body`: what a platform shop's till sends the relay's Daraja broker.

Imports neither Textual nor Starlette; the relay shares it with the till.
"""
