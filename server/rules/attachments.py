"""Attachments and visit evidence: the rules the archive applies to them.

A visit op may carry the laptop's evidence (schema/evidence.py): the device's
signature over the revision's content, its attachments' sha256 and the laptop's time.
The server checks it against the key the device enrolled with; a bad signature is
refused (never stored as if the laptop had said it), and so is a visit naming an
attachment the archive has not received whole: the agent uploads attachments before
the visits that name them, so that refusal means an agent out of step, not a rep's
error. Accepted evidence is kept per revision (visit_evidence), so the archive shows
which laptop recorded what and when, even when the visit arrived days later.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schema import evidence
from schema.evidence import MAX_ATTACHMENT_BYTES
from schema.signing import b64d

from ..archive.errors import ArchiveError, NotFound
from ..archive.store import Device, Store
from ..blobs import Blobs
from . import access, review

BAD_SIGNATURE = ("the visit's device signature does not verify against this laptop's "
                 "enrolled key: the record was altered after it was saved; log it again")


def refusal(store: Store, device: Device, op: Any) -> str | None:
    """Why the archive refuses this visit op's evidence, or None (also None without
    evidence: from an agent older than visit evidence)."""
    proof = getattr(op, "evidence", None)
    if proof is None:
        return None
    shas = [a.sha256 for a in proof.attachments]
    message = evidence.message(device.id, op.kind.value, op.entity_id,
                               evidence.content_of(op.data), shas, proof.device_time)
    try:
        Ed25519PublicKey.from_public_bytes(device.sign_public_key).verify(
            b64d(proof.signature), message)
    except (InvalidSignature, ValueError):
        return BAD_SIGNATURE
    present = store.attachments_present(shas)
    for ref in proof.attachments:
        if ref.sha256 not in present:
            return (f"attachment {ref.name} ({ref.sha256[:12]}) has not reached the server: "
                    "the laptop uploads attachments before their visit; sync again")
    return None


def record(store: Store, device: Device, op: Any, row: dict[str, Any], now: str) -> None:
    """Keep the accepted revision's evidence and the attachments it names."""
    proof = getattr(op, "evidence", None)
    if proof is None:
        return
    store.insert_visit_evidence({
        "visit_id": row["id"], "rev": row["rev"], "device_id": device.id,
        "device_time": proof.device_time, "signature": proof.signature,
        "attachments": [a.sha256 for a in proof.attachments], "received_at": now})
    store.link_visit_attachments(row["id"], row["rev"],
                                 [a.model_dump() for a in proof.attachments])


def decorate(store: Store, visits: list[dict[str, Any]]) -> None:
    """Each pulled visit names its attachments (the laptop downloads their bytes)."""
    if not visits:
        return
    named = store.attachments_of_visits([v["id"] for v in visits])
    for visit in visits:
        visit["attachments"] = named.get(visit["id"], [])


# --- uploads and downloads --------------------------------------------------------


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
            "evidence": s.visit_evidence(visit_id)}
