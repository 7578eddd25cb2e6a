"""Attachments (photos, signed forms): a device's resumable upload and download, signed
like every device route; a staff member's read of a visit's attachments and evidence.

An upload travels in chunks of at most CHUNK_BYTES (base64 in JSON, so the signed
request and the answer stay the device API's usual shape). The server answers how
many bytes it holds; a device resumes from there after a cut. The whole is hashed
before it is stored: bytes that are not their sha256 are discarded (400).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from schema.evidence import ATTACHMENT_CHUNK_BYTES, MAX_ATTACHMENT_BYTES
from schema.models import AttachmentPart, AttachmentRef, UploadState

from ..answers import attachment_response
from ..deps import (
    ArchiveDep,
    CurrentDevice,
    FlushingDevice,
    ResponseSigner,
    SettingsDep,
    decode_body,
    parse_json,
)
from ..errors import ApiError
from ..openapi import request_body
from ..rules.access import StaffMember
from ..signed import SIGNED_RESPONSE
from ..staff_auth import require

# No router-wide tag: the device routes are "attachments", the staff routes "staff" only
# (every /v1/staff route is listed under that one tag).
router = APIRouter()

CHUNK_BYTES = ATTACHMENT_CHUNK_BYTES
# A chunk's JSON: base64 is 4/3 of the bytes, plus the other fields.
UPLOAD_BODY_BYTES = CHUNK_BYTES * 4 // 3 + 4096
UPLOAD_PATH = "/v1/attachments/upload"
ShaPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="lowercase hex sha256")]


class UploadChunk(AttachmentPart):
    data: str = Field(max_length=CHUNK_BYTES * 4 // 3 + 4, description=(
        f"base64 of at most {CHUNK_BYTES} bytes; empty asks how much the server holds"))


class DownloadChunk(BaseModel):
    sha256: str
    size: int
    content_type: str
    offset: int
    data: str = Field(description="base64")
    more: bool


class Evidence(BaseModel):
    rev: int
    device_id: str
    device_time: str = Field(description="the laptop's clock when the revision was saved")
    signature: str
    attachments: list[str]
    received_at: str


class VisitEvidence(BaseModel):
    visit_id: str
    attachments: list[AttachmentRef]
    evidence: list[Evidence]


@router.post(UPLOAD_PATH, response_model=UploadState, responses=SIGNED_RESPONSE, tags=["attachments"],
             openapi_extra=request_body(UploadChunk))
async def upload(request: Request, signer: ResponseSigner, device: FlushingDevice,
                 archive: ArchiveDep, settings: SettingsDep) -> Response:
    """One chunk of an attachment at `offset` (at most 512 KiB). A chunk at any other
    offset than the bytes held is not written: the answer's `received` says where to
    resume. 400 `sha256_mismatch` when the complete upload does not hash to `sha256`
    (discarded: send it again from 0), `attachment_too_large` over 20 MB.

    Also served to a revoked (or wiped) device, like `/v1/push`: its final flush
    uploads the photos of its unsynced visits before pushing them to quarantine, so
    that accepting one later finds its attachments (docs/SECURITY.md, attachments)."""
    raw = decode_body(request, await request.body(), UPLOAD_BODY_BYTES)
    chunk = parse_json(UploadChunk, raw)
    try:
        data = base64.b64decode(chunk.data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_request", "data: not base64") from None
    if len(data) > CHUNK_BYTES:
        raise ApiError(413, "body_too_large", f"a chunk is at most {CHUNK_BYTES} bytes")
    state = await run_in_threadpool(archive.upload_attachment, device, chunk.sha256,
                                    chunk.size, chunk.content_type, chunk.offset, data)
    return signer.json(state)


@router.get("/v1/attachments/{sha256}", response_model=DownloadChunk, responses=SIGNED_RESPONSE,
            tags=["attachments"])
async def download(sha256: ShaPath, signer: ResponseSigner, device: CurrentDevice,
                   archive: ArchiveDep,
                   offset: Annotated[int, Query(ge=0, le=MAX_ATTACHMENT_BYTES)] = 0) -> Response:
    """Part of an attachment a visit of the rep's own or of their customer's history
    names (a successor reads it with the history); 404 otherwise."""
    row, data = await run_in_threadpool(archive.attachment_for_rep, device.rep_id, sha256,
                                        offset, CHUNK_BYTES)
    return signer.json({"sha256": sha256, "size": row["size"],
                        "content_type": row["content_type"], "offset": offset,
                        "data": base64.b64encode(data).decode(),
                        "more": offset + len(data) < int(row["size"])})


@router.get("/v1/staff/visits/{visit_id}/attachments", response_model=VisitEvidence,
            tags=["staff"])
async def staff_evidence(visit_id: Annotated[str, Path(max_length=64)],
                         who: Annotated[StaffMember, require("visit.read")],
                         archive: ArchiveDep) -> dict[str, Any]:
    """A visit's attachments and each revision's evidence: the laptop that signed it,
    its signature and the laptop's clock when it was saved."""
    return await run_in_threadpool(archive.visit_evidence, visit_id, who.name)


@router.get("/v1/staff/visits/{visit_id}/attachments/{sha256}", tags=["staff"],
            response_class=Response,
            responses={200: {"content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}},
                "description": "The attachment's bytes (images and PDF with their own type)"}})
async def staff_attachment(visit_id: Annotated[str, Path(max_length=64)], sha256: ShaPath,
                           who: Annotated[StaffMember, require("visit.read")],
                           archive: ArchiveDep) -> Response:
    """The bytes of one of a visit's attachments (images and PDF inline, anything else
    as a download)."""
    ref, data = await run_in_threadpool(archive.staff_attachment, visit_id, sha256, who.name)
    return attachment_response(ref, data)
