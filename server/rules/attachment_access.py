"""Who may put and read an attachment: a device's resumable upload (size-capped, the
whole verified by its sha256 before it is stored), a rep's read (their own visits' and
their customers' history, so a successor reads the photos that came with the card),
a staff member's read of a visit they may read (visit.read, a manager's team)."""

from __future__ import annotations

from typing import Any

from schema.evidence import MAX_ATTACHMENT_BYTES

from ..archive.errors import ArchiveError, NotFound
from ..archive.store import Device, Store
from ..blobs import Blobs
from . import access, evidence_check, review


def check_upload(size: int, offset: int, length: int) -> None:
    if size > MAX_ATTACHMENT_BYTES:
        raise ArchiveError("attachment_too_large", (
            f"an attachment may be at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB "
            f"({size} bytes declared)"))
    if offset + length > size:
        raise ArchiveError("beyond_size", (
            f"bytes {offset}..{offset + length} go past the declared size {size}"))


def upload(store_read: Any, store_write: Any, blobs: Blobs, device: Device, sha256: str,
           size: int, content_type: str, offset: int, data: bytes, now: str) -> dict[str, Any]:
    """Take one chunk of a device's upload. Answers how much the server holds; a chunk
    at another offset than that is not written (the device resumes from `received`)."""
    check_upload(size, offset, len(data))
    with store_read() as s:
        row = s.attachment(sha256)
    if row is not None:
        return {"sha256": sha256, "received": int(row["size"]), "complete": True}
    if not blobs.has(sha256):
        received = blobs.append(sha256, device.id, offset, data) if data else \
            blobs.received(sha256, device.id)
        if received < size:
            return {"sha256": sha256, "received": received, "complete": False}
        blobs.finish(sha256, device.id)  # BlobMismatch: discarded, start again
    with store_write() as s:
        s.insert_attachment({"sha256": sha256, "size": size, "content_type": content_type,
                             "stored_at": now, "first_device_id": device.id})
    return {"sha256": sha256, "received": size, "complete": True}


def for_rep(s: Store, rep_id: str, sha256: str) -> dict[str, Any]:
    """The attachment's row, if the rep may read it (their visit's, or their customer's
    history); otherwise the same NotFound as for one that does not exist."""
    row = s.attachment(sha256)
    if row is None or not s.rep_may_read_attachment(sha256, rep_id):
        raise NotFound("unknown_attachment", f"no attachment {sha256[:12]} for you")
    return row


def for_staff(s: Store, by: str | None, visit_id: str, sha256: str) -> dict[str, Any]:
    """The attachment of a visit the staff member may read (visit.read, their team)."""
    visit = review.visit_or_404(s, visit_id)
    access.caller(s, by, "visit.read", visit["rep_id"])
    for ref in s.attachments_of_visits([visit_id]).get(visit_id, []):
        if ref["sha256"] == sha256:
            return ref
    raise NotFound("unknown_attachment", f"visit {visit_id} has no attachment {sha256[:12]}")


def evidence_for_staff(s: Store, by: str | None, visit_id: str) -> dict[str, Any]:
    visit = review.visit_or_404(s, visit_id)
    access.caller(s, by, "visit.read", visit["rep_id"])
    return {"visit_id": visit_id,
            "attachments": s.attachments_of_visits([visit_id]).get(visit_id, []),
            "evidence": evidence_check.with_verdicts(s, s.visit_evidence(visit_id))}
