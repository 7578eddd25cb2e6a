"""Key leases: issued at every check-in of an active device, sealed to that device."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema import lease as lease_crypto
from schema.signing import b64e
from schema.validation import MAX_WIRE_INT

from ..archive import Archive
from ..auth import active_device, flushing_device
from ..deps import ArchiveDep, CurrentDevice, FlushingDevice, json_body
from ..errors import ApiError
from ..openapi import request_body
from ..signed import signed_json

router = APIRouter(prefix="/v1", tags=["lease"])


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    have_epoch: int | None = Field(default=None, ge=0, le=MAX_WIRE_INT, description=(
        "Epoch of the lease the device's vault key is wrapped under; the answer then "
        "also carries that lease's secret so a blocked device can unwrap and re-wrap."))


def sealed_lease(request: Request, archive: Archive, device_id: str, box_public_key: bytes,
                 have_epoch: int | None) -> dict[str, str]:
    issued = archive.issue_lease(device_id, have_epoch)
    key = request.app.state.signing_key
    payload = {**issued, "signature": b64e(key.sign(lease_crypto.lease_message(issued["lease"])))}
    return lease_crypto.seal(box_public_key, payload, device_id.encode())


@router.post("/lease", openapi_extra=request_body(LeaseRequest))
async def lease(
    request: Request, body: Annotated[LeaseRequest, json_body(LeaseRequest, active_device)],
    device: CurrentDevice, archive: ArchiveDep,
) -> Response:
    """Check in: a new lease (signed by the server, sealed to the device's X25519 key)."""
    sealed = await run_in_threadpool(
        sealed_lease, request, archive, device.id, device.box_public_key, body.have_epoch)
    return signed_json(request, {"sealed_lease": sealed})


class FlushKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    have_epoch: int = Field(ge=0, le=MAX_WIRE_INT)


@router.post("/flush-key", openapi_extra=request_body(FlushKeyRequest))
async def flush_key(
    request: Request, body: Annotated[FlushKeyRequest, json_body(FlushKeyRequest, flushing_device)],
    device: FlushingDevice, archive: ArchiveDep,
) -> Response:
    """For a revoked device only: the secret to open its vault once, push what it
    holds unsynced (the final flush) and wipe. Sealed to the device; no new lease."""
    if device.state == "active":
        raise ApiError(409, "not_revoked", "an active device checks in with /v1/lease")
    secret = await run_in_threadpool(archive.flush_key, device.id, body.have_epoch)
    if secret is None:
        raise ApiError(410, "key_gone", "no key for that lease epoch: the vault cannot be opened")
    sealed = lease_crypto.seal(device.box_public_key,
                               {"unwrap": {"epoch": body.have_epoch, "secret": b64e(secret)}},
                               device.id.encode())
    return signed_json(request, {"sealed_key": sealed})
