"""Key leases: issued at every check-in of an active device, sealed to that device.

A revoked device gets no lease and nothing else that opens its vault: its unsynced
work comes home either by its normal push (while its vault still opens) or as the
sealed envelopes of `POST /v1/final-flush` (routes/wipe.py), which need no key.
"""

from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema import lease as lease_crypto
from schema import sealing
from schema.models import LeaseResponse
from schema.signing import b64e
from schema.validation import MAX_WIRE_INT

from ..auth import active_device
from ..deps import ArchiveDep, BoxKey, CurrentDevice, ResponseSigner, SigningKey, json_body
from ..keys import public_key_b64
from ..openapi import request_body
from ..rules import Archive
from ..signed import SIGNED_RESPONSE

router = APIRouter(prefix="/v1", tags=["lease"])


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    have_epoch: int | None = Field(default=None, ge=0, le=MAX_WIRE_INT, description=(
        "Epoch of the lease the device's vault key is wrapped under; the answer then "
        "also carries that lease's secret so a blocked device can unwrap and re-wrap."))


def sealed_lease(key: Ed25519PrivateKey, box_key: X25519PrivateKey, archive: Archive,
                 device_id: str, box_public_key: bytes, have_epoch: int | None) -> dict[str, str]:
    issued = archive.issue_lease(device_id, have_epoch)
    # The server's X25519 key for outbox envelopes rides in the signed lease, so the
    # agent trusts it exactly as far as the pinned signing key, and agents enrolled
    # before it existed pick it up at their next check-in.
    lease = {**issued["lease"], "server_box_public_key": public_key_b64(box_key)}
    payload = {**issued, "lease": lease,
               "signature": b64e(key.sign(lease_crypto.lease_message(lease)))}
    return sealing.seal(box_public_key, payload, device_id.encode())


@router.post("/lease", response_model=LeaseResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(LeaseRequest))
async def lease(
    signer: ResponseSigner, body: Annotated[LeaseRequest, json_body(LeaseRequest, active_device)],
    device: CurrentDevice, archive: ArchiveDep, key: SigningKey, box_key: BoxKey,
) -> Response:
    """Check in: a new lease (signed by the server, sealed to the device's X25519 key)."""
    sealed = await run_in_threadpool(
        sealed_lease, key, box_key, archive, device.id, device.box_public_key, body.have_epoch)
    return signer.json({"sealed_lease": sealed})
