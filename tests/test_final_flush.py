"""The final flush of a revoked laptop without a key (issue 8, finding 2).

The server must never give a revoked device anything that opens its vault, yet the
laptop's unsynced work must still reach the archive. So every outbox operation is
also sealed, when it is saved, to the server's X25519 key (`outbox.sealed`); a
revoked laptop whose vault no longer opens hands those envelopes over on
`POST /v1/final-flush`, gets its wipe order and wipes.

Tried as an attacker would: a copy of the agent home taken before the revocation,
past its block deadline, calls every route the live server publishes (and the old
`/v1/flush-key`), and nothing in any answer unwraps the vault key.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import shutil
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agent import attachments, envelopes, keystore, sealed_attachments, wipe
from agent import sync as sync_mod
from agent.enroll import enroll
from agent.home import KEYRING_FILE, AgentConfig
from agent.keystore import KeyError_, VaultBlocked
from agent.store import Store, StoreError, open_vault
from agent.transport import GZIP_MIN_BYTES
from schema import sealing
from schema.clock import iso, parse_iso
from schema.enums import OpKind
from schema.evidence import ATTACHMENT_CHUNK_BYTES as CHUNK
from schema.models import CustomerCreate, CustomerPatch, VisitCreate
from schema.signing import b64e
from server.keys import BOX_KEY_FILE

from . import harness
from .harness import (
    AGENT,
    Backend,
    SignedDevice,
    ThreadedServer,
    assert_json_error,
    run,
    server_cli,
    visit_create,
)

OFFLINE_NOTES = ["离职前的最后拜访 Quince tender", "Offline: Ocelot Freight wants 12% off"]
UNAUTHENTICATED = {"/healthz", "/metrics", "/v1/enroll"}


def log(home: Path, customer: str, notes: list[str]) -> list[str]:
    with harness.open_store(home) as store:
        return [store.log_visit(VisitCreate(customer_id=customer, purpose="service", summary=n,
                                            started_at=datetime.now(UTC)))["id"] for n in notes]


def pending_op_ids(home: Path) -> list[str]:
    with harness.open_store(home) as store:
        return [op["op_id"] for op in store.pending_ops(1000)]


def keyring(home: Path) -> dict[str, Any]:
    return orjson.loads((home / KEYRING_FILE).read_bytes())  # type: ignore[no-any-return]


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere in a JSON value (keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def candidate_bytes(bodies: list[bytes], box: Any, device_id: str) -> set[bytes]:
    """Every byte string an attacker could pull out of the answers: raw strings, their
    base64 decodings, and whatever opens with the device's own box key."""
    found: set[bytes] = set()
    queue: list[Any] = []
    for body in bodies:
        found.add(body)
        try:
            queue.append(orjson.loads(body))
        except orjson.JSONDecodeError:
            continue
    for _ in range(1000):  # bounded: opened payloads are scanned in turn
        if not queue:
            break
        doc = queue.pop()
        for text in strings(doc):
            found.add(text.encode())
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    found.add(decode(text + "=" * (-len(text) % 4)))
                except (binascii.Error, ValueError):
                    pass
        sealed = [d for d in _dicts(doc) if "ephemeral_public_key" in d]
        for item in sealed:
            try:
                queue.append(sealing.open_sealed(box, item, device_id.encode()))
            except Exception:  # noqa: BLE001 - anything that does not open is no key
                continue
    return found


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _dicts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dicts(v)


def opens_vault(home: Path, ring: dict[str, Any], device_id: str, candidate: bytes) -> bool:
    """Does `candidate` unwrap the DEK as a lease secret, or open the vault as the DEK?"""
    try:
        keystore._unwrap(ring, candidate, device_id, None)
        return True
    except KeyError_:
        pass
    if len(candidate) != 32:
        return False
    try:
        open_vault(home / "vault.db", candidate).close()
        return True
    except StoreError:
        return False


# --- the attacker's copy and the real laptop ---------------------------------------


@pytest.mark.slow
def test_a_copy_of_a_revoked_laptop_gets_nothing_that_opens_its_vault_and_the_laptop_flushes_once(
        backend: Backend, tmp_path: Path) -> None:
    data = backend.data
    arch = backend.archive()
    leaver = arch.add_rep("Ren Leaver")["id"]
    customers = [arch.add_customer(CustomerCreate(name=f"Umber Heron {i} 公司"), leaver)["id"]
                 for i in range(2)]
    server = backend.server(replica="none").start()
    assert stat.S_IMODE((data / BOX_KEY_FILE).stat().st_mode) == 0o600
    # A fresh connection per request: this test probes every route in turn with pauses
    # between them (decrypting, searching), and a kept-alive connection the server closes
    # (uvicorn's 5 s idle limit) just as the next request goes out is reset mid-request.
    client = httpx.Client(base_url=server.url, timeout=30,
                          limits=httpx.Limits(max_keepalive_connections=0))
    try:
        home = tmp_path / "laptop"
        config = harness.lib_enroll(data, home, server.url, leaver)
        harness.lib_sync(home)
        log(home, customers[0], ["a visit synced the normal way"])
        assert harness.lib_sync(home).results == {"accepted": 1}
        assert envelopes.read(home) == []  # acknowledged: compacted away
        # Enough offline work that the hand-over is a gzipped body, as a real one can be.
        offline = log(home, customers[1], OFFLINE_NOTES + [
            f"offline visit {i}: " + "Saffron gantry retrofit, 三号仓库 " * 4 for i in range(148)])
        sealed_ids = [e["op_id"] for e in envelopes.read(home)]
        assert sealed_ids == pending_op_ids(home) and len(sealed_ids) == 150
        assert (home / envelopes.ENVELOPE_FILE).stat().st_size > GZIP_MIN_BYTES
        assert stat.S_IMODE((home / envelopes.ENVELOPE_FILE).stat().st_mode) == 0o600

        # A lease that blocks 3.6 ms after issue: past its deadline when anything runs next.
        arch.set_policy(block_hours=1e-6, wipe_days=30, require_pin=None)
        harness.check_in(home)
        copy = tmp_path / "copy"  # the rep copies the whole agent home before HR acts
        shutil.copytree(home, copy)
        server_cli(data, "revoke", "Ren Leaver", "--reason", "resigned")
        assert datetime.now(UTC) > parse_iso(keyring(copy)["lease"]["block_at"])

        # Control: the secret in the copy (limit 1 of SECURITY.md) does unwrap the key,
        # so the search below would notice a secret if the server handed one out.
        ring = keyring(copy)
        assert opens_vault(copy, ring, config.device_id, base64.b64decode(ring["secret"]))
        # The genuine agent on the copy, past the block deadline, deletes the secret.
        with pytest.raises(VaultBlocked):
            Store.open(copy)
        ring = keyring(copy)
        assert "secret" not in ring

        # Every route the live server publishes, signed with the copy's device key.
        device = SignedDevice(client, config.device_id, config.rep_id,
                              keystore.load_sign_key(copy))
        spec = client.get("/openapi.json").json()
        routes = sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                        if p not in UNAUTHENTICATED and not p.startswith(("/v1/hr/", "/v1/staff/")))
        assert ("POST", "/v1/final-flush") in routes
        assert not any(p == "/v1/flush-key" for _, p in routes)
        epoch = ring["wrapped"]["epoch"]
        bodies: list[bytes] = []
        crafted = visit_create(customers[1])
        copy_envelopes = envelopes.read(copy)
        for method, path in routes:
            if path == "/v1/push":
                sent = [{"ops": [crafted]}]
            elif path == "/v1/lease":
                sent = [{"have_epoch": e} for e in (epoch, epoch - 1, None)]
            elif path == "/v1/final-flush":
                sent = [{"envelopes": copy_envelopes}, {"envelopes": []}]
            elif path == "/v1/reconcile":
                sent = [{"customers": [], "visits": []}]
            elif path == "/v1/attachments/upload":  # the final flush uploads photos too
                sent = [{"sha256": hashlib.sha256(b"x").hexdigest(), "size": 1,
                         "content_type": "image/png", "offset": 0, "data": "eA=="}]
            elif path == sync_mod.SEALED_UPLOAD_PATH:  # a photo sealed to the server
                sent = [harness.sealed_chunk(data, config.device_id)]
            elif path == "/v1/wipe-receipt":
                sent = [wipe.make_receipt({"order_id": "wo_bogus", "device_id": config.device_id},
                                          [], iso(datetime.now(UTC)), device.key)]
            else:
                sent = [{}]
            for body in sent:
                raw = b"" if method == "GET" else orjson.dumps(body)
                resp = device.send(method, path, raw)
                bodies.append(resp.content)
                if path in ("/v1/push", "/v1/final-flush", "/v1/wipe-order"):
                    assert resp.status_code == 200, (path, resp.text)
                    assert "sealed_key" not in resp.json() and "sealed_lease" not in resp.json()
                elif path == "/v1/wipe-receipt":
                    assert_json_error(resp, 409, "unknown_order")
                elif path in ("/v1/attachments/upload", sync_mod.SEALED_UPLOAD_PATH):
                    assert resp.status_code == 200 and resp.json()["complete"] is True, resp.text
                else:
                    assert_json_error(resp, 403, "device_revoked")
                if path == "/v1/final-flush" and body["envelopes"]:
                    assert [r["status"] for r in resp.json()["results"]] == ["quarantined"] * 150
        for e in (epoch, epoch - 1):  # the old key route is gone
            resp = device.send("POST", "/v1/flush-key", orjson.dumps({"have_epoch": e}))
            assert resp.status_code == 404
            bodies.append(resp.content)

        # Nothing in any answer opens the vault; the copy stays shut.
        found = candidate_bytes(bodies, keystore.load_box_key(copy), config.device_id)
        assert len(found) > 20  # control: the answers were searched
        assert [c for c in found if opens_vault(copy, ring, config.device_id, c)] == []
        with pytest.raises(VaultBlocked):
            Store.open(copy)
        assert "secret" not in keyring(copy)
        # At rest: the archive file keeps no lease secret of a revoked device.
        if backend.sqlite:
            for row in harness.stored_rows(data, "SELECT lease_secret, lease_prev_secret FROM devices"):
                assert row == {"lease_secret": None, "lease_prev_secret": None}

        # The real laptop, past its block deadline: a real `fieldvault sync` hands over
        # the same envelopes again; each offline visit is in quarantine exactly once.
        with pytest.raises(VaultBlocked):
            Store.open(home)
        proc = run([AGENT, "sync", "--home", str(home)], check=False)
        assert proc.returncode == 3, (proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "revoked" in lines[0] and "wiped" in lines[0], proc.stderr
        held = Counter(q["entity_id"] for q in harness.archive(data).quarantine())
        assert {v: held[v] for v in offline} == {v: 1 for v in offline}
        assert held[crafted["entity_id"]] == 1 and sum(held.values()) == 151
        for name in wipe.VAULT_FILES:
            assert not (home / name).exists(), name
        assert (home / wipe.WIPED_MARKER).exists()
        assert harness.archive(data).list_devices(leaver)[0]["state"] == "wiped"
        report = server_cli(data, "departure-report", "Ren Leaver")
        assert report["wipe_receipt"].startswith("attested by the device")
        assert report["quarantined"] == 151
    finally:
        client.close()
        server.stop()


# --- the route's checks ------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path / "server").start()
    yield server
    server.stop()


def enrolled(server: ThreadedServer, home: Path, name: str) -> tuple[AgentConfig, str]:
    rep = server.archive.add_rep(name)["id"]
    customer = server.archive.add_customer(CustomerCreate(name=f"{name}'s customer"), rep)["id"]
    code, _ = server.archive.create_enroll_code(rep, timedelta(hours=1))
    config = enroll(home, server.url, code)
    harness.lib_sync(home)
    return config, customer


def test_final_flush_takes_each_op_once_and_rejects_envelopes_that_are_not_this_devices(
        served: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arch = served.archive
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a, customer_a = enrolled(served, home_a, "An Leaver")
    b, _ = enrolled(served, home_b, "Bo Leaver")
    synced = log(home_a, customer_a, ["pushed the normal way"])[0]
    pushed_env = envelopes.read(home_a)[0]
    harness.lib_sync(home_a)
    offline = log(home_a, customer_a, ["only in the outbox"])[0]
    offline_env = envelopes.read(home_a)[0]

    client = httpx.Client(base_url=served.url, timeout=30)
    dev_a = SignedDevice(client, a.device_id, a.rep_id, keystore.load_sign_key(home_a))
    dev_b = SignedDevice(client, b.device_id, b.rep_id, keystore.load_sign_key(home_b))

    def flush(dev: SignedDevice, envs: list[dict[str, Any]]) -> httpx.Response:
        return dev.send("POST", "/v1/final-flush", orjson.dumps({"envelopes": envs}))

    try:
        assert_json_error(flush(dev_a, [offline_env]), 409, "not_revoked")  # still active
        arch.revoke(a.rep_id, "left", "pool")
        arch.revoke(b.rep_id, "left", "pool")

        server_box = served.app.state.box_key
        box_pub = server_box.public_key().public_bytes_raw()

        def sealed_for(device_id: str, op_id: str, payload: dict[str, Any]) -> dict[str, Any]:
            aad = sealing.envelope_aad(device_id, op_id)
            return {"op_id": op_id, "sealed": sealing.seal_many(box_pub, [(payload, aad)])[0]}

        inner = sealing.open_sealed(server_box, offline_env["sealed"],
                                         sealing.envelope_aad(a.device_id, offline_env["op_id"]))
        assert inner["device_id"] == a.device_id and inner["op"]["entity_id"] == offline
        other_op = {**inner["op"], "op_id": "f" * 32, "entity_id": "e" * 32}
        tampered = dict(offline_env["sealed"])
        ct = bytearray(base64.b64decode(tampered["ciphertext"]))
        ct[-1] ^= 1
        tampered["ciphertext"] = b64e(bytes(ct))
        cases = {
            "already pushed": pushed_env,
            "offline": offline_env,
            "relabelled": {"op_id": "d" * 32, "sealed": offline_env["sealed"]},
            "tampered": {"op_id": offline_env["op_id"], "sealed": tampered},
            "claims B": sealed_for(a.device_id, other_op["op_id"],
                                   {"device_id": b.device_id, "op": other_op}),
            "op_id differs": sealed_for(a.device_id, "c" * 32,
                                        {"device_id": a.device_id, "op": other_op}),
        }
        # B sends A's envelope: sealed with A's id as associated data, it does not open.
        resp = flush(dev_b, [offline_env])
        assert resp.status_code == 200, resp.text
        assert [r["status"] for r in resp.json()["results"]] == ["rejected"]
        assert arch.quarantine() == []

        resp = flush(dev_a, list(cases.values()))
        assert resp.status_code == 200, resp.text
        got = dict(zip(cases, (r["status"] for r in resp.json()["results"]), strict=True))
        assert got == {"already pushed": "accepted", "offline": "quarantined",
                       "relabelled": "rejected", "tampered": "rejected", "claims B": "rejected",
                       "op_id differs": "rejected"}
        for _ in range(2):  # replays: the same answers, no second row
            again = flush(dev_a, [offline_env, pushed_env])
            assert [r["status"] for r in again.json()["results"]] == ["quarantined", "accepted"]
        assert [q["entity_id"] for q in arch.quarantine()] == [offline]
        assert [v["id"] for v in arch.list_visits(a.rep_id)] == [synced]
        order = resp.json()["wipe_order"]
        assert order["device_id"] == a.device_id and order["type"] == "wipe_order"

        # The agent's own hand-over, in batches of one: each answer verified, nothing doubled.
        monkeypatch.setattr(sync_mod, "PUSH_BATCH", 1)
        later = log(home_a, customer_a, ["typed after the revocation", "and another"])
        assert len(envelopes.read(home_a)) == 3
        transport = sync_mod.open_transport(home_a, a)
        try:
            revoked = sync_mod.hand_over_envelopes(home_a, transport)
        finally:
            transport.close()
        assert revoked.order["device_id"] == a.device_id
        assert sorted(q["entity_id"] for q in arch.quarantine()) == sorted([offline, *later])
    finally:
        client.close()


def test_sealed_photo_chunks_open_only_for_their_device_file_and_offset(
        served: ThreadedServer, tmp_path: Path) -> None:
    """The sealed copy of a photo (agent/sealed_attachments.py) is taken chunk by chunk
    from a revoked device only; a chunk sent by another device, changed, or relabelled
    with another offset or type is refused and writes nothing; the agent's hand-over
    then delivers the photo whole, and a replay delivers nothing twice."""
    arch = served.archive
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a, _ = enrolled(served, home_a, "Photo Leaver")
    b, _ = enrolled(served, home_b, "Other Leaver")
    photo = os.urandom(CHUNK * 2 + 1000)  # three chunks
    with harness.open_store(home_a) as store:
        sha = attachments.add_bytes(store, photo, "shelf.jpg")["sha256"]
    copy = sealed_attachments.load(home_a, sha)
    assert copy is not None and sorted(copy["chunks"]) == [0, CHUNK, 2 * CHUNK]

    client = httpx.Client(base_url=served.url, timeout=30)
    dev_a = SignedDevice(client, a.device_id, a.rep_id, keystore.load_sign_key(home_a))
    dev_b = SignedDevice(client, b.device_id, b.rep_id, keystore.load_sign_key(home_b))

    def send(dev: SignedDevice, offset: int, **change: Any) -> httpx.Response:
        body = {"sha256": sha, "size": len(photo), "content_type": copy["content_type"],
                "offset": offset, "sealed": copy["chunks"][offset], **change}
        return dev.send("POST", sync_mod.SEALED_UPLOAD_PATH, orjson.dumps(body))

    try:
        assert_json_error(send(dev_a, 0), 409, "not_revoked")  # still active
        arch.revoke(a.rep_id, "left", "pool")
        arch.revoke(b.rep_id, "left", "pool")
        tampered = dict(copy["chunks"][0])
        ct = bytearray(base64.b64decode(tampered["ciphertext"]))
        ct[0] ^= 1
        tampered["ciphertext"] = b64e(bytes(ct))
        assert_json_error(send(dev_b, 0), 400, "sealed_chunk_invalid")  # A's, sent by B
        assert_json_error(send(dev_a, 0, sealed=tampered), 400, "sealed_chunk_invalid")
        assert_json_error(send(dev_a, 0, sealed=copy["chunks"][CHUNK]), 400,
                          "sealed_chunk_invalid")  # chunk 2 passed off as chunk 1
        assert_json_error(send(dev_a, 0, content_type="text/html"), 400, "sealed_chunk_invalid")
        assert_json_error(send(dev_a, 0, size=len(photo) + 1), 400, "sealed_chunk_invalid")
        # A chunk past what the server holds is not written: it answers where to resume.
        ahead = send(dev_a, 2 * CHUNK)
        assert ahead.status_code == 200 and ahead.json() == {
            "sha256": sha, "received": 0, "complete": False}
        assert arch.blobs.received(sha, a.device_id) == 0 and not arch.blobs.has(sha)

        transport = sync_mod.open_transport(home_a, a)
        try:
            assert sync_mod.hand_over_attachments(home_a, transport) == 1
            assert arch.blobs.read(sha) == photo
            assert sync_mod.hand_over_attachments(home_a, transport) == 1  # a replay: done
        finally:
            transport.close()
        assert arch.attachment_totals()["blob_files"] == 1
    finally:
        client.close()


# --- the envelope file on the laptop -------------------------------------------------


def test_a_photo_whose_sealed_copy_cannot_be_written_is_not_saved(
        served: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No photo is ever in the vault without the copy a blocked, revoked laptop would
    hand over: when the copy cannot be written (a full disk), the save fails whole."""
    home = tmp_path / "a"
    enrolled(served, home, "Full Disk Rep")

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sealed_attachments, "save", full)
    with harness.open_store(home) as store:
        with pytest.raises(StoreError, match="not saved.*No space left.*free some disk space"):
            attachments.add_bytes(store, os.urandom(500), "shelf.jpg")
        assert attachments.counts(store)["attachments"] == 0
    assert sealed_attachments.stored(home) == []



def test_photos_saved_before_the_laptop_sealed_them_are_sealed_at_the_next_open(
        served: ThreadedServer, tmp_path: Path) -> None:
    """A laptop upgraded from an agent that kept photos in the vault alone (or one that
    knew no server key yet): the next open seals every photo the server has not
    confirmed, once; one the server confirmed gets no copy."""
    home = tmp_path / "a"
    enrolled(served, home, "Upgraded Rep")
    photo, sent = os.urandom(3000), os.urandom(2000)
    with harness.open_store(home) as store:
        sha = attachments.add_bytes(store, photo, "old.jpg")["sha256"]
        confirmed = attachments.add_bytes(store, sent, "sent.jpg")["sha256"]
        attachments.mark_uploaded(store, confirmed)
        assert sealed_attachments.stored(home) == [sha]
        # As an older agent left it: no copy, and no note that photos were sealed.
        sealed_attachments.drop(home, sha)
        store.set_state("attachments_sealed_to", "")
    with harness.open_store(home):
        assert sealed_attachments.stored(home) == [sha]
    copy = sealed_attachments.load(home, sha)
    assert copy is not None and copy["size"] == len(photo)
    opened = sealing.Opener(served.app.state.box_key).open_bytes(
        copy["chunks"][0], sealing.attachment_aad(AgentConfig.load(home).device_id,  # type: ignore[union-attr]
                                                  sha, len(photo), "image/jpeg", 0))
    assert opened == photo



def test_every_saved_op_is_sealed_before_commit_and_compacted_after_the_server_answers(
        served: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "laptop"
    config, customer = enrolled(served, home, "Lu Field")
    box = served.app.state.box_key
    path = home / envelopes.ENVELOPE_FILE

    def opened() -> list[dict[str, Any]]:
        return [sealing.open_sealed(box, e["sealed"],
                                         sealing.envelope_aad(config.device_id, e["op_id"]))
                for e in envelopes.read(home)]

    with harness.open_store(home) as store:
        store.log_visit(VisitCreate(customer_id=customer, purpose="service", summary="one",
                                    started_at=datetime.now(UTC)))
        store.edit_customer(customer, CustomerPatch(notes="Vermilion kiln"))
        wire = orjson.loads(orjson.dumps(store.pending_ops(100)))
    assert [o["op"] for o in opened()] == wire  # exactly the ops the push would send
    assert {o["device_id"] for o in opened()} == {config.device_id}
    assert b"Vermilion" not in path.read_bytes()  # sealed, not readable on the laptop

    # Several ops in one transaction: one append, one key agreement for the batch.
    with harness.open_store(home) as store:
        with store.transaction():
            for i in range(3):
                store._enqueue(OpKind.customer_update, customer, {"notes": f"batch {i}"}, 0)
    batch = envelopes.read(home)[-3:]
    assert len({e["sealed"]["ephemeral_public_key"] for e in batch}) == 1
    assert len({e["sealed"]["nonce"] for e in batch}) == 3

    # A save whose envelope cannot be written is not saved (disk full, say).
    before = path.read_bytes()

    def full(self: envelopes.Sealer, data: bytes, durable: bool = True) -> None:
        raise OSError(28, "No space left on device")

    with harness.open_store(home) as store:
        n = store.outbox_counts()["pending"]
        monkeypatch.setattr(envelopes.Sealer, "append", full)
        with pytest.raises(OSError):
            store.log_visit(VisitCreate(customer_id=customer, purpose="service",
                                        summary="never saved", started_at=datetime.now(UTC)))
        monkeypatch.undo()
        assert store.outbox_counts()["pending"] == n
        assert not list(store.iter_visits(search="never saved"))
    assert path.read_bytes() == before

    # A line torn by a crash mid-append neither hides nor glues onto the next envelope.
    with path.open("ab") as fh:
        fh.write(b'{"op_id":"0000000000000000","sealed":{"ephemer')
    log(home, customer, ["after the torn line"])
    assert [e["op_id"] for e in envelopes.read(home)] == pending_op_ids(home)

    # The file is never followed through a symlink.
    path.rename(home / "moved.sealed")
    path.symlink_to(home / "moved.sealed")
    with pytest.raises(OSError):
        log(home, customer, ["through a symlink"])
    path.unlink()
    (home / "moved.sealed").rename(path)

    # Once the server answered, the envelopes go; new ones come with new saves.
    waiting = len(pending_op_ids(home))
    assert harness.lib_sync(home).pushed == waiting > 0
    assert pending_op_ids(home) == [] and path.read_bytes() == b""
    log(home, customer, ["next"])
    assert [e["op_id"] for e in envelopes.read(home)] == pending_op_ids(home)


def test_ops_saved_before_the_agent_knew_the_server_key_are_sealed_at_the_next_open(
        served: ThreadedServer, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    config, customer = enrolled(served, home, "Old Agent")
    keys = keystore.unlock(home, config.device_id, base64.b64decode(config.server_sign_public_key),
                           served.app.state.clock)
    assert keys.server_box_public_key is not None
    # As an agent whose lease predates the box key: no sealer, ops only in the vault.
    store = Store(open_vault(home / "vault.db", keys.dek), config.rep_id, served.app.state.clock)
    store.log_visit(VisitCreate(customer_id=customer, purpose="service", summary="old agent",
                                started_at=datetime.now(UTC)))
    store.close()
    assert envelopes.read(home) == []
    assert len(pending_op_ids(home)) == 1  # opening with the key seals the backlog
    assert [e["op_id"] for e in envelopes.read(home)] == pending_op_ids(home)

    # A new server key (a restored server without its old box key): all pending ops are
    # sealed again to the new key, so the envelopes still open.
    with harness.open_store(home) as store:
        store.set_state("sealed_to", os.urandom(32).hex())
    assert len(pending_op_ids(home)) == 1
    assert len(envelopes.read(home)) == 1
    box = served.app.state.box_key
    env = envelopes.read(home)[0]
    sealing.open_sealed(box, env["sealed"], sealing.envelope_aad(config.device_id,
                                                                           env["op_id"]))
