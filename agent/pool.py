"""The pool (公海) seen from the laptop, online only: the customers nobody serves,
with only what a rep needs to choose (name, industry, area, grade), and claiming
one. The server applies the caps (claims per day, customers per tier, the previous
owner's wait) and says which one refused; after a claim, a pull brings the full
card and its whole history like any other grant."""

from __future__ import annotations

import re
from typing import Any

import orjson

from schema.models import ClaimResponse, PoolPage

from .errors import StoreError
from .store import Store
from .sync import SyncReport, pull
from .transport import Transport

_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # schema.validation.ID_PATTERN


def browse(transport: Transport, search: str | None = None, limit: int = 50,
           offset: int = 0) -> dict[str, Any]:
    """One page of the pool (GET /v1/pool), as the wire model allows it: nothing
    beyond the limited fields is kept, whatever the answer held."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if search and search.strip():
        params["search"] = search.strip()
    return PoolPage.model_validate(transport.request("GET", "/v1/pool", params=params)
                                   ).model_dump(mode="json")


def claim(transport: Transport, customer_id: str) -> dict[str, Any]:
    """Claim one customer from the pool (POST /v1/pool/claim). A refusal is the
    server's ServerRefused, whose message names the cap and when it frees up."""
    customer_id = customer_id.strip()
    if not _ID.match(customer_id):
        raise StoreError(f"{customer_id!r} is not a customer id or card number: take one "
                         "from `fieldvault pool list`")
    answer = transport.request("POST", "/v1/pool/claim",
                               payload=orjson.dumps({"customer_id": customer_id}))
    return ClaimResponse.model_validate(answer).model_dump(mode="json")


def bring_down(store: Store, transport: Transport) -> SyncReport:
    """The pull after a claim: the card and its history arrive as a grant."""
    report = SyncReport()
    pull(store, transport, report)
    return report
