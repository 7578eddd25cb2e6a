"""A card's ownership history as the laptop shows it while online: the vault keeps
only the current owner, the archive keeps every change. Signed device request; only
the rep serving the card may read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from schema.validation import ID_PATTERN

from ..deps import ArchiveDep, CurrentDevice, ResponseSigner
from ..signed import SIGNED_RESPONSE

router = APIRouter(prefix="/v1", tags=["customers"])

CustomerRef = Annotated[str, Path(pattern=ID_PATTERN, description="Customer id or card number")]


class OwnershipPeriod(BaseModel):
    rep_name: str | None  # None: the card was in the pool (公海)
    since: str
    until: str | None  # None: still going on
    source: str


class OwnershipHistory(BaseModel):
    customer_id: str
    periods: list[OwnershipPeriod]


@router.get("/customers/{customer_id}/ownership", response_model=OwnershipHistory,
            responses=SIGNED_RESPONSE)
async def ownership(customer_id: CustomerRef, signer: ResponseSigner, device: CurrentDevice,
                    archive: ArchiveDep) -> Response:
    """Who served the customer when, oldest first (rep names, ISO dates, how each got
    it). Only the customer's current owner may read it: 404 `unknown_customer` for
    anyone else, as for a card that does not exist."""
    periods = await run_in_threadpool(archive.owner_periods, device.rep_id, customer_id)
    answer = OwnershipHistory.model_validate({"customer_id": customer_id, "periods": periods})
    return signer.json(answer.model_dump(mode="json"))
