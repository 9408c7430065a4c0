"""The shop's receipt index: which till and sale of a shop hold each M-Pesa receipt.

Every till of a shop pulls the same shortcode's statement, so without this each till would
call its neighbours' payments "money without a sale", and a receipt code verified at one till
could pay a sale there that another till's sale already holds. Tills publish the receipts their
sales hold (`POST /v1/receipts`, first holder wins shop-wide) and ask before they accuse
(`POST /v1/receipts/known`). A C2B payment claimed for a sale (`c2b.py`) counts as held.
A till that registered a receipt for a sale the sale then did not take (its engine declined
the evidence) gives it back (`POST /v1/receipts/release`), so another sale can use it.

Kept in the store's meta table under `receipt/{shop_id}/{receipt}` keys, as the C2B claims
are: `set_meta_if_absent` is atomic on both stores, which is all first-holder-wins needs, and
no table has to be migrated on two databases. The relay is trusted to deliver, not to tell
the truth about money: a till uses these answers only to stop accusing, never to pay a sale.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callback_relay.body import BodyIncomplete, BodyTooLarge, read_limited
from callback_relay.c2b import _claim_key as claim_key
from callback_relay.c2b import holder_json
from callback_relay.feed import Feed
from callback_relay.routing import on_state
from callback_relay.settings import RelaySettings
from callback_relay.store import RelayStore, StoreUnavailable
from smartduka_tui.clock import Clock
from smartduka_tui.limits import TokenBuckets

MAX_RECEIPTS = 500
MAX_BODY_BYTES = 64 * 1024
# Daraja's receipts (MpesaReceiptNumber, TransID): 10 upper-case letters and digits.
RECEIPT_PATTERN = r"^[A-Z0-9]{10}$"
SALE_REF_PATTERN = r"^[A-Za-z0-9._-]+$"

ReceiptCode = Annotated[str, Field(pattern=RECEIPT_PATTERN)]
M = TypeVar("M", bound=BaseModel)


def receipt_key(shop_id: str, receipt: str) -> str:
    """Where a till's registration is kept (`claim_key`, C2B's, is the other holder)."""
    return f"receipt/{shop_id}/{receipt}"


class HeldReceipt(BaseModel):
    """One receipt and the sale of this till that holds it."""

    model_config = ConfigDict(extra="forbid")

    receipt: ReceiptCode
    sale_ref: str = Field(min_length=1, max_length=64, pattern=SALE_REF_PATTERN)


class RegisterBody(BaseModel):
    """Body of `POST /v1/receipts`."""

    model_config = ConfigDict(extra="forbid")

    receipts: list[HeldReceipt] = Field(min_length=1, max_length=MAX_RECEIPTS)

    @model_validator(mode="after")
    def _each_once(self) -> RegisterBody:
        seen: set[str] = set()
        for item in self.receipts:
            if item.receipt in seen:
                raise ValueError(f"receipt {item.receipt} is listed twice")
            seen.add(item.receipt)
        return self


class KnownBody(BaseModel):
    """Body of `POST /v1/receipts/known`."""

    model_config = ConfigDict(extra="forbid")

    receipts: list[ReceiptCode] = Field(min_length=1, max_length=MAX_RECEIPTS)


class ReleaseBody(HeldReceipt):
    """Body of `POST /v1/receipts/release`: the receipt and the sale of this till that holds
    it (the pair it was registered with)."""


def _bad_body(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _holder_of(raw: bytes) -> dict[str, str]:
    """The till and sale in a stored holder (a registration's or a C2B claim's value)."""
    data: dict[str, Any] = json.loads(raw)
    return {"till_id": str(data["till_id"]), "sale_ref": str(data["sale_ref"])}


class ReceiptIndex:
    """The two routes, signed with the till's key and paced as C2B claims are."""

    def __init__(
        self, settings: RelaySettings, store: RelayStore, clock: Clock, feed: Feed
    ) -> None:
        self._store = store
        self._feed = feed
        self._limiter = TokenBuckets(clock, settings.ack_rate_burst, settings.ack_rate_per_s)

    async def register(self, request: Request) -> Response:
        till = await self._feed.authenticate(request, self._limiter)
        if isinstance(till, Response):
            return till
        body = await self._body(request, RegisterBody)
        if isinstance(body, Response):
            return body
        shop_id = till.shop_id
        try:
            holders = await self._holders(shop_id, [item.receipt for item in body.receipts])
            # Written together, once per receipt: a receipt held already is only read.
            new = {
                receipt_key(shop_id, item.receipt): item
                for item in body.receipts
                if item.receipt not in holders
            }
            stored = await self._store.set_meta_many_if_absent(
                [(key, holder_json(till.till_id, item.sale_ref)) for key, item in new.items()]
            )
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        for key, item in new.items():
            holders[item.receipt] = _holder_of(stored[key])
        registered: list[str] = []
        conflicts: list[dict[str, str]] = []
        for item in body.receipts:
            holder = holders[item.receipt]
            if holder == {"till_id": till.till_id, "sale_ref": item.sale_ref}:
                registered.append(item.receipt)
            else:
                conflicts.append({"receipt": item.receipt, **holder})
        return JSONResponse({"registered": registered, "conflicts": conflicts})

    async def known(self, request: Request) -> Response:
        till = await self._feed.authenticate(request, self._limiter)
        if isinstance(till, Response):
            return till
        body = await self._body(request, KnownBody)
        if isinstance(body, Response):
            return body
        receipts = list(dict.fromkeys(body.receipts))
        try:
            holders = await self._holders(till.shop_id, receipts)
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        held = [{"receipt": r, **holders[r]} for r in receipts if r in holders]
        return JSONResponse({"held": held})

    async def release(self, request: Request) -> Response:
        """Give back a receipt this till registered for this sale: only that holder, and only
        for that sale, may (a compare-and-delete, so a racing registration is never lost).
        Anything else is a 4xx that changes nothing: 404 when no sale holds it, 409 when
        another sale or till (or a claimed direct payment, which is the relay's own call)
        does."""
        till = await self._feed.authenticate(request, self._limiter)
        if isinstance(till, Response):
            return till
        body = await self._body(
            request, ReleaseBody, "one receipt (10 upper-case letters and digits) and its sale_ref"
        )
        if isinstance(body, Response):
            return body
        shop_id = till.shop_id
        mine = holder_json(till.till_id, body.sale_ref)
        try:
            if await self._store.delete_meta_if(receipt_key(shop_id, body.receipt), mine):
                return JSONResponse({"released": body.receipt})
            holder = (await self._holders(shop_id, [body.receipt])).get(body.receipt)
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        if holder is None:
            return JSONResponse(
                {"error": f"no sale of this shop holds receipt {body.receipt}; nothing changed"},
                status_code=404,
            )
        return JSONResponse(
            {
                "error": (
                    f"receipt {body.receipt} is held by sale {holder['sale_ref']} at till "
                    f"{holder['till_id']}, not by sale {body.sale_ref} here; nothing changed"
                ),
                "holder": {"receipt": body.receipt, **holder},
            },
            status_code=409,
        )

    async def _holders(self, shop_id: str, receipts: list[str]) -> dict[str, dict[str, str]]:
        """Who holds each of `receipts` in the shop, in one read: a C2B claim first (the
        relay arbitrated it), else a till's registration; receipts no sale holds are left
        out."""
        claims = {claim_key(shop_id, r): r for r in receipts}
        held = {receipt_key(shop_id, r): r for r in receipts}
        found = await self._store.get_meta_many([*claims, *held])
        holders: dict[str, dict[str, str]] = {}
        for keys in (claims, held):
            for key, receipt in keys.items():
                raw = found.get(key)
                if raw is not None and receipt not in holders:
                    holders[receipt] = _holder_of(raw)
        return holders

    @staticmethod
    async def _body(
        request: Request,
        model: type[M],
        shape: str = f"at most {MAX_RECEIPTS} receipts, each 10 upper-case letters and digits",
    ) -> M | Response:
        try:
            raw = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return JSONResponse(
                {"error": f"body is larger than {MAX_BODY_BYTES // 1024} KiB"}, status_code=413
            )
        except BodyIncomplete:
            return JSONResponse({"error": "request body was cut short"}, status_code=400)
        try:
            return model.model_validate_json(raw)
        except ValidationError as error:
            return JSONResponse(
                {"error": (f"bad body ({_bad_body(error)}): {shape}; nothing was stored")},
                status_code=400,
            )


RECEIPT_ROUTES: list[Route] = [
    Route("/v1/receipts", on_state("receipts", ReceiptIndex.register), methods=["POST"]),
    Route("/v1/receipts/known", on_state("receipts", ReceiptIndex.known), methods=["POST"]),
    Route("/v1/receipts/release", on_state("receipts", ReceiptIndex.release), methods=["POST"]),
]
