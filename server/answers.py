"""The shapes of answers that several route modules share (route modules do not import
each other): a record as the archive builds it, a listing's limit, visits waiting for a
person, a device as HR and managers see it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from schema.models import DeviceState

Limit = Annotated[int, Query(ge=1, le=5000, description="At most this many rows.")]


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
