"""The pool (公海) as a rep's laptop sees it while online: browse, then claim.

Signed device requests like the sync routes. Browsing shows only what a rep needs
to choose (name, industry, area, grade); the claimed card and its whole history
then arrive by the rep's next pull.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from schema.models import ClaimRequest, ClaimResponse, PoolPage
from schema.validation import ASCII_INT

from ..auth import active_device
from ..deps import ArchiveDep, CurrentDevice, ResponseSigner, json_body
from ..openapi import request_body
from ..signed import SIGNED_RESPONSE

router = APIRouter(prefix="/v1", tags=["pool"])


def _ascii_int(value: Any) -> Any:
    """Plain digits only (pydantic's lax query parsing would take `+5` or `1_0`)."""
    if isinstance(value, str) and not ASCII_INT.fullmatch(value):
        raise ValueError("must be a whole number written in the digits 0-9")
    return value


@router.get("/pool", response_model=PoolPage, responses=SIGNED_RESPONSE)
async def pool_page(
    signer: ResponseSigner, device: CurrentDevice, archive: ArchiveDep,
    search: Annotated[str, Query(max_length=100, description=(
        "Part of the name, industry or area (any case), or a card number"))] = "",
    limit: Annotated[int, BeforeValidator(_ascii_int), Query(ge=1, le=200)] = 50,
    offset: Annotated[int, BeforeValidator(_ascii_int), Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Customers in the pool, by card number, with what the rep may still claim today
    and how close they are to their owned cap. No phones, notes or history."""
    page = await run_in_threadpool(archive.pool_page, device.rep_id, search.strip(), limit,
                                   offset)
    return signer.json(PoolPage.model_validate(page).model_dump(mode="json"))


@router.post("/pool/claim", response_model=ClaimResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(ClaimRequest))
async def claim(
    body: Annotated[ClaimRequest, json_body(ClaimRequest, active_device)],
    signer: ResponseSigner, device: CurrentDevice, archive: ArchiveDep,
) -> Response:
    """Claim a pool customer (by id or card number). Refusals: 403 `daily_claim_cap`,
    `owned_cap`, `reclaim_cooldown` (the message says which cap, the numbers and when it
    frees up); 409 `not_in_pool`; 404 `unknown_customer`. The card and its history
    arrive with the next pull."""
    answer = await run_in_threadpool(archive.claim, device.rep_id, body.customer_id)
    return signer.json(ClaimResponse.model_validate(answer).model_dump(mode="json"))
