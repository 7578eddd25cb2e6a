"""The end of a revoked device: its final flush of sealed envelopes and sealed photos, its
wipe order, and the receipt in which it attests (signs) that it destroyed its copy.

A receipt is the device's own statement, not proof: a disk image or a modified agent
can sign one too. The server records it and says so (departure report)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from schema import sealing, signing
from schema.clock import iso
from schema.enums import OpStatus
from schema.evidence import ATTACHMENT_CHUNK_BYTES
from schema.models import (
    AttachmentPart,
    FinalFlushResponse,
    Operation,
    OpResult,
    SealedBox,
    UploadState,
    WipeOrderResponse,
    WipeReceiptResponse,
)
from schema.validation import ID_PATTERN, MAX_OPS_PER_PUSH

from ..archive import Device
from ..auth import flushing_device
from ..deps import (
    ArchiveDep,
    BoxKey,
    ClockDep,
    FlushingDevice,
    ResponseSigner,
    SettingsDep,
    decode_body,
    json_body,
    parse_json,
)
from ..errors import ApiError
from ..openapi import request_body
from ..rules import Archive
from ..signed import SIGNED_RESPONSE

router = APIRouter(prefix="/v1", tags=["wipe"])


class WipeReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(pattern="^wipe_receipt$")]
    order_id: Annotated[str, Field(max_length=64)]
    device_id: Annotated[str, Field(max_length=64)]
    wiped_at: Annotated[str, Field(max_length=40)]
    removed: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)]
    signature: Annotated[str, Field(max_length=200)]


class Envelope(BaseModel):
    """One outbox operation as the agent sealed it to the server's X25519 key."""

    model_config = ConfigDict(extra="forbid")

    op_id: Annotated[str, Field(pattern=ID_PATTERN)]
    sealed: SealedBox


class FinalFlushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    envelopes: list[Envelope] = Field(default_factory=list, max_length=MAX_OPS_PER_PUSH)


class SealedChunk(AttachmentPart):
    """One chunk of a photo or form, as the laptop sealed it to the server's key when it
    was saved (agent/sealed_attachments.py); the fields in clear are its associated data."""

    sealed: SealedBox


# The sealed chunk's JSON: base64 of at most one chunk plus its tag, and the other fields.
SEALED_CHUNK_BODY_BYTES = ATTACHMENT_CHUNK_BYTES * 4 // 3 + 8192
SEALED_UPLOAD_PATH = "/v1/final-flush/attachments"

_OPERATION: TypeAdapter[Any] = TypeAdapter(Operation)


def _open_envelope(opener: sealing.Opener, device: Device, env: Envelope) -> Any | str:
    """The operation inside `env`, or why it is refused. The associated data binds the
    device and the op_id in clear: an envelope of another device, or relabelled,
    does not open."""
    try:
        payload = opener.open(env.sealed.model_dump(), sealing.envelope_aad(device.id,
                                                                                 env.op_id))
    except (InvalidTag, ValueError, KeyError, TypeError):
        return "the envelope does not open with the server key for this device"
    if not isinstance(payload, dict) or payload.get("device_id") != device.id:
        return "the envelope's operation belongs to another device"
    try:
        # Validated as the JSON it was, strictly, like a push: `"seq": "5"` or `"at": 0`
        # is refused here too (validate_python would coerce them).
        op = _OPERATION.validate_json(orjson.dumps(payload.get("op")), strict=True)
    except ValidationError as exc:
        return f"the envelope's operation is invalid: {exc.errors()[0]['msg']}"
    if op.op_id != env.op_id:
        return "the envelope's operation does not match its op_id"
    return op


def final_flush_envelopes(archive: Archive, opener: sealing.Opener, device: Device,
                          envelopes: list[Envelope]) -> tuple[list[OpResult], dict[str, Any]]:
    """Open each envelope; quarantine the operations (once per op_id, like a revoked
    device's push) and answer the ones that do not open as rejected."""
    opened = [_open_envelope(opener, device, env) for env in envelopes]
    seen: set[str] = set()
    ops = []
    for item in opened:
        if not isinstance(item, str) and item.op_id not in seen:
            seen.add(item.op_id)
            ops.append(item)
    results, order = archive.final_flush(device, ops)
    by_id = {r.op_id: r for r in results}
    out = [OpResult(op_id=env.op_id, status=OpStatus.rejected, entity_id="", reason=item)
           if isinstance(item, str) else by_id[item.op_id]
           for env, item in zip(envelopes, opened, strict=True)]
    return out, order


@router.post("/final-flush", response_model=FinalFlushResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(FinalFlushRequest))
async def final_flush(
    request: Request, signer: ResponseSigner, device: FlushingDevice, archive: ArchiveDep, clock: ClockDep,
    settings: SettingsDep, box_key: BoxKey,
) -> Response:
    """For a revoked device whose vault no longer opens: hand over its outbox as the
    envelopes it sealed to the server's key when each change was saved. Each opened
    operation is quarantined for review, once per op_id (a replay, or an op already
    pushed, is not duplicated); an envelope that does not open for this device is
    answered `rejected`. The answer carries the signed wipe order. Nothing in it
    can open the device's vault."""
    if device.state == "active":
        raise ApiError(409, "not_revoked", "an active device pushes its outbox with /v1/push")
    # Parsed like a push: the agent gzips large bodies, and the decompressed size is capped.
    raw = decode_body(request, await request.body(), settings.max_body_bytes)
    body = parse_json(FinalFlushRequest, raw)
    opener = sealing.Opener(box_key)
    results, order = await run_in_threadpool(final_flush_envelopes, archive, opener, device,
                                             body.envelopes)
    return signer.json({
        "results": [r.wire() for r in results],
        "server_time": iso(clock.now()), "wipe_order": signer.wipe_order(order),
    })


@router.post(SEALED_UPLOAD_PATH.removeprefix("/v1"), response_model=UploadState, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(SealedChunk))
async def final_flush_attachment(request: Request, signer: ResponseSigner, device: FlushingDevice,
                                 archive: ArchiveDep, box_key: BoxKey) -> Response:
    """For a revoked device whose vault no longer opens: one chunk of a photo or form its
    rep saved but never uploaded, as it was sealed to the server's key at save time. The
    server opens it and takes it as `/v1/attachments/upload` takes a chunk (resumable: a
    chunk at another offset than the bytes held is not written; the whole is hashed), so
    a quarantined visit naming the photo can be accepted. 400 `sealed_chunk_invalid` when
    the chunk does not open for this device, file and offset; 409 `not_revoked` for a
    device in good standing."""
    if device.state == "active":
        raise ApiError(409, "not_revoked",
                       "an active device uploads its attachments with /v1/attachments/upload")
    raw = decode_body(request, await request.body(), SEALED_CHUNK_BODY_BYTES)
    chunk = parse_json(SealedChunk, raw)
    aad = sealing.attachment_aad(device.id, chunk.sha256, chunk.size, chunk.content_type,
                                 chunk.offset)
    try:
        data = sealing.Opener(box_key).open_bytes(chunk.sealed.model_dump(), aad)
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise ApiError(400, "sealed_chunk_invalid", (
            "the sealed chunk does not open with the server key for this device, file and "
            "offset: it was changed, or sealed by another device")) from None
    if len(data) > ATTACHMENT_CHUNK_BYTES:
        raise ApiError(413, "body_too_large", f"a chunk is at most {ATTACHMENT_CHUNK_BYTES} bytes")
    state = await run_in_threadpool(archive.upload_attachment, device, chunk.sha256,
                                    chunk.size, chunk.content_type, chunk.offset, data)
    return signer.json(state)


@router.get("/wipe-order", response_model=WipeOrderResponse, responses=SIGNED_RESPONSE)
async def wipe_order(signer: ResponseSigner, device: FlushingDevice, archive: ArchiveDep) -> Response:
    """A revoked device's signed wipe order (409 for a device in good standing)."""
    if device.state == "active":
        raise ApiError(409, "not_revoked", "this device is not revoked")
    _, order = await run_in_threadpool(archive.final_flush, device, [])
    return signer.json({"wipe_order": signer.wipe_order(order)})


@router.post("/wipe-receipt", response_model=WipeReceiptResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(WipeReceipt))
async def wipe_receipt(
    signer: ResponseSigner, body: Annotated[WipeReceipt, json_body(WipeReceipt, flushing_device)],
    device: FlushingDevice, archive: ArchiveDep,
) -> Response:
    """Record the device's signed receipt: its own attestation that it destroyed its
    copy (not proof that no other copy exists). A receipt for an order this device was
    not given (an active device has none) is 409 `unknown_order`."""
    if body.device_id != device.id:
        raise ApiError(422, "invalid_request", "the receipt names another device")
    receipt = body.model_dump(exclude={"signature"})
    try:
        Ed25519PublicKey.from_public_bytes(device.sign_public_key).verify(
            signing.b64d(body.signature), signing.wipe_receipt_message(receipt))
    except (InvalidSignature, ValueError):
        raise ApiError(401, "bad_receipt_signature", "the receipt is not signed by this device") from None
    await run_in_threadpool(archive.record_wipe_receipt, device, {**receipt,
                                                                  "signature": body.signature})
    return signer.json({"recorded": True, "order_id": body.order_id})
