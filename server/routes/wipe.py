"""Wipe orders and receipts: how a revoked device learns to destroy its copy and proves it did."""

from __future__ import annotations

from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema import signing

from ..auth import flushing_device
from ..deps import ArchiveDep, FlushingDevice, json_body
from ..errors import ApiError
from ..openapi import request_body
from ..signed import signed_json
from .sync import sign_wipe_order

router = APIRouter(prefix="/v1", tags=["wipe"])


class WipeReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(pattern="^wipe_receipt$")]
    order_id: Annotated[str, Field(max_length=64)]
    device_id: Annotated[str, Field(max_length=64)]
    wiped_at: Annotated[str, Field(max_length=40)]
    removed: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)]
    signature: Annotated[str, Field(max_length=200)]


@router.get("/wipe-order")
async def wipe_order(request: Request, device: FlushingDevice, archive: ArchiveDep) -> Response:
    """A revoked device's signed wipe order (409 for a device in good standing)."""
    if device.state == "active":
        raise ApiError(409, "not_revoked", "this device is not revoked")
    _, order = await run_in_threadpool(archive.final_flush, device, [])
    return signed_json(request, {"wipe_order": sign_wipe_order(request, order)})


@router.post("/wipe-receipt", openapi_extra=request_body(WipeReceipt))
async def wipe_receipt(
    request: Request, body: Annotated[WipeReceipt, json_body(WipeReceipt, flushing_device)],
    device: FlushingDevice, archive: ArchiveDep,
) -> Response:
    """Record the device's signed proof that it destroyed its copy."""
    if device.state == "active" or body.device_id != device.id:
        raise ApiError(409, "not_revoked", "no wipe was ordered for this device")
    receipt = body.model_dump(exclude={"signature"})
    try:
        Ed25519PublicKey.from_public_bytes(device.sign_public_key).verify(
            signing.b64d(body.signature), signing.wipe_receipt_message(receipt))
    except (InvalidSignature, ValueError):
        raise ApiError(401, "bad_receipt_signature", "the receipt is not signed by this device") from None
    await run_in_threadpool(archive.record_wipe_receipt, device, {**receipt,
                                                                  "signature": body.signature})
    return signed_json(request, {"recorded": True, "order_id": body.order_id})
