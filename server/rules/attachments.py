"""Attachments and visit evidence: the rules the archive applies to them.

A visit op may carry the laptop's evidence (schema/evidence.py): the device's
signature over the revision's content, its attachments' sha256 and the laptop's time.
The server checks it against the key the device enrolled with; a bad signature is
refused (never stored as if the laptop had said it), and so is a visit naming an
attachment the archive has not received whole: the agent uploads attachments before
the visits that name them, so that refusal means an agent out of step, not a rep's
error. Accepted evidence is kept per revision (visit_evidence), so the archive shows
which laptop recorded what and when, even when the visit arrived days later. Who may
upload and read attachments: rules/attachment_access.py.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schema import evidence
from schema.signing import b64d

from ..archive.store import Device, Store

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
