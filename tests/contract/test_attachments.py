"""Attachments and visit evidence on both backends: the rows the store keeps, a
chunked upload verified by sha256 into the blob folder, a signed visit accepted with
its attachments (and pulled with them), a malformed signature or a missing attachment
refused with the reason, and a signature that does not verify found by the check after
the push (marked, audited, shown to staff)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schema import evidence
from schema.models import VisitCreateOp
from schema.signing import b64e
from server.archive.errors import ArchiveError
from server.archive.store import Device
from server.rules.attachments import BAD_SIGNATURE

from .kit import Ctx, at, ops, visit_create

PHOTO = b"\xff\xd8 a photo of the signed order form " * 40


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _real_device(ctx: Ctx, rep_id: str) -> tuple[Device, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    code, _ = ctx.archive.create_enroll_code(rep_id, timedelta(hours=1))
    device = ctx.archive.enroll(code, "laptop", _raw(key), _raw(X25519PrivateKey.generate()))
    return device, key


def _signed(device: Device, key: Ed25519PrivateKey, wire: dict[str, object],
            refs: list[dict[str, object]]) -> dict[str, object]:
    parsed = ops(wire)[0]
    assert isinstance(parsed, VisitCreateOp)
    message = evidence.message(device.id, "visit.create", parsed.entity_id,
                               evidence.content_of(parsed.data),
                               [str(r["sha256"]) for r in refs], at())
    return {**wire, "evidence": {"device_time": at(), "attachments": refs,
                                 "signature": b64e(key.sign(message))}}


def test_store_rows_of_attachments_and_evidence(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    wire = visit_create(cust["id"])
    (accepted,) = ctx.push(ctx.a, wire)
    assert accepted.status == "accepted"
    visit_id = str(wire["entity_id"])
    sha = hashlib.sha256(PHOTO).hexdigest()
    row = {"sha256": sha, "size": len(PHOTO), "content_type": "image/jpeg",
           "stored_at": at(), "first_device_id": ctx.a.id}
    with ctx.stores.write() as s:
        s.insert_attachment(row)
        s.insert_attachment({**row, "first_device_id": ctx.b.id})  # the same bytes again
        s.link_visit_attachments(visit_id, 1, [{"sha256": sha, "name": "订单.jpg"}])
        s.link_visit_attachments(visit_id, 2, [{"sha256": sha, "name": "renamed.jpg"}])
        s.insert_visit_evidence({"visit_id": visit_id, "rev": 1, "device_id": ctx.a.id,
                                 "device_time": at(), "signature": "c2ln", "attachments": [sha],
                                 "received_at": at(), "kind": "visit.create", "content": "{}"})
    with ctx.stores.read() as s:
        assert s.attachment(sha) == row
        assert s.attachment("0" * 64) is None
        assert s.attachments_present([sha, "0" * 64]) == {sha}
        assert s.attachments_of_visits([visit_id, "nope"]) == {visit_id: [
            {"sha256": sha, "name": "订单.jpg", "size": len(PHOTO), "content_type": "image/jpeg"}]}
        assert s.rep_may_read_attachment(sha, ctx.a.rep_id)
        assert not s.rep_may_read_attachment(sha, ctx.b.rep_id)
        (proof,) = s.visit_evidence(visit_id)
        assert (proof["rev"], proof["device_id"], proof["attachments"]) == (1, ctx.a.id, [sha])
        (unchecked,) = s.unchecked_evidence(10)
        assert (unchecked["visit_id"], unchecked["sign_public_key"]) == (
            visit_id, ctx.a.sign_public_key)
    with ctx.stores.write() as s:
        s.set_evidence_verdicts([(0, visit_id, 1)])
    with ctx.stores.read() as s:
        assert s.unchecked_evidence(10) == [] and s.count_unchecked_evidence() == 0
        assert s.attachment_totals() == {"attachments": 1, "bytes": len(PHOTO)}


def test_a_signed_visit_with_an_uploaded_photo_is_accepted_and_pulled_with_it(ctx: Ctx) -> None:
    device, key = _real_device(ctx, ctx.a.rep_id)
    cust = ctx.customer(ctx.a)
    sha = hashlib.sha256(PHOTO).hexdigest()
    half = len(PHOTO) // 2
    first = ctx.archive.upload_attachment(device, sha, len(PHOTO), "image/jpeg", 0, PHOTO[:half])
    assert first == {"sha256": sha, "received": half, "complete": False}
    # a chunk at the wrong offset is not written: the answer says where to resume
    assert ctx.archive.upload_attachment(device, sha, len(PHOTO), "image/jpeg", 7,
                                         PHOTO[7:])["received"] == half
    done = ctx.archive.upload_attachment(device, sha, len(PHOTO), "image/jpeg", half,
                                         PHOTO[half:])
    assert done == {"sha256": sha, "received": len(PHOTO), "complete": True}
    ref = {"sha256": sha, "name": "订单.jpg", "size": len(PHOTO), "content_type": "image/jpeg"}

    good = _signed(device, key, visit_create(cust["id"]), [ref])
    tampered = _signed(device, key, visit_create(cust["id"]), [])
    tampered["data"] = {**tampered["data"], "summary": "changed on the way"}  # type: ignore[dict-item]
    malformed = _signed(device, key, visit_create(cust["id"]), [])
    malformed["evidence"] = {**malformed["evidence"], "signature": b64e(b"x" * 63)}  # type: ignore[dict-item]
    ghost = {**ref, "sha256": "ab" * 32, "name": "ghost.jpg"}
    missing = _signed(device, key, visit_create(cust["id"]), [ghost])
    accepted, altered, bad, unsent = ctx.push(device, good, tampered, malformed, missing)
    assert accepted.status == "accepted"
    # Verified after the push, not in it: the visit is kept, the verdict comes later.
    assert altered.status == "accepted"
    assert (bad.status, bad.reason) == ("rejected", BAD_SIGNATURE)
    assert unsent.status == "rejected" and "ghost.jpg" in (unsent.reason or "")

    visit_id, altered_id = str(good["entity_id"]), str(tampered["entity_id"])
    # Read before the check runs: verified as it is read.
    proof = ctx.archive.visit_evidence(visit_id)
    assert proof["attachments"] == [ref]
    assert [(e["rev"], e["device_id"], e["device_time"], e["verified"])
            for e in proof["evidence"]] == [(1, device.id, at(), True)]
    assert [e["verified"] for e in ctx.archive.visit_evidence(altered_id)["evidence"]] == [False]
    with ctx.stores.read() as s:
        assert s.count_unchecked_evidence() == 2
    assert ctx.archive.check_evidence() == {"checked": 2, "failed": 1, "left": 0}
    assert ctx.archive.check_evidence() == {"checked": 0, "failed": 0, "left": 0}
    with ctx.stores.read() as s:
        assert s.unchecked_evidence(10) == []
        assert [(e["visit_id"], e["verified"]) for e in s.visit_evidence(altered_id)] == [
            (altered_id, 0)]
        flagged = [e for e in s.audit_all() if e["action"] == "evidence.invalid"]
    assert [(e["subject"], e["actor"]) for e in flagged] == [(altered_id, "server:evidence")]
    (pulled,) = [v for v in ctx.pull_all(ctx.a.rep_id).visits if v["id"] == visit_id]
    assert pulled["attachments"] == [ref]
    row, data = ctx.archive.attachment_for_rep(ctx.a.rep_id, sha)
    assert (row["size"], data) == (len(PHOTO), PHOTO)
    with pytest.raises(ArchiveError):
        ctx.archive.attachment_for_rep(ctx.b.rep_id, sha)  # not their customer's
    totals = ctx.archive.attachment_totals()
    assert (totals["attachments"], totals["blob_files"], totals["blob_bytes"]) == (
        1, 1, len(PHOTO))


def test_bytes_that_do_not_hash_to_their_name_are_discarded(ctx: Ctx) -> None:
    sha = hashlib.sha256(b"what the laptop meant").hexdigest()
    with pytest.raises(ArchiveError) as refused:
        ctx.archive.upload_attachment(ctx.a, sha, 5, "image/png", 0, b"other")
    assert refused.value.code == "sha256_mismatch"
    assert ctx.archive.upload_attachment(ctx.a, sha, 5, "image/png", 0, b"") == {
        "sha256": sha, "received": 0, "complete": False}
    with pytest.raises(ArchiveError) as big:
        ctx.archive.upload_attachment(ctx.a, sha, evidence.MAX_ATTACHMENT_BYTES + 1,
                                      "image/png", 0, b"")
    assert big.value.code == "attachment_too_large"
