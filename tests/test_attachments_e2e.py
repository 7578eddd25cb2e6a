"""Attachments and visit evidence end to end: a real `fieldvault-server serve` process,
real SQLCipher vaults, the real `fieldvault` CLI.

The inbox takes dropped files into the vault and removes their plaintext, refusing
links, FIFOs and files over the limit; a visit logged with a photo syncs with it (the
server's blob has the same sha256, the device's signature verifies); an upload cut off
resumes where the server stopped; bytes that are not their sha256, a tampered signature
and a visit naming an attachment the server lacks are refused; the customer's
successor reads the photo with the history; the old owner's copy goes with the card.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import attachment_sync, attachments, sealed_attachments, service, wipe
from agent.home import AgentConfig
from agent.sync import open_transport
from agent.transport import ServerRefused
from schema import evidence
from schema.models import CustomerCreate, VisitCreate, VisitCreateOp
from schema.signing import b64d, b64e
from server.archive.errors import NotFound
from server.rules import Archive, init_archive
from server.rules.attachments import BAD_SIGNATURE

from . import harness
from .harness import ServerProcess, agent_cli, open_store, server_cli

pytestmark = pytest.mark.slow

PHOTO = b"\xff\xd8\xff\xe0 FIELDVAULT-PLAINTEXT-PHOTO " + os.urandom(3000)


@dataclass
class World:
    server: ServerProcess
    data: Path
    archive: Archive
    rep: str
    successor: str
    home: Path
    home_b: Path
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("attach")
    data = root / "srv"
    archive = init_archive(data)
    archive.add_rep("王建国")
    rep = archive.add_rep("李伟", manager="王建国")["id"]
    successor = archive.add_rep("张敏", manager="王建国")["id"]
    archive.add_staff("wang", "manager", "王建国")
    archive.add_staff("vera", "verifier")
    tokens = {u: archive.create_staff_token(u) for u in ("wang", "vera")}
    server = ServerProcess(data).start()
    try:
        harness.lib_enroll(data, root / "a", server.url, rep)
        harness.lib_enroll(data, root / "b", server.url, successor)
        yield World(server, data, archive, rep, successor, root / "a", root / "b", tokens)
    finally:
        server.stop()


def _customer(world: World, name: str) -> dict[str, object]:
    row = world.archive.add_customer(CustomerCreate(name=name), world.rep)
    agent_cli(world.home, "sync")
    return row


def _blob(data: Path, sha: str) -> Path:
    return data / "blobs" / sha[:2] / sha


def _no_plaintext_under(home: Path, marker: bytes) -> None:
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert marker not in path.read_bytes(), path


def test_inbox_takes_files_dedupes_and_refuses_links_fifos_and_huge_files(
        world: World, tmp_path: Path) -> None:
    inbox = world.home / "inbox"
    agent_cli(world.home, "inbox", "scan")  # makes the folder
    assert (inbox.stat().st_mode & 0o777) == 0o700
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the inbox")
    (inbox / "photo.jpg").write_bytes(PHOTO)
    (inbox / "same-photo.jpg").write_bytes(PHOTO)
    (inbox / "link.jpg").symlink_to(secret)
    os.link(secret, inbox / "hard.jpg")
    os.mkfifo(inbox / "pipe.jpg")
    with (inbox / "huge.tif").open("wb") as fh:
        fh.truncate(evidence.MAX_ATTACHMENT_BYTES + 1)

    result = agent_cli(world.home, "inbox", "scan")
    sha = hashlib.sha256(PHOTO).hexdigest()
    assert sorted(r["name"] for r in result["added"]) == ["photo.jpg", "same-photo.jpg"]
    assert {r["sha256"] for r in result["added"]} == {sha}
    reasons = {r["name"]: r["reason"] for r in result["refused"]}
    assert "symbolic link" in reasons["link.jpg"]
    assert "hard links" in reasons["hard.jpg"]
    assert "not a regular file" in reasons["pipe.jpg"]
    assert "over the 20 MB limit" in reasons["huge.tif"]
    # plaintext gone, refused entries left alone, their targets untouched
    assert sorted(p.name for p in inbox.iterdir()) == ["hard.jpg", "huge.tif", "link.jpg",
                                                       "pipe.jpg"]
    assert secret.read_bytes() == b"not for the inbox"
    listed = agent_cli(world.home, "attachments")
    assert [(r["sha256"], r["size"], r["content_type"]) for r in listed] == [
        (sha, len(PHOTO), "image/jpeg")]
    _no_plaintext_under(world.home, b"FIELDVAULT-PLAINTEXT-PHOTO")
    for name in ("hard.jpg", "huge.tif", "link.jpg", "pipe.jpg"):
        (inbox / name).unlink()


def test_a_file_over_the_limit_is_refused_with_the_limit_named(world: World,
                                                                tmp_path: Path) -> None:
    cust = _customer(world, "超大附件有限公司")
    big = tmp_path / "scan.pdf"
    with big.open("wb") as fh:
        fh.truncate(evidence.MAX_ATTACHMENT_BYTES + 1)
    proc = agent_cli(world.home, "visit", "log", "--customer", str(cust["card_no"]),
                     "--purpose", "service", "--summary", "送合同", "--attach", str(big),
                     check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: scan.pdf is 20.0 MB, over the 20 MB limit for one attachment: "
        "send a smaller photo or scan"]


def test_a_visit_with_a_photo_syncs_with_it_and_the_laptops_signature(
        world: World, tmp_path: Path) -> None:
    cust = _customer(world, "杭州青禾食品有限公司")
    form = tmp_path / "signed-form.pdf"
    form.write_bytes(b"%PDF-1.4 signed order form " + os.urandom(500))
    sha_photo = hashlib.sha256(PHOTO).hexdigest()
    visit = agent_cli(world.home, "visit", "log", "--customer", str(cust["card_no"]),
                      "--purpose", "order", "--summary", "签订年度订单",
                      "--attach", str(form), "--attach-id", sha_photo[:10])
    sha_form = hashlib.sha256(form.read_bytes()).hexdigest()
    assert {a["sha256"] for a in visit["attachments"]} == {sha_photo, sha_form}
    assert agent_cli(world.home, "attachments") == []  # the inbox photo is attached now
    # Each also sealed to the server when saved (what a revoked laptop whose vault no
    # longer opens hands over), until the server confirms it.
    assert {sha_photo, sha_form} <= set(sealed_attachments.stored(world.home))

    agent_cli(world.home, "sync")
    assert not {sha_photo, sha_form} & set(sealed_attachments.stored(world.home))
    for sha, raw in ((sha_photo, PHOTO), (sha_form, form.read_bytes())):
        stored = _blob(world.data, sha)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
        assert stored.read_bytes() == raw
        assert (stored.stat().st_mode & 0o777) == 0o600

    # the archive keeps the signature and the laptop's time; it verifies with the key
    # the device enrolled with, over the content the archive holds
    proof = world.archive.visit_evidence(visit["id"])
    (rev1,) = proof["evidence"]
    device = world.archive.get_device(rev1["device_id"])
    assert device is not None and device.rep_id == world.rep
    assert sorted(rev1["attachments"]) == sorted([sha_photo, sha_form])
    content = evidence.content_of(VisitCreate.model_validate(
        {k: visit[k] for k in VisitCreate.model_fields}))
    Ed25519PublicKey.from_public_bytes(device.sign_public_key).verify(
        b64d(rev1["signature"]), evidence.message(device.id, "visit.create", visit["id"],
                                                  content, rev1["attachments"],
                                                  rev1["device_time"]))
    assert rev1["device_time"] == visit["created_at"]

    # staff read it (their team), the bytes as stored; a verifier may read visits too
    with httpx.Client(base_url=world.server.url, headers={
            "Authorization": f"Bearer {world.tokens['wang']}"}) as api:
        listing = api.get(f"/v1/staff/visits/{visit['id']}/attachments").json()
        assert {a["sha256"] for a in listing["attachments"]} == {sha_photo, sha_form}
        got = api.get(f"/v1/staff/visits/{visit['id']}/attachments/{sha_form}")
        assert got.status_code == 200 and got.content == form.read_bytes()
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-security-policy"]
        missing = api.get(f"/v1/staff/visits/{visit['id']}/attachments/{'0' * 64}")
        assert missing.status_code == 404
    assert httpx.get(f"{world.server.url}/v1/staff/visits/{visit['id']}/attachments/"
                     f"{sha_form}").status_code == 401

    status = server_cli(world.data, "backup", "status", check=False)
    totals = (status if isinstance(status, dict) else orjson.loads(status.stdout))["attachments"]
    assert (totals["attachments"], totals["blob_files"]) == (2, 2)
    assert totals["bytes"] == totals["blob_bytes"] == len(PHOTO) + form.stat().st_size


def test_a_cut_off_upload_resumes_where_the_server_stopped(world: World) -> None:
    cust = _customer(world, "断点续传科技")
    big = os.urandom(attachment_sync.CHUNK_BYTES * 2 + 1234)
    config = AgentConfig.load(world.home)
    assert config is not None
    transport = open_transport(world.home, config)
    try:
        with open_store(world.home) as store:
            ref = attachments.add_bytes(store, big, "scan.tif")
            store.log_visit(VisitCreate.model_validate({
                "customer_id": cust["id"], "purpose": "service", "summary": "扫描件",
                "started_at": store.clock.now()}), [ref["sha256"]])
            first = attachment_sync.upload(store, transport, max_chunks=1)
            assert (first.uploaded, first.sent_bytes) == (0, attachment_sync.CHUNK_BYTES)
            assert not _blob(world.data, ref["sha256"]).exists()
            rest = attachment_sync.upload(store, transport)
            assert (rest.uploaded, rest.sent_bytes) == (1, len(big) - attachment_sync.CHUNK_BYTES)
    finally:
        transport.close()
    report = harness.lib_sync(world.home)
    assert report.results == {"accepted": 1}
    assert _blob(world.data, ref["sha256"]).read_bytes() == big


def test_bytes_that_are_not_their_sha256_are_discarded(world: World) -> None:
    config = AgentConfig.load(world.home)
    assert config is not None
    transport = open_transport(world.home, config)
    claimed = hashlib.sha256(b"the real photo").hexdigest()
    try:
        with pytest.raises(ServerRefused) as refused:
            transport.request("POST", "/v1/attachments/upload", payload=orjson.dumps({
                "sha256": claimed, "size": 9, "content_type": "image/jpeg", "offset": 0,
                "data": base64.b64encode(b"other one").decode()}))
        assert (refused.value.status, refused.value.code) == (400, "sha256_mismatch")
        assert not _blob(world.data, claimed).exists()
        assert not list((world.data / "blobs" / "partial").glob(f"{claimed}*"))
    finally:
        transport.close()


def test_a_tampered_signature_is_flagged_and_a_missing_attachment_refused(world: World) -> None:
    """The push checks what is cheap (a well-formed signature, the attachments all
    received); the signature itself is verified after the push (rules/evidence_check.py),
    and one that does not verify is marked and audited, the visit kept."""
    cust = _customer(world, "篡改检测有限公司")
    config = AgentConfig.load(world.home)
    assert config is not None
    with open_store(world.home) as store:
        store.log_visit(VisitCreate.model_validate({
            "customer_id": cust["id"], "purpose": "service", "summary": "原始记录",
            "started_at": store.clock.now()}))
        (op,) = [orjson.loads(orjson.dumps(o)) for o in store.pending_ops(10)]
        key = store.evidence_key
        assert key is not None
    transport = open_transport(world.home, config)
    try:
        # the laptop's own op, its summary changed on the way (fresh ids: the real one
        # still goes up at the next sync, untouched)
        altered_id = harness.new_id()
        tampered = {**op, "op_id": harness.new_id(), "entity_id": altered_id,
                    "data": {**op["data"], "summary": "改过的记录"}}
        malformed = {**op, "op_id": harness.new_id(), "entity_id": harness.new_id(),
                     "seq": op["seq"] + 2,
                     "evidence": {**op["evidence"], "signature": b64e(b"\0" * 63)}}
        # signed properly, but naming a photo the server never received
        ghost = {"sha256": "ab" * 32, "name": "ghost.jpg", "size": 10,
                 "content_type": "image/jpeg"}
        other_id = harness.new_id()
        parsed = VisitCreateOp.model_validate({**op, "op_id": harness.new_id(),
                                               "entity_id": other_id, "evidence": None})
        message = evidence.message(config.device_id, "visit.create", other_id,
                                   evidence.content_of(parsed.data), [ghost["sha256"]], op["at"])
        unsent = {**op, "op_id": parsed.op_id, "entity_id": other_id, "seq": op["seq"] + 1,
                  "evidence": {"device_time": op["at"], "attachments": [ghost],
                               "signature": b64e(key.sign(message))}}
        answer = transport.request("POST", "/v1/push", payload=orjson.dumps(
            {"ops": [tampered, unsent, malformed]}))
    finally:
        transport.close()
    altered, missing, bad = answer["results"]
    assert altered["status"] == "accepted"
    assert (bad["status"], bad["reason"]) == ("rejected", BAD_SIGNATURE)
    assert missing["status"] == "rejected"
    assert "ghost.jpg" in missing["reason"] and "has not reached the server" in missing["reason"]
    for visit_id in (op["entity_id"], other_id, malformed["entity_id"]):
        with pytest.raises(NotFound):
            world.archive.get_visit(visit_id)
    assert harness.lib_sync(world.home).results == {"accepted": 1}  # the real one
    checked = world.archive.check_evidence()
    assert (checked["failed"], checked["left"]) == (1, 0)
    verdicts = {vid: [e["verified"] for e in world.archive.visit_evidence(vid)["evidence"]]
                for vid in (altered_id, op["entity_id"])}
    assert verdicts == {altered_id: [False], op["entity_id"]: [True]}
    flagged = [e for e in world.archive.audit_entries() if e["action"] == "evidence.invalid"]
    assert [e["subject"] for e in flagged] == [altered_id]


def test_the_successor_reads_the_photo_with_the_history_and_the_old_copy_goes(
        world: World) -> None:
    cust = _customer(world, "交接客户有限公司")
    photo = b"\x89PNG handover photo " + os.urandom(800)
    sha = hashlib.sha256(photo).hexdigest()
    with open_store(world.home) as store:
        attachments.add_bytes(store, photo, "门头.png")
        store.log_visit(VisitCreate.model_validate({
            "customer_id": cust["id"], "purpose": "service", "summary": "门头照片",
            "started_at": store.clock.now()}), [sha])
    harness.lib_sync(world.home)
    world.archive.assign(str(cust["id"]), "张敏", "territory change", "admin")

    report = harness.lib_sync(world.home_b)
    assert report.pulled_visits >= 1
    with open_store(world.home_b) as store:
        ref, data = attachments.read(store, sha)
        assert (ref["name"], data) == ("门头.png", photo)
        (visit,) = store.list_visits(str(cust["id"]))
        assert [a["sha256"] for a in attachments.of_visit(store.conn, visit["id"])] == [sha]
    saved = world.home_b.parent / "saved-photo.png"
    agent_cli(world.home_b, "attachments", "--save", sha[:10], "--out", str(saved))
    assert saved.read_bytes() == photo and (saved.stat().st_mode & 0o777) == 0o600

    harness.lib_sync(world.home)  # the card leaves the old owner's laptop, photo and all
    with open_store(world.home) as store, pytest.raises(attachments.StoreError):
        attachments.read(store, sha)


def test_a_wipe_removes_the_inbox_without_following_links(world: World, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me")
    (home / "inbox" / "left.jpg").write_bytes(b"FIELDVAULT-PLAINTEXT-LEFT")
    (home / "inbox" / "link").symlink_to(outside)
    (home / "vault.db").write_bytes(b"x" * 100)
    removed = wipe.destroy_vault(home)
    assert set(removed) == {"vault.db", "inbox"}
    assert not (home / "inbox").exists() and outside.read_bytes() == b"keep me"


def test_a_revoked_laptops_final_flush_uploads_its_photo_before_the_wipe(
        world: World, tmp_path: Path) -> None:
    """The photo of a visit logged offline by a rep who leaves meanwhile: the final flush
    uploads it before the visit goes to quarantine, then wipes; accepting the held visit
    later applies it with its photo and evidence (the laptop's copy is gone by then)."""
    leaver = world.archive.add_rep("赵离职", manager="王建国")["id"]
    world.archive.add_staff("root", "admin")
    home = tmp_path / "leaver"
    harness.lib_enroll(world.data, home, world.server.url, leaver)
    cust = world.archive.add_customer(CustomerCreate(name="离职前拜访有限公司"), leaver)
    agent_cli(home, "sync")
    photo = tmp_path / "last-visit.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 LAST-VISIT-PHOTO " + os.urandom(2000))
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    # Offline: logging touches only the vault.
    visit = agent_cli(home, "visit", "log", "--customer", str(cust["card_no"]),
                      "--purpose", "service", "--summary", "离职前最后一次拜访，拍了货架照片",
                      "--attach", str(photo))
    assert [a["sha256"] for a in visit["attachments"]] == [sha]
    server_cli(world.data, "revoke", "赵离职", "--reason", "resigned",
               "--reassign-to", "manager")

    assert agent_cli(home, "sync", check=False).returncode == 3  # flushed and wiped
    assert _blob(world.data, sha).read_bytes() == photo.read_bytes()
    assert not (home / "vault.db").exists()
    (held,) = [h for h in server_cli(world.data, "quarantine")
               if h["entity_id"] == visit["id"]]
    assert "final flush" in held["reason"]
    accepted = server_cli(world.data, "quarantine", "accept", str(held["id"]), "--by", "root")
    assert accepted["decision"] == "accepted"

    with httpx.Client(base_url=world.server.url, headers={
            "Authorization": f"Bearer {world.tokens['wang']}"}) as api:
        listing = api.get(f"/v1/staff/visits/{visit['id']}/attachments").json()
        assert [a["sha256"] for a in listing["attachments"]] == [sha]
        (rev1,) = listing["evidence"]
        assert rev1["attachments"] == [sha] and rev1["device_time"] == visit["created_at"]
        got = api.get(f"/v1/staff/visits/{visit['id']}/attachments/{sha}")
        assert got.status_code == 200 and got.content == photo.read_bytes()


def test_the_final_flush_keeps_the_vault_while_a_photo_is_not_up(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the server not take a revoked laptop's photo (an older server refused
    revoked devices' uploads), the visit is still handed over but the wipe waits: the
    vault keeps the only copy of the photo, and the next sync uploads it, then wipes."""
    leaver = world.archive.add_rep("钱离职", manager="王建国")["id"]
    home = tmp_path / "leaver"
    harness.lib_enroll(world.data, home, world.server.url, leaver)
    cust = world.archive.add_customer(CustomerCreate(name="照片未传有限公司"), leaver)
    agent_cli(home, "sync")
    photo = tmp_path / "kept.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 KEPT-PHOTO " + os.urandom(2000))
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    agent_cli(home, "visit", "log", "--customer", str(cust["card_no"]), "--purpose",
              "service", "--summary", "照片还没上传", "--attach", str(photo))
    world.archive.revoke(leaver, "resigned", "manager")

    def refused(*_: object, **__: object) -> None:
        raise ServerRefused(403, "device_revoked", "this device is no longer allowed")

    monkeypatch.setattr(attachment_sync, "_post", refused)
    config = AgentConfig.load(home)
    assert config is not None
    with pytest.raises(service.SyncFailed, match="attachments_not_uploaded"):
        service.sync(home, config)  # what `fieldvault sync` does, in this process
    assert (home / "vault.db").exists() and not _blob(world.data, sha).exists()
    monkeypatch.undo()
    assert agent_cli(home, "sync", check=False).returncode == 3
    assert _blob(world.data, sha).read_bytes() == photo.read_bytes()
    assert not (home / "vault.db").exists()
