"""A card's ownership history, online only: the vault keeps the current owner, the
archive keeps who served the card before and since when. Only the rep serving the
card may read it (GET /v1/customers/{id}/ownership, signed like every device call)."""

from __future__ import annotations

import re
from typing import Any

from .errors import StoreError
from .transport import Transport

_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # schema.validation.ID_PATTERN
_KEYS = ("rep_name", "since", "until", "source")


def history(transport: Transport, customer_id: str) -> list[dict[str, Any]]:
    """The periods, oldest first: [{rep_name, since, until, source}] (rep_name None while
    the card was in the pool, until None for the current one). Only those keys are kept,
    whatever else the answer held."""
    if not _ID.match(customer_id):
        raise StoreError(f"{customer_id!r} is not a customer id or card number")
    answer = transport.request("GET", f"/v1/customers/{customer_id}/ownership")
    periods = answer.get("periods") if isinstance(answer, dict) else None
    if not isinstance(periods, list):
        raise StoreError("the server's ownership answer holds no periods")
    return [{k: p.get(k) for k in _KEYS} for p in periods if isinstance(p, dict)]
