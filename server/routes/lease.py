"""Key leases: issued at every check-in of an active device, sealed to that device.

A revoked device gets no lease and nothing else that opens its vault: its unsynced
work comes home either by its normal push (while its vault still opens) or as the
sealed envelopes of `POST /v1/final-flush` (routes/wipe.py), which need no key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from schema.clock import iso
from schema.models import LeaseResponse
from schema.validation import MAX_WIRE_INT, Time

from ..auth import active_device
from ..deps import ArchiveDep, BoxKey, CurrentDevice, ResponseSigner, SigningKey, json_body
from ..openapi import request_body
from ..signed import SIGNED_RESPONSE, sealed_lease

router = APIRouter(prefix="/v1", tags=["lease"])


MAX_UNSYNCED = 10_000_000


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    have_epoch: int | None = Field(default=None, ge=0, le=MAX_WIRE_INT, description=(
        "Epoch of the lease the device's vault key is wrapped under; the answer then "
        "also carries that lease's secret so a blocked device can unwrap and re-wrap."))
    # Optional: agents older than the fleet view's backlog omit both, and the device's
    # last report (if any) stands.
    unsynced_ops: int | None = Field(default=None, ge=0, le=MAX_UNSYNCED, description=(
        "How many operations the device has not synced yet (its outbox), for the fleet view"))
    oldest_unsynced_at: Time | None = Field(default=None, description=(
        "When the oldest of those operations was made; only with `unsynced_ops` > 0"))

    @model_validator(mode="after")
    def _backlog_consistent(self) -> LeaseRequest:
        if self.oldest_unsynced_at is not None and not self.unsynced_ops:
            raise ValueError("oldest_unsynced_at needs unsynced_ops above 0")
        return self

    def backlog(self) -> tuple[int, str | None] | None:
        if self.unsynced_ops is None:
            return None
        when = self.oldest_unsynced_at
        return self.unsynced_ops, iso(when) if when is not None else None


@router.post("/lease", response_model=LeaseResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(LeaseRequest))
async def lease(
    signer: ResponseSigner, body: Annotated[LeaseRequest, json_body(LeaseRequest, active_device)],
    device: CurrentDevice, archive: ArchiveDep, key: SigningKey, box_key: BoxKey,
) -> Response:
    """Check in: a new lease (signed by the server, sealed to the device's X25519 key)."""
    sealed = await run_in_threadpool(
        sealed_lease, key, box_key, archive, device.id, device.box_public_key, body.have_epoch,
        body.backlog())
    return signer.json({"sealed_lease": sealed})
