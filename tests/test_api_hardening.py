"""Issue 8 findings 3, 6, 8, 11, 12, 13 and 14, tried as an attacker and an API client
would: bodies capped before parsing and authentication before validation, the device
id inside the signature and one device per key, strict numbers and types, a usable
OpenAPI document, quiet client disconnects.

In process (the real app under TestClient) where the answer is the point; against a
real `fieldvault-server serve` where memory, sockets and logs are."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from schema import signing
from server.cli import app as server_app
from server.rules import Archive

from .harness import (
    ServerProcess,
    SignedDevice,
    archive_of,
    assert_json_error,
    customer_create,
    enroll_device,
    init_server,
    make_client,
    raw_public,
    server_cli,
    visit_create,
)

MiB = 1024 * 1024


@dataclass
class World:
    client: Any
    archive: Archive
    a: SignedDevice
    customer: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("hardening") / "srv"
    client = make_client(data)
    archive = archive_of(client)
    rep = archive.add_rep("Rep A")["id"]
    from schema.models import CustomerCreate

    customer = archive.add_customer(CustomerCreate(name="Alpha Co"), rep)
    yield World(client, archive, enroll_device(client, archive, rep), customer)
    client.close()


def hr_token(archive: Archive) -> str:
    return archive.create_hr_token("conformance")  # type: ignore[no-any-return]


# --- finding 3: authentication before the body is validated ---------------------------

BAD_BODIES = {"not json": b"{not json", "wrong shape": b'{"x": [1, 2, 3]}', "empty": b""}
SIGNED_ROUTES = ["/v1/lease", "/v1/push", "/v1/reconcile", "/v1/wipe-receipt"]


@pytest.mark.parametrize("route", [*SIGNED_ROUTES, "/v1/hr/departures"])
@pytest.mark.parametrize("body", list(BAD_BODIES))
def test_bad_body_without_credentials_is_401_not_422(world: World, route: str, body: str) -> None:
    resp = world.client.post(route, content=BAD_BODIES[body],
                             headers={"content-type": "application/json"})
    assert_json_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("body", list(BAD_BODIES))
def test_bad_body_with_a_wrong_hr_token_is_401(world: World, body: str) -> None:
    resp = world.client.post("/v1/hr/departures", content=BAD_BODIES[body], headers={
        "content-type": "application/json", "authorization": "Bearer not-a-token"})
    assert_json_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("route", ["/v1/lease", "/v1/wipe-receipt"])
def test_bad_body_with_a_bad_signature_is_401(world: World, route: str) -> None:
    forger = Ed25519PrivateKey.generate()
    resp = world.a.send("POST", route, b"{not json", key=forger)
    assert_json_error(resp, 401, "unauthorized")


def test_signed_bad_body_is_still_422(world: World) -> None:
    assert_json_error(world.a.send("POST", "/v1/lease", b"{not json"), 422, "invalid_request")


# --- finding 6: the device id is signed; one device per key ---------------------------

def test_signature_names_the_device(world: World) -> None:
    a = world.a
    ts, nonce = str(int(time.time())), secrets.token_urlsafe(18)
    # The same key signing the message of another device id is refused...
    sig = a.key.sign(signing.request_message("GET", "/v1/whoami", ts, nonce, b"",
                                             device_id="dev_someoneelse"))
    resp = a.client.get("/v1/whoami", headers={
        signing.HDR_DEVICE: a.device_id, signing.HDR_TIMESTAMP: ts, signing.HDR_NONCE: nonce,
        signing.HDR_SIGNATURE: signing.b64e(sig)})
    assert_json_error(resp, 401, "unauthorized")
    # ...and so is the old message that did not name the device at all.
    old = "\n".join(["FV1-REQ", "GET", "/v1/whoami", ts, nonce, signing.body_digest(b"")])
    resp = a.client.get("/v1/whoami", headers={
        signing.HDR_DEVICE: a.device_id, signing.HDR_TIMESTAMP: ts,
        signing.HDR_NONCE: secrets.token_urlsafe(18),
        signing.HDR_SIGNATURE: signing.b64e(a.key.sign(old.encode()))})
    assert_json_error(resp, 401, "unauthorized")
    assert a.send("GET", "/v1/whoami").status_code == 200


def _enroll(world: World, code: str, sign: str, box: str) -> httpx.Response:
    return world.client.post("/v1/enroll", json={
        "code": code, "device_name": "copy", "sign_public_key": sign, "box_public_key": box})


@pytest.mark.parametrize("reused", ["sign", "box"])
def test_a_public_key_enrolls_one_device_only(world: World, reused: str) -> None:
    from datetime import timedelta

    first_sign, first_box = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    rep = world.a.rep_id
    code, _ = world.archive.create_enroll_code(rep, timedelta(hours=1))
    assert _enroll(world, code, raw_public(first_sign), raw_public(first_box)).status_code == 200
    code, _ = world.archive.create_enroll_code(rep, timedelta(hours=1))
    fresh_sign, fresh_box = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    sign = raw_public(first_sign if reused == "sign" else fresh_sign)
    box = raw_public(first_box if reused == "box" else fresh_box)
    assert_json_error(_enroll(world, code, sign, box), 409, "key_in_use")
    # The refusal did not burn the code: the same code enrolls fresh keys.
    assert _enroll(world, code, raw_public(fresh_sign), raw_public(fresh_box)).status_code == 200


# --- finding 8: numbers are ASCII digits ---------------------------------------------

@pytest.mark.parametrize("stamp", ["+123", " 1", "1_000"])
def test_malformed_timestamp_is_401(world: World, stamp: str) -> None:
    headers = world.a.headers("GET", "/v1/whoami", b"")
    headers[signing.HDR_TIMESTAMP] = stamp
    assert_json_error(world.client.get("/v1/whoami", headers=headers), 401, "unauthorized")


@pytest.mark.parametrize("seq", ["²", "١٢", "12\n", "-1", "9" * 40])
def test_non_ascii_digit_cursor_is_400(world: World, seq: str) -> None:
    cursor = base64.urlsafe_b64encode(f"1:{world.archive.epoch}:{seq}".encode()).decode()
    resp = world.a.send("GET", f"/v1/pull?cursor={cursor.rstrip('=')}")
    assert_json_error(resp, 400, "invalid_cursor")


def test_a_cursor_of_another_archive_epoch_is_409_and_one_of_this_epoch_pulls(world: World) -> None:
    """The pull judges the cursor by the epoch it reads with the page (one transaction)."""
    ours = base64.urlsafe_b64encode(f"1:{world.archive.epoch}:0".encode()).decode()
    assert world.a.send("GET", f"/v1/pull?cursor={ours.rstrip('=')}").status_code == 200
    other = base64.urlsafe_b64encode(f"1:{'0' * 32}:0".encode()).decode()
    resp = world.a.send("GET", f"/v1/pull?cursor={other.rstrip('=')}")
    assert_json_error(resp, 409, "epoch_changed")


@pytest.mark.parametrize("limit", ["+5", "%2B5", "1_0", "%205", "5%20", "%EF%BC%95", "0x10",
                                   "5.0", ""])
def test_lax_query_integer_is_422(world: World, limit: str) -> None:
    """`limit` is ASCII digits only: pydantic's lax int parsing took `+5` and `1_0`."""
    resp = world.a.send("GET", f"/v1/pull?limit={limit}")
    assert_json_error(resp, 422, "invalid_request")


def test_plain_query_integer_is_accepted(world: World) -> None:
    assert world.a.send("GET", "/v1/pull?limit=0005").status_code == 200


# --- finding 11: integers are bounded; finding 13: types are strict ------------------

def _push(world: World, *ops: dict[str, Any]) -> httpx.Response:
    # json, not orjson: orjson refuses integers past 64 bits, which is part of the test
    return world.a.send("POST", "/v1/push", json.dumps({"ops": list(ops)}).encode())


def _visit(world: World) -> dict[str, Any]:
    return visit_create(world.customer["id"])


@pytest.mark.parametrize("field", ["seq", "base_rev"])
@pytest.mark.parametrize("value", [2**63, 2**64, 2**53 + 1])
def test_huge_integers_are_422(world: World, field: str, value: int) -> None:
    op = {**_visit(world), field: value}
    assert_json_error(_push(world, op), 422, "invalid_request")


def test_huge_integers_elsewhere_are_422(world: World) -> None:
    body = orjson.dumps({"customers": [[world.customer["id"], 2**63]]})
    assert_json_error(world.a.send("POST", "/v1/reconcile", body), 422, "invalid_request")
    assert_json_error(world.a.send("POST", "/v1/lease", b'{"have_epoch": 9223372036854775808}'),
                      422, "invalid_request")


LOOSE = {
    "have_epoch false": ("/v1/lease", b'{"have_epoch": false}'),
    "have_epoch as text": ("/v1/lease", b'{"have_epoch": "1"}'),
    "have_epoch as float": ("/v1/lease", b'{"have_epoch": 1.0}'),
}


@pytest.mark.parametrize("case", list(LOOSE))
def test_loose_types_are_refused(world: World, case: str) -> None:
    route, body = LOOSE[case]
    assert_json_error(world.a.send("POST", route, body), 422, "invalid_request")


@pytest.mark.parametrize("change", [
    {"at": 0}, {"at": 1767225600.5}, {"seq": True}, {"seq": "7"}, {"base_rev": False},
    {"data": {"name": "Acme", "grade": 1}},
])
def test_loose_op_fields_are_refused(world: World, change: dict[str, Any]) -> None:
    assert_json_error(_push(world, {**customer_create("Acme"), **change}), 422, "invalid_request")


@pytest.mark.parametrize("change", [{"planned": 1}, {"started_at": 1767225600}])
def test_loose_visit_fields_are_refused(world: World, change: dict[str, Any]) -> None:
    op = _visit(world)
    op["data"].update(change)
    assert_json_error(_push(world, op), 422, "invalid_request")


def test_iso_times_are_still_accepted(world: World) -> None:
    op = _visit(world)
    # Within the rep's ownership window of the card (finding 7): now, in UTC+8.
    start = datetime.now(timezone(timedelta(hours=8)))
    op["data"]["started_at"] = start.isoformat()
    op["data"]["ended_at"] = (start + timedelta(seconds=1)).isoformat()
    resp = _push(world, op)
    assert resp.status_code == 200, resp.text
    assert resp.json()["results"][0]["status"] == "accepted", resp.text


# --- finding 12: a usable OpenAPI document ---------------------------------------------

def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


EXPECTED_ERRORS = {
    ("post", "/v1/push"): {"400", "401", "403", "409", "413", "415", "422", "503"},
    ("get", "/v1/pull"): {"400", "401", "403", "409", "422"},
    ("post", "/v1/push/verdicts"): {"400", "401", "403", "413", "415", "422"},
    ("post", "/v1/lease"): {"401", "403", "413", "422", "503"},
    ("post", "/v1/enroll"): {"403", "409", "413", "422"},
    ("post", "/v1/hr/departures"): {"401", "404", "413", "422"},
    ("get", "/v1/hr/departures/{rep}"): {"401", "404"},
    ("post", "/v1/wipe-receipt"): {"401", "403", "409", "413", "422"},
}


def test_openapi_refs_resolve_and_errors_are_documented(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, f"{ref} does not resolve"
    assert not any("$defs" in s for s in schemas.values())
    for name in ("Grade", "VisitCreateOp", "PushRequest", "ErrorBody"):
        assert name in schemas, name
    assert set(schemas["ErrorBody"]["required"]) == {"error", "message"}
    for (method, path), statuses in EXPECTED_ERRORS.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, statuses - set(responses))
        for status in statuses:
            content = responses[status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    body = spec["paths"]["/v1/push"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PushRequest"}
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_405_keeps_its_allow_header(world: World) -> None:
    resp = world.client.put("/v1/push")
    assert_json_error(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "POST"


# --- against a real server: memory, sockets, logs --------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data = tmp_path_factory.mktemp("hardening-live") / "srv"
    init_server(data)
    token = server_cli(data, "hr-token", "--name", "hardening")["token"]
    server = ServerProcess(data, replica="none").start()
    try:
        yield server, token
    finally:
        server.stop()


def _rss_kib(pgid: int) -> int:
    """Resident memory of every process in the server's process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _stream(total: int) -> Iterator[bytes]:
    chunk = b"x" * MiB
    for _ in range(total // MiB):
        yield chunk


@pytest.mark.parametrize("route", ["/v1/lease", "/v1/push", "/v1/wipe-receipt",
                                   "/v1/hr/departures", "/v1/enroll"])
def test_huge_streamed_body_is_refused_early_and_memory_stays_bounded(
    live: tuple[ServerProcess, str], route: str,
) -> None:
    server, token = live
    assert server.proc is not None
    before = _rss_kib(server.proc.pid)
    sent = 0

    def counted() -> Iterator[bytes]:
        nonlocal sent
        for chunk in _stream(400 * MiB):
            sent += len(chunk)
            yield chunk

    started = time.monotonic()
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    resp = httpx.post(server.url + route, content=counted(), headers=headers, timeout=60)
    elapsed = time.monotonic() - started
    if route in ("/v1/hr/departures", "/v1/enroll"):  # a valid token, or no credentials
        assert_json_error(resp, 413, "body_too_large")
    else:  # not signed: refused on its headers, before its body is read
        assert_json_error(resp, 401, "unauthorized")
    after = _rss_kib(server.proc.pid)
    # The server hung up long before the 400 MiB were sent, and held none of it.
    assert sent < 100 * MiB, sent
    assert elapsed < 20, elapsed
    assert after - before < 100 * 1024, (before, after)


def test_declared_huge_body_is_refused_before_reading(live: tuple[ServerProcess, str]) -> None:
    server, _ = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/lease HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 419430400\r\n\r\n")
        reply = b""
        for _ in range(100):  # the server answers and hangs up
            part = s.recv(65536)
            if not part:
                break
            reply += part
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply
    assert orjson.loads(body)["error"] == "body_too_large"


def test_client_disconnect_mid_body_logs_no_traceback(live: tuple[ServerProcess, str]) -> None:
    server, _ = live
    for route in ("/v1/push", "/v1/lease", "/v1/enroll", "/v1/hr/departures"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 5000\r\n\r\n".encode() + b'{"ops": [')
        # The server answers the next request, so it has dealt with the broken one.
    for _ in range(3):
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    log = server.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-4000:]


@pytest.mark.parametrize("stamp", [b"\xb2", b"\xb9\xb2\xb3", "\u0661\u0662".encode()])
def test_non_ascii_digit_timestamp_is_401(live: tuple[ServerProcess, str], stamp: bytes) -> None:
    """Raw bytes on a socket, as an attacker sends them (b"\\xb2" reads as "²")."""
    server, _ = live
    data = server.data
    rep = server_cli(data, "rep", "add", "--name", f"Rep {secrets.token_hex(3)}")["id"]
    code = server_cli(data, "enroll-code", rep)["code"]
    key = Ed25519PrivateKey.generate()
    enrolled = httpx.post(server.url + "/v1/enroll", json={
        "code": code, "device_name": "x", "sign_public_key": raw_public(key),
        "box_public_key": raw_public(X25519PrivateKey.generate())}, timeout=10).json()
    request = (b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"FV-Device: " + enrolled["device_id"].encode() + b"\r\n"
               b"FV-Nonce: " + secrets.token_urlsafe(18).encode() + b"\r\n"
               b"FV-Signature: AAAA\r\nFV-Timestamp: " + stamp + b"\r\n\r\n")
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request)
        for _ in range(100):
            part = s.recv(65536)
            if not part:
                break
            reply += part
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), reply
    assert b"application/json" in head, reply
    assert orjson.loads(body)["error"] == "unauthorized"


def test_commands_the_openapi_document_names_exist(world: World) -> None:
    """The published document tells HR how to get a token; it named
    `fieldvault-server hr-token create`, a command that does not exist."""
    spec_text = world.client.get("/openapi.json").text
    named = re.findall(r"`fieldvault-server ([a-z][a-z-]*(?: [a-z][a-z-]*)*)", spec_text)
    assert named, "the HR token scheme should say which command makes a token"
    group = typer.main.get_command(server_app)
    for words in named:
        command: Any = group
        for word in words.split():  # arguments are in capitals (REP): these are all names
            assert hasattr(command, "commands"), f"`fieldvault-server {words}`: {word!r} extra"
            assert word in command.commands, f"`fieldvault-server {words}`: no {word!r}"
            command = command.commands[word]
