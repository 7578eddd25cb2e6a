"""Bad input: every malformed, oversized, wrongly typed, out-of-scope or badly signed
request gets a 4xx with a JSON error body and changes nothing in the archive.

Most cases run in process (the real app under TestClient, requests signed here with
the device's own Ed25519 key); the boundary cases run against a real
`fieldvault-server serve` and the real CLIs.
"""

from __future__ import annotations

import gzip
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.home import AgentConfig
from agent.keystore import load_sign_key
from agent.sync import open_transport
from agent.transport import ServerRefused, Transport, check_url
from schema.clock import ManualClock
from schema.models import CustomerCreate
from schema.signing import b64d, b64e
from schema.validation import MAX_BODY_BYTES, MAX_OPS_PER_PUSH
from server.archive import ArchiveError
from server.routes.sync import encode_cursor
from server.rules import Archive, init_archive, open_archive

from . import harness
from .harness import (
    AGENT,
    AUTH_TABLES,
    ServerProcess,
    SignedDevice,
    agent_cli,
    archive_of,
    assert_json_error,
    customer_create,
    customer_update,
    enroll_device,
    make_client,
    new_id,
    op,
    raw_public,
    run,
    server_cli,
    snapshot,
    visit_create,
)


@dataclass
class World:
    data: Path
    client: Any
    archive: Archive
    a: SignedDevice  # rep A's laptop
    b: SignedDevice  # rep B's laptop
    cust_a: dict[str, Any]
    cust_b: dict[str, Any]
    visit_b: str


@dataclass
class Template:
    data: Path
    a: SignedDevice
    b: SignedDevice
    cust_a: dict[str, Any]
    cust_b: dict[str, Any]
    visit_b: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Two reps with a customer and a laptop each, and a visit by B; built once per
    module over HTTP, then copied for every test."""
    data = tmp_path_factory.mktemp("template") / "srv"
    client = make_client(data)
    archive = archive_of(client)
    rep_a = archive.add_rep("Rep A")["id"]
    rep_b = archive.add_rep("Rep B")["id"]
    cust_a = archive.add_customer(CustomerCreate(name="杭州明达 A-Co", grade="A"), rep_a)
    cust_b = archive.add_customer(
        CustomerCreate(name="Bravo Trading", notes="B-only secret note"), rep_b)
    a = enroll_device(client, archive, rep_a)
    b = enroll_device(client, archive, rep_b)
    visit_b = new_id()
    resp = b.push([visit_create(cust_b["id"], visit_b, summary="B-only visit summary")])
    assert resp.json()["results"][0]["status"] == "accepted"
    harness.fold_wal(data)
    client.close()
    return Template(data, a, b, cust_a, cust_b, visit_b)


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[World]:
    data = tmp_path / "srv"
    shutil.copytree(template.data, data)
    client = make_client(data)  # not entered: no lifespan tasks writing in the background
    a, b = (SignedDevice(client, d.device_id, d.rep_id, d.key) for d in (template.a, template.b))
    yield World(data, client, archive_of(client), a, b, template.cust_a, template.cust_b,
                template.visit_b)
    client.close()


@contextmanager
def unchanged(data: Path, nonces: int | None = 0) -> Iterator[None]:
    """Nothing in the archive changes inside the block, except that a request whose
    signature verified records its nonce (`nonces` of them; None: any number) and the
    device's last_seen_at."""
    before = snapshot(data, skip=AUTH_TABLES)
    yield
    after = snapshot(data, skip=AUTH_TABLES)
    grown = after.pop("nonces") - before.pop("nonces")
    assert after == before
    assert grown == nonces if nonces is not None else grown >= 0


# --- malformed and wrongly typed push bodies ---------------------------------------

def _visit(w: World, **data: Any) -> dict[str, Any]:
    return visit_create(w.cust_a["id"], **data)


def _with(o: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**o, **fields}


def _data(o: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**o, "data": {**o["data"], **fields}}


def _ops(*ops: dict[str, Any]) -> bytes:
    return orjson.dumps({"ops": list(ops)})


Body = Callable[[World], bytes]

BAD_PUSH_BODIES: dict[str, Body] = {
    # malformed
    "not json": lambda w: b"{not json",
    "empty body": lambda w: b"",
    "truncated": lambda w: _ops(_visit(w))[:-7],
    "array, not object": lambda w: orjson.dumps([_visit(w)]),
    "invalid utf-8": lambda w: b'{"ops": ["\xff\xfe"]}',
    "unknown top-level key": lambda w: orjson.dumps({"ops": [_visit(w)], "as_rep": "x"}),
    # wrongly typed
    "ops is a string": lambda w: b'{"ops": "all of them"}',
    "ops is null": lambda w: b'{"ops": null}',
    "seq is text": lambda w: _ops(_with(_visit(w), seq="one")),
    "seq is zero": lambda w: _ops(_with(_visit(w), seq=0)),
    "base_rev negative": lambda w: _ops(_with(_visit(w), base_rev=-1)),
    "naive timestamp": lambda w: _ops(_with(_visit(w), at="2026-03-01T09:00:00")),
    "timestamp is prose": lambda w: _ops(_data(_visit(w), started_at="yesterday")),
    "entity id with slashes": lambda w: _ops(_with(_visit(w), entity_id="../../etc/passwd")),
    "op id too short": lambda w: _ops(_with(_visit(w), op_id="x")),
    "planned is not a bool": lambda w: _ops(_data(_visit(w), planned="maybe")),
    "summary is a number": lambda w: _ops(_data(_visit(w), summary=12345)),
    "data is null": lambda w: _ops(_with(_visit(w), data=None)),
    "summary missing": lambda w: _ops(_with(_visit(w), data={
        k: v for k, v in _visit(w)["data"].items() if k != "summary"})),
    "rep sets the owner": lambda w: _ops(customer_update(w.cust_a["id"], owner_rep_id=w.b.rep_id)),
    "rep sets the card number": lambda w: _ops(customer_update(w.cust_a["id"], card_no="FV1")),
    "empty customer edit": lambda w: _ops(customer_update(w.cust_a["id"])),
    "customer name cleared": lambda w: _ops(customer_update(w.cust_a["id"], name=None)),
    # batch shape
    "no ops": lambda w: b'{"ops": []}',
    "too many ops": lambda w: _ops(*(_visit(w) for _ in range(MAX_OPS_PER_PUSH + 1))),
    "duplicate op ids": lambda w: _ops(_with(_visit(w), op_id="dup-op-id-0001"),
                                       _with(_visit(w), op_id="dup-op-id-0001")),
    "unknown op kind": lambda w: _ops(_with(_visit(w), kind="customer.delete")),
    "approve is not a rep op": lambda w: _ops(_with(_visit(w), kind="visit.approve")),
    # enums
    "invalid purpose": lambda w: _ops(_data(_visit(w), purpose="sightseeing")),
    "invalid grade on create": lambda w: _ops(customer_create(grade="D")),
    "lower-case grade": lambda w: _ops(customer_update(w.cust_a["id"], grade="a")),
    "rep approves own visit": lambda w: _ops(_data(_visit(w), status="approved")),
    # time rules
    "ended before started": lambda w: _ops(_data(_visit(w), started_at="2026-03-01T10:00:00Z",
                                                 ended_at="2026-03-01T09:59:59Z")),
    "next appointment in the past": lambda w: _ops(_data(_visit(w),
                                                         next_at="2026-02-01T10:00:00Z")),
    # text hygiene
    "NUL in summary": lambda w: _ops(_data(_visit(w), summary="ok\x00then")),
    "BEL in name": lambda w: _ops(customer_create("Acme\x07 Ltd")),
    "newline in name": lambda w: _ops(customer_update(w.cust_a["id"], name="two\nlines")),
    "escape sequence in notes": lambda w: _ops(customer_update(w.cust_a["id"],
                                                               notes="hi \x1b[2J there")),
    "C1 control in outcome": lambda w: _ops(_data(_visit(w), outcome="deal \x9b closed")),
    "vertical tab in phone": lambda w: _ops(customer_update(w.cust_a["id"], phone="138\x0b0000")),
    "letters in phone": lambda w: _ops(customer_update(w.cust_a["id"], phone="call me")),
    "name too long": lambda w: _ops(customer_create("N" * 201)),
    "summary too long": lambda w: _ops(_data(_visit(w), summary="s" * 4001)),
    "blank summary": lambda w: _ops(_data(_visit(w), summary="   ")),
}


@pytest.mark.parametrize("case", sorted(BAD_PUSH_BODIES))
def test_bad_push_body_is_refused_and_changes_nothing(world: World, case: str) -> None:
    body = BAD_PUSH_BODIES[case](world)
    with unchanged(world.data, nonces=1):
        resp = world.a.push(body)
        err = assert_json_error(resp, 422, "invalid_request")
    # one clear line ("field.path: problem"), echoing no customer data back
    assert len(err["message"]) < 300 and "\n" not in err["message"]
    assert not err["message"].startswith(":"), err
    assert "B-only" not in resp.text and "Bravo" not in resp.text


def test_one_bad_op_among_good_ones_writes_nothing(world: World) -> None:
    good = [_visit(world), customer_create("Good New Customer"),
            customer_update(world.cust_a["id"], notes="called back")]
    bad = _data(_visit(world), purpose="sightseeing")
    with unchanged(world.data, nonces=1):
        assert_json_error(world.a.push([*good, bad]), 422, "invalid_request")
    # the good operations were not recorded as applied: sent alone they are accepted
    resp = world.a.push(good)
    assert [r["status"] for r in resp.json()["results"]] == ["accepted"] * 3


def test_visit_edit_that_breaks_the_time_rules_is_rejected_not_applied(world: World) -> None:
    vid = new_id()
    world.a.push([_visit(world, visit_id=vid)])
    edit = op("visit.update", vid, {"ended_at": "2026-03-01T08:00:00Z"}, base_rev=1)
    before = world.archive.list_visits(customer=world.cust_a["id"])
    resp = world.a.push([edit])
    assert resp.status_code == 200
    (result,) = resp.json()["results"]
    assert result["status"] == "rejected" and "ended_at" in result["reason"]
    assert world.archive.list_visits(customer=world.cust_a["id"]) == before


def test_submitted_visit_cannot_go_back_to_draft(world: World) -> None:
    draft, submitted = new_id(), new_id()
    world.a.push([_visit(world, visit_id=draft, status="draft"),
                  _visit(world, visit_id=submitted)])
    before = world.archive.list_visits(customer=world.cust_a["id"])
    resp = world.a.push([op("visit.update", submitted, {"status": "draft"}, base_rev=1)])
    (result,) = resp.json()["results"]
    assert result["status"] == "rejected" and "draft" in result["reason"], result
    assert world.archive.list_visits(customer=world.cust_a["id"]) == before
    # forward is fine
    resp = world.a.push([op("visit.update", draft, {"status": "submitted"}, base_rev=1)])
    assert resp.json()["results"][0]["status"] == "accepted"


# --- oversized bodies ---------------------------------------------------------------

def test_body_over_the_limit_is_refused_before_it_is_read(world: World) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    with unchanged(world.data):
        assert_json_error(world.a.push(body), 413, "body_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(MAX_BODY_BYTES // 2**20 + 2):
                yield b" " * 2**20

        headers = world.a.headers("POST", "/v1/push", b"")
        resp = world.client.post("/v1/push", content=chunks(), headers=headers)
        assert_json_error(resp, 413, "body_too_large")


def _gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed (about 1000:1), built without holding them."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * 2**20
    parts = [deflate.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, deflate.flush()])


def test_gzip_bomb_is_refused(world: World) -> None:
    bomb = _gzip_bomb(64 * 2**20)
    assert len(bomb) < 100_000
    with unchanged(world.data, nonces=1):
        resp = world.a.push(bomb, extra={"content-encoding": "gzip"})
        assert_json_error(resp, 413, "body_too_large")


def test_bad_content_encodings_are_refused(world: World) -> None:
    good = _ops(_visit(world))
    with unchanged(world.data, nonces=3):
        assert_json_error(world.a.push(gzip.compress(good)[:-9],
                                       extra={"content-encoding": "gzip"}), 400, "bad_encoding")
        assert_json_error(world.a.push(b"not gzip at all", extra={"content-encoding": "gzip"}),
                          400, "bad_encoding")
        assert_json_error(world.a.push(good, extra={"content-encoding": "br"}),
                          415, "unsupported_encoding")
    # the same batch, properly gzipped, is fine
    resp = world.a.push(gzip.compress(good), extra={"content-encoding": "gzip"})
    assert resp.json()["results"][0]["status"] == "accepted"


# --- request authentication -----------------------------------------------------------

def _drop(header: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda h: {k: v for k, v in h.items() if k != header}


def _set(header: str, value: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda h: {**h, header: value}


HEADER_TAMPERING: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
    "no device header": _drop("FV-Device"),
    "no timestamp header": _drop("FV-Timestamp"),
    "no nonce header": _drop("FV-Nonce"),
    "no signature header": _drop("FV-Signature"),
    "no auth headers at all": lambda h: {"content-type": "application/json"},
    "unknown device": _set("FV-Device", "dev_00000000deadbeef"),
    "malformed device id": _set("FV-Device", "dev 1; DROP TABLE visits"),
    "timestamp is not a number": _set("FV-Timestamp", "2026-03-01T09:00:00Z"),
    "nonce too short": _set("FV-Nonce", "abc"),
    "signature not base64": _set("FV-Signature", "!!not-base64!!"),
    "signature truncated": lambda h: {**h, "FV-Signature": h["FV-Signature"][:40]},
    "signature of zeros": _set("FV-Signature", b64e(bytes(64))),
}


@pytest.mark.parametrize("case", sorted(HEADER_TAMPERING))
def test_badly_authenticated_push_is_refused_and_changes_nothing(world: World, case: str) -> None:
    body = _ops(_visit(world))
    headers = HEADER_TAMPERING[case](world.a.headers("POST", "/v1/push", body))
    with unchanged(world.data):  # not even the nonce is recorded
        resp = world.client.post("/v1/push", content=body, headers=headers)
        assert_json_error(resp, 401, "unauthorized")


def _signed_then_sent(world: World, signed: tuple[str, str, bytes], sent: tuple[str, str, bytes],
                      **sign: Any) -> httpx.Response:
    headers = world.a.headers(*signed, **sign)
    return world.client.request(sent[0], sent[1], content=sent[2], headers=headers)


def test_bad_signatures_are_refused(world: World) -> None:
    body = _ops(_visit(world))
    other = _ops(customer_update(world.cust_a["id"], notes="tampered in transit"))
    with unchanged(world.data):
        # signed by a key that is not the device's
        assert_json_error(world.a.push(body, key=Ed25519PrivateKey.generate()), 401)
        # A's key claiming to be B's device
        forged = world.a.headers("POST", "/v1/push", body)
        forged["FV-Device"] = world.b.device_id
        assert_json_error(world.client.post("/v1/push", content=body, headers=forged), 401)
        # body swapped after signing
        post = ("POST", "/v1/push", body)
        assert_json_error(_signed_then_sent(world, post, ("POST", "/v1/push", other)), 401)
        # signature made for another path or method
        assert_json_error(_signed_then_sent(world, ("POST", "/v1/pull", body), post), 401)
        assert_json_error(_signed_then_sent(world, ("PUT", "/v1/push", body), post), 401)
        # query string altered after signing
        pull = ("GET", "/v1/pull?cursor=&limit=10", b"")
        assert_json_error(
            _signed_then_sent(world, pull, ("GET", "/v1/pull?cursor=&limit=11", b"")), 401)


# Just past the 300 s limit either way. The future one is 302: the header holds whole
# seconds, so `int(now) + 301` can be only 300.x s ahead by the time the server reads it.
@pytest.mark.parametrize("skew", [-301, 302, -86_400])
def test_stale_or_future_timestamp_is_refused(world: World, skew: int) -> None:
    with unchanged(world.data):
        resp = world.a.push(_ops(_visit(world)), ts=int(time.time()) + skew)
        body = assert_json_error(resp, 401, "unauthorized")
    assert "clock" in body["message"]


def test_replayed_request_is_refused_and_not_applied_twice(world: World) -> None:
    body = _ops(_visit(world))
    headers = world.a.headers("POST", "/v1/push", body)
    first = world.client.post("/v1/push", content=body, headers=headers)
    assert first.json()["results"][0]["status"] == "accepted"
    with unchanged(world.data):
        replay = world.client.post("/v1/push", content=body, headers=headers)
        assert_json_error(replay, 401, "unauthorized")
        # the same nonce with a fresh signature over another body is a replay too
        nonce = headers["FV-Nonce"]
        assert_json_error(world.a.push(_ops(_visit(world)), nonce=nonce), 401)
    assert len(world.archive.list_visits(customer=world.cust_a["id"])) == 1


def test_bad_pull_parameters_are_refused(world: World) -> None:
    with unchanged(world.data, nonces=None):
        assert_json_error(world.a.pull(cursor="not-a-cursor"), 400, "invalid_cursor")
        assert_json_error(world.a.pull(limit=0), 422, "invalid_request")
        assert_json_error(world.a.pull(limit=10**6), 422, "invalid_request")
        assert_json_error(world.a.pull(cursor="A" * 500), 422, "invalid_request")


# --- enrollment -------------------------------------------------------------------------

def _enroll_body(code: str, **over: Any) -> dict[str, Any]:
    return {"code": code, "sign_public_key": raw_public(Ed25519PrivateKey.generate()),
            "box_public_key": raw_public(X25519PrivateKey.generate()), **over}


def test_unknown_reused_and_expired_codes_are_refused(world: World) -> None:
    rep = world.a.rep_id
    code, _ = world.archive.create_enroll_code(rep, timedelta(hours=1))
    assert world.client.post("/v1/enroll", json=_enroll_body(code)).status_code == 200
    # a code made by an archive whose clock says it expired a year ago
    past = open_archive(world.data, clock=ManualClock(datetime.now(UTC) - timedelta(days=365)))
    expired, expires_at = past.create_enroll_code(rep, timedelta(hours=1))
    assert expires_at < datetime.now(UTC).isoformat()
    with unchanged(world.data):
        messages = set()
        for attempt in ("ABCD-EFGH-JKMN", code, code.lower().replace("-", ""), expired):
            resp = world.client.post("/v1/enroll", json=_enroll_body(attempt))
            messages.add(assert_json_error(resp, 403, "invalid_code")["message"])
    # one answer for all three: no oracle telling a guesser which codes exist
    assert len(messages) == 1 and "ask your admin" in messages.pop()


def test_code_expires_by_the_server_clock(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    client = make_client(tmp_path / "srv", clock=clock)
    archive = archive_of(client)
    rep = archive.add_rep("Rep C")["id"]
    code, _ = archive.create_enroll_code(rep, timedelta(minutes=30))
    clock.advance(timedelta(minutes=31))
    with unchanged(tmp_path / "srv"):
        assert_json_error(client.post("/v1/enroll", json=_enroll_body(code)), 403, "invalid_code")
    clock.set(datetime(2026, 3, 1, 9, 29, tzinfo=UTC))  # still valid before expiry
    assert client.post("/v1/enroll", json=_enroll_body(code)).status_code == 200


def test_inactive_rep_cannot_enroll(world: World) -> None:
    code, _ = world.archive.create_enroll_code(world.a.rep_id, timedelta(hours=1))
    world.archive.revoke(world.a.rep_id, "resigned")  # a departed rep is no longer active
    with unchanged(world.data):
        resp = world.client.post("/v1/enroll", json=_enroll_body(code))
        assert_json_error(resp, 403, "rep_inactive")


BAD_ENROLL: dict[str, Callable[[str], Any]] = {
    "key too short": lambda c: _enroll_body(c, sign_public_key=b64e(bytes(31))),
    "key not base64": lambda c: _enroll_body(c, box_public_key="%" * 44),
    "key missing": lambda c: {"code": c, "sign_public_key": raw_public(
        Ed25519PrivateKey.generate())},
    "code is a number": lambda c: _enroll_body(12345678),
    "unknown field": lambda c: _enroll_body(c, rep_id="rep_admin"),
    "control char in device name": lambda c: _enroll_body(c, device_name="lap\x00top"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENROLL))
def test_bad_enroll_body_is_refused_and_does_not_burn_the_code(world: World, case: str) -> None:
    code, _ = world.archive.create_enroll_code(world.a.rep_id, timedelta(hours=1))
    with unchanged(world.data):
        resp = world.client.post("/v1/enroll", json=BAD_ENROLL[case](code))
        assert_json_error(resp, 422)
    assert world.client.post("/v1/enroll", json=_enroll_body(code)).status_code == 200


def test_malformed_and_oversized_enroll_bodies_are_refused(world: World) -> None:
    code, _ = world.archive.create_enroll_code(world.a.rep_id, timedelta(hours=1))
    headers = {"content-type": "application/json"}
    with unchanged(world.data):
        assert_json_error(world.client.post("/v1/enroll", content=b"{code:", headers=headers), 422)
        # unauthenticated, so it must be bounded before it is parsed, like signed requests
        huge = orjson.dumps(_enroll_body(code, device_name="x" * (MAX_BODY_BYTES + 1)))
        resp = world.client.post("/v1/enroll", content=huge, headers=headers)
        assert_json_error(resp, 413, "body_too_large")


# --- scope: a rep's device acts only on that rep's records ---------------------------------

def test_edit_of_another_reps_customer_is_quarantined_not_applied(world: World) -> None:
    cust_b = world.cust_b["id"]
    card_before = world.archive.get_customer(cust_b)
    before = snapshot(world.data, skip=AUTH_TABLES)
    resp = world.a.push([customer_update(cust_b, notes="A was here", phone="110")])
    (result,) = resp.json()["results"]
    assert resp.status_code == 200 and result["status"] == "quarantined", result
    after = snapshot(world.data, skip=AUTH_TABLES)
    assert world.archive.get_customer(cust_b) == card_before
    for table in ("customers", "customer_revisions", "visits", "feed", "ownership", "conflicts"):
        assert after[table + "#rows"] == before[table + "#rows"], table
    assert after["quarantine"] == before["quarantine"] + 1  # held for review, not lost
    (held,) = world.archive.quarantine()
    assert held["entity_id"] == cust_b and held["rep_id"] == world.a.rep_id
    assert held["payload"]["data"]["notes"] == "A was here"
    # B's next pull sees B's card untouched
    assert "A was here" not in world.b.pull().text


def test_other_out_of_scope_operations_change_nothing(world: World) -> None:
    cust_b, visit_b = world.cust_b["id"], world.visit_b
    before = snapshot(world.data, skip=AUTH_TABLES)
    resp = world.a.push([
        visit_create(cust_b, summary="a visit to B's customer"),
        op("visit.update", visit_b, {"summary": "rewritten by A"}, base_rev=1),
        op("visit.void", visit_b, {"reason": "A says so"}, base_rev=1),
        customer_create("Hijack", customer_id=cust_b),
        visit_create(world.cust_a["id"], visit_id=visit_b),
    ])
    statuses = [r["status"] for r in resp.json()["results"]]
    assert statuses == ["quarantined", "rejected", "rejected", "rejected", "rejected"]
    after = snapshot(world.data, skip=AUTH_TABLES)
    for table in ("customers", "customer_revisions", "visits", "visit_revisions", "feed"):
        assert after[table + "#rows"] == before[table + "#rows"], table
    (visit,) = world.archive.list_visits(customer=cust_b)
    assert visit["summary"] == "B-only visit summary" and visit["status"] == "submitted"


def test_op_id_of_another_device_cannot_be_replayed_or_read(world: World) -> None:
    b_op = visit_create(world.cust_b["id"])
    world.b.push([b_op])
    stolen = _with(_visit(world), op_id=b_op["op_id"])
    with unchanged(world.data, nonces=1):
        resp = world.a.push([stolen])
        # `applied_ops` is not touched, so the snapshot holds; the answer reveals nothing
        (result,) = resp.json()["results"]
    assert result["status"] == "rejected" and result["entity_id"] == stolen["entity_id"]
    assert world.b.rep_id not in resp.text and world.cust_b["id"] not in resp.text


def test_pull_never_returns_another_reps_data(world: World) -> None:
    world.a.push([_visit(world)])
    changes = world.a.pull_all()
    assert {c["id"] for c in changes if c["kind"] == "customer"} == {world.cust_a["id"]}
    assert all(c["record"]["customer_id"] == world.cust_a["id"]
               for c in changes if c["kind"] == "visit")
    # nor with a forged cursor pointing anywhere in the shared feed
    for seq in (0, 1, 2, 3, 5, 10**9):
        resp = world.a.pull(cursor=encode_cursor(seq, world.archive.epoch))
        assert resp.status_code == 200
        for needle in (world.cust_b["id"], world.visit_b, "Bravo", "B-only"):
            assert needle not in resp.text


# --- customer import: one bad row imports nothing -------------------------------------------

GOOD_ROWS = "name,grade,phone,owner\nGood One,A,021-5555 0101,Rep A\nGood Two,B,,\n"
BAD_CSVS: dict[str, tuple[str | bytes, str]] = {
    "bad grade": (GOOD_ROWS + "Bad Grade,Q,,\n", ":4: grade"),
    "unknown owner": (GOOD_ROWS + "Orphan,A,,Nobody\n", ":4: owner"),
    "blank name": (GOOD_ROWS + " ,A,,\n", ":4: name"),
    "control character": (GOOD_ROWS + "Bell\x07 Co,A,,\n", ":4: name"),
    "letters in phone": (GOOD_ROWS + "Phoney,A,call me,\n", ":4: phone"),
    "too many values": (GOOD_ROWS + "Extra,A,,,surplus\n", ":4: more values"),
    "unterminated quote": (GOOD_ROWS + '"Open Quote,A,,\n', "unexpected end"),
    "unknown column": ("name,owner_rep_id\nSneaky,rep_x\n", "unknown columns"),
    "no name column": ("grade\nA\n", "`name` column"),
    "not utf-8": (GOOD_ROWS.encode() + "Bad,A,,\n".encode("utf-16"), "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_imports_nothing(world: World, tmp_path: Path, case: str) -> None:
    content, says = BAD_CSVS[case]
    path = tmp_path / "customers.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with unchanged(world.data), pytest.raises(ArchiveError) as refused:
        world.archive.import_csv(path)
    assert refused.value.code == "invalid_csv" and says in refused.value.message, refused.value
    assert "\n" not in refused.value.message


def test_good_csv_imports_every_row(world: World, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(GOOD_ROWS, encoding="utf-8-sig")
    before = len(world.archive.list_customers())
    assert world.archive.import_csv(path) == 2
    assert len(world.archive.list_customers()) == before + 2


# --- against a real server process and the real CLIs ------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path, str]]:
    data = tmp_path_factory.mktemp("live") / "srv"
    archive = init_archive(data)
    rep = archive.add_rep("Rep Live")["id"]
    server = ServerProcess(data).start()
    home = data.parent / "agent"
    harness.lib_enroll(data, home, server.url, rep)
    try:
        yield server, home, rep
    finally:
        server.stop()


def _one_error_line(proc: Any, *hints: str) -> str:
    assert proc.returncode not in (0, 2), (proc.returncode, proc.stderr)  # 2 means "offline"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for hint in hints:
        assert hint in lines[0], (hint, lines[0])
    return str(lines[0])


def test_real_server_refuses_oversized_and_forged_requests(live: tuple[ServerProcess, Path, str]
                                                           ) -> None:
    server, home, _ = live
    config = AgentConfig.load(home)
    assert config is not None
    with unchanged(server.data):
        resp = httpx.post(server.url + "/v1/push", content=b" " * (MAX_BODY_BYTES + 1),
                          headers={"content-type": "application/json"}, timeout=30)
        assert_json_error(resp, 413, "body_too_large")
        resp = httpx.post(server.url + "/v1/enroll", content=b" " * (MAX_BODY_BYTES + 1),
                          headers={"content-type": "application/json"}, timeout=30)
        assert_json_error(resp, 413, "body_too_large")
        forged = Transport(server.url, config.device_id, Ed25519PrivateKey.generate(),
                           b64d(config.server_sign_public_key))
        with pytest.raises(ServerRefused) as refused:
            forged.request("POST", "/v1/push", payload=_ops(customer_create()))
        forged.close()
        assert refused.value.status == 401 and refused.value.code == "unauthorized"
    transport = open_transport(home, config)  # the real device key works
    try:
        assert transport.request("GET", "/v1/whoami")["device_id"] == config.device_id
    finally:
        transport.close()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        device = SignedDevice(client, config.device_id, config.rep_id, load_sign_key(home))
        with unchanged(server.data, nonces=1):
            resp = device.push(_gzip_bomb(64 * 2**20), extra={"content-encoding": "gzip"})
            assert_json_error(resp, 413, "body_too_large")


def test_plain_http_to_a_remote_host_needs_insecure(live: tuple[ServerProcess, Path, str],
                                                    tmp_path: Path) -> None:
    server, _, rep = live
    code, _ = open_archive(server.data).create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "laptop"
    proc = run([AGENT, "enroll", "--server", "http://10.20.30.40:8700", "--code", code,
                "--home", str(home)], check=False)
    _one_error_line(proc, "https://", "--insecure")
    assert not (home / "config.json").exists()
    with pytest.raises(ValueError, match="--insecure"):
        check_url("http://fieldvault.example.com", insecure=False)
    assert check_url("https://fieldvault.example.com/", insecure=False).startswith("https://")
    assert check_url("http://10.20.30.40:8700", insecure=True) == "http://10.20.30.40:8700"
    # With --insecure the agent goes ahead. The address is IPv4-mapped loopback, which
    # the agent does not count as loopback, so this still only talks to 127.0.0.1.
    url = f"http://[::ffff:127.0.0.1]:{server.port}"
    proc = run([AGENT, "enroll", "--server", url, "--code", code, "--home", str(home),
                "--insecure", "--json"], check=False)
    if proc.returncode == 2:
        pytest.skip("IPv4-mapped IPv6 is not routable here")
    assert proc.returncode == 0, proc.stderr


def test_enrolling_with_a_bad_code_fails_cleanly(live: tuple[ServerProcess, Path, str],
                                                 tmp_path: Path) -> None:
    server, _, _ = live
    home = tmp_path / "laptop"
    with unchanged(server.data):
        proc = agent_cli(home, "enroll", "--server", server.url, "--code", "ZZZZ-ZZZZ-ZZZZ",
                         check=False)
    _one_error_line(proc, "ask your admin")
    assert not (home / "config.json").exists()


def test_server_cli_rejects_bad_input_and_changes_nothing(live: tuple[ServerProcess, Path, str],
                                                          tmp_path: Path) -> None:
    server, _, rep = live
    data = server.data
    csv = tmp_path / "customers.csv"
    csv.write_text("name,grade,phone,owner\n"
                   "Good One,A,021-5555 0101,Rep Live\n"
                   "Bad Grade,Q,021-5555 0102,\n"
                   "Good Two,B,,\n", encoding="utf-8")
    with unchanged(data):
        _one_error_line(server_cli(data, "customer", "add", "--name", "", check=False), "name")
        _one_error_line(server_cli(data, "customer", "add", "--name", "X", "--owner", "nobody",
                                   check=False), "rep list")
        _one_error_line(server_cli(data, "customer", "import", str(csv), check=False),
                        "customers.csv:3", "grade")
        # a usage mistake is reported the same way, not as a multi-line usage box
        _one_error_line(server_cli(data, "customer", "add", check=False), "--name", "--help")
    assert open_archive(data).list_customers() == []


def test_agent_cli_rejects_bad_input(live: tuple[ServerProcess, Path, str],
                                     tmp_path: Path) -> None:
    server, home, _ = live
    _one_error_line(agent_cli(home, "visit", "log", "--customer", "nobody", "--purpose",
                              "order", "--summary", "x", check=False), "fieldvault sync")
    _one_error_line(agent_cli(home, "visit", "log", "--customer", "nobody", "--purpose",
                              "sightseeing", "--summary", "x", check=False), "--purpose")
    with harness.open_store(home) as store:
        assert store.counts()["visits"] == 0 and store.pending_ops(10) == []
    # a home that was never enrolled: says how to enroll, and exits 1, not 2 ("offline")
    _one_error_line(agent_cli(tmp_path / "never-enrolled", "sync", check=False),
                    "fieldvault enroll")
