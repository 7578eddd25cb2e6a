"""The shapes of answers that several route modules share (route modules do not import
each other): a record as the archive builds it, a listing's limit, visits waiting for a
person, a device as HR and managers see it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from schema.models import DeviceState
from schema.web import SECURITY_HEADERS

Limit = Annotated[int, Query(ge=1, le=5000, description="At most this many rows.")]

# What a browser may show inline; anything else (SVG, HTML...) is a download.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp",
                          "application/pdf"})


def attachment_response(ref: dict[str, Any], data: bytes) -> Response:
    """An attachment's bytes for staff (the API and the console): images and PDF inline
    with their own type, anything else as a download; the stored name made safe for a
    header; the security headers, so even an inline file runs nothing."""
    kind = ref["content_type"] if ref["content_type"] in INLINE_TYPES else "application/octet-stream"
    disposition = "inline" if kind in INLINE_TYPES else "attachment"
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_"
                   for ch in ref["name"])[:100] or "attachment"
    return Response(data, media_type=kind, headers={
        **SECURITY_HEADERS, "content-disposition": f'{disposition}; filename="{safe}"'})


class Answer(BaseModel):
    """Built by the archive: a key added there is passed on, not filtered out."""

    model_config = ConfigDict(extra="allow")


class VisitRecord(Answer):
    """A visit as the archive holds it after the change."""

    id: str
    rev: int
    rep_id: str
    customer_id: str
    status: str
    review_comment: str
    reviewed_by: str | None
    reviewed_at: str | None
    callback: str | None


class WaitingVisit(Answer):
    """A visit in a review or call-back listing, with the names a person needs."""

    id: str
    rep_id: str
    rep_name: str
    customer_id: str
    customer_name: str
    card_no: str
    phone: str
    decision_maker: str
    started_at: str
    purpose: str
    summary: str
    status: str
    callback: str | None
    callback_reason: str


class WaitingVisits(BaseModel):
    visits: list[WaitingVisit]


class ReportDevice(Answer):
    id: str
    rep_id: str
    rep_name: str
    name: str
    state: DeviceState
    enrolled_at: str
    last_seen_at: str | None
    last_seq: int | None
    revoked_at: str | None
    lease_epoch: int | None
    lease_issued_at: str | None
    block_at: str | None
    wipe_at: str | None
    wipe_ordered_at: str | None
    wipe_receipt_at: str | None
