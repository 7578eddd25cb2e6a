"""Attachments and visit evidence: the rules the archive applies to them.

A visit op may carry the laptop's evidence (schema/evidence.py): the device's
signature over the revision's content, its attachments' sha256 and the laptop's time.
At push the archive checks only what is cheap: the signature is 64 bytes of base64,
and every attachment it names has been received whole (the agent uploads attachments
before the visits that name them, so that refusal means an agent out of step, not a
rep's error). The Ed25519 verification itself (~0.2 ms, more than everything else a
pushed visit costs) runs after the push, in the background jobs
(rules/evidence_check.py): the push request is already signed by the same device key,
so checking later changes when a bad signature is seen, not whether it is. Evidence is
kept per revision (visit_evidence) with its verdict, so the archive shows which laptop
recorded what and when, even when the visit arrived days later. Who may upload and
read attachments: rules/attachment_access.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from schema import evidence
from schema.signing import b64d

from ..archive.store import Device, Store

BAD_SIGNATURE = ("the visit's device signature is not an Ed25519 signature (64 bytes of "
                 "base64): the laptop's software is damaged; reinstall the agent")


def refusal(store: Store, device: Device, op: Any) -> str | None:
    """Why the archive refuses this visit op's evidence, or None (also None without
    evidence: from an agent older than visit evidence)."""
    proof = getattr(op, "evidence", None)
    if proof is None:
        return None
    shas = [a.sha256 for a in proof.attachments]
    try:
        if len(b64d(proof.signature)) != 64:
            return BAD_SIGNATURE
    except ValueError:
        return BAD_SIGNATURE
    present = store.attachments_present(shas) if shas else set()
    for ref in proof.attachments:
        if ref.sha256 not in present:
            return (f"attachment {ref.name} ({ref.sha256[:12]}) has not reached the server: "
                    "the laptop uploads attachments before their visit; sync again")
    return None


def record(store: Store, device: Device, op: Any, row: dict[str, Any], now: str) -> None:
    """Keep the accepted revision's evidence, with the content it signs (checked later,
    rules/evidence_check.py), and the attachments it names."""
    proof = getattr(op, "evidence", None)
    if proof is None:
        return
    store.insert_visit_evidence({
        "visit_id": row["id"], "rev": row["rev"], "device_id": device.id,
        "device_time": proof.device_time, "signature": proof.signature,
        "attachments": [a.sha256 for a in proof.attachments], "received_at": now,
        "kind": op.kind.value,
        "content": orjson.dumps(evidence.content_of(op.data)).decode()})
    if proof.attachments:
        store.link_visit_attachments(row["id"], row["rev"],
                                     [a.model_dump() for a in proof.attachments])


def decorate(store: Store, visits: list[dict[str, Any]]) -> None:
    """Each pulled visit names its attachments (the laptop downloads their bytes)."""
    if not visits:
        return
    named = store.attachments_of_visits([v["id"] for v in visits])
    for visit in visits:
        visit["attachments"] = named.get(visit["id"], [])
