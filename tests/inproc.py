"""In-process helpers: the FastAPI app on a tmp archive, devices that sign their own
requests, and snapshots of the archive for "this request changed nothing" checks."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from schema import signing
from schema.clock import Clock, iso
from server.app import create_app
from server.rules import Archive, init_archive
from server.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient

# Tables whose rows are bookkeeping of authentication, not archive data: a request
# that passes the signature check records its nonce and the device's last_seen_at.
AUTH_TABLES = ("nonces", "devices")


def raw_public(key: Ed25519PrivateKey | X25519PrivateKey) -> str:
    return signing.b64e(
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


@dataclass
class SignedDevice:
    """A device enrolled through the API, holding its own Ed25519 key."""

    client: TestClient | httpx.Client
    device_id: str
    rep_id: str
    key: Ed25519PrivateKey

    def headers(self, method: str, path_qs: str, body: bytes, *, ts: int | None = None,
                nonce: str | None = None, key: Ed25519PrivateKey | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if ts is None else ts)
        nonce = nonce or secrets.token_urlsafe(18)
        sig = (key or self.key).sign(signing.request_message(method, path_qs, stamp, nonce, body,
                                                             device_id=self.device_id))
        return {
            signing.HDR_DEVICE: self.device_id, signing.HDR_TIMESTAMP: stamp,
            signing.HDR_NONCE: nonce, signing.HDR_SIGNATURE: signing.b64e(sig),
            "content-type": "application/json",
        }

    def send(self, method: str, path_qs: str, body: bytes = b"",
             extra: dict[str, str] | None = None, **sign: Any) -> httpx.Response:
        headers = {**self.headers(method, path_qs, body, **sign), **(extra or {})}
        return self.client.request(method, path_qs, content=body, headers=headers)

    def push(self, ops: list[dict[str, Any]] | Any, **kw: Any) -> httpx.Response:
        body = ops if isinstance(ops, bytes) else orjson.dumps({"ops": ops})
        return self.send("POST", "/v1/push", body, **kw)

    def pull(self, cursor: str = "", limit: int = 2000) -> httpx.Response:
        return self.send("GET", f"/v1/pull?cursor={cursor}&limit={limit}")

    def pull_all(self) -> list[dict[str, Any]]:
        """Every change in scope from the start of the feed (bounded loop)."""
        changes: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(1000):
            resp = self.pull(cursor)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            changes += page["changes"]
            cursor = page["cursor"]
            if not page["more"]:
                return changes
        raise AssertionError("pull did not finish")


def make_client(data: Path, clock: Clock | None = None, **settings: Any) -> TestClient:
    """The real app, in process, on an initialized archive in `data`."""
    if not (data / "archive.db").exists():
        init_archive(data)
    return TestClient(create_app(Settings(data=data, **settings), clock))


def archive_of(client: TestClient) -> Archive:
    return client.app.state.archive  # type: ignore[attr-defined,no-any-return]


def enroll_device(client: TestClient | httpx.Client, archive: Archive,
                  rep: str) -> SignedDevice:
    """Create a one-time code for `rep` and enroll a fresh key pair with it over HTTP."""
    code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
    key = Ed25519PrivateKey.generate()
    resp = client.post("/v1/enroll", json={
        "code": code, "device_name": "test laptop", "sign_public_key": raw_public(key),
        "box_public_key": raw_public(X25519PrivateKey.generate()),
    })
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return SignedDevice(client, body["device_id"], body["rep_id"], key)


def snapshot(data: Path, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Row count of every table in the archive, plus a digest of each table's rows
    (except `skip`), read with plain sqlite3 on data/archive.db."""
    conn = sqlite3.connect(str(data / "archive.db"))
    try:
        # Litestream's own bookkeeping tables change whenever it checkpoints.
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' "
            "AND name NOT LIKE '\\_litestream%' ESCAPE '\\' ORDER BY name")]
        out: dict[str, Any] = {}
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            out[table] = len(rows)
            if table not in skip:
                digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
                out[table + "#rows"] = digest
        return out
    finally:
        conn.close()


def assert_json_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """A refusal: the given 4xx with a JSON body {"error": code, "message": ...}."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
    if code is not None:
        assert body["error"] == code, body
    return body


# --- wire operations, as dicts ------------------------------------------------------

def new_id() -> str:
    return secrets.token_hex(16)


_seq = iter(range(1, 10**9))


def op(kind: str, entity_id: str, data: dict[str, Any], *, base_rev: int = 0,
       at: str = "2026-03-01T09:00:00Z", op_id: str | None = None) -> dict[str, Any]:
    return {"op_id": op_id or new_id(), "seq": next(_seq), "kind": kind, "entity_id": entity_id,
            "base_rev": base_rev, "at": at, "data": data}


def visit_create(customer_id: str, visit_id: str | None = None, **data: Any) -> dict[str, Any]:
    # Now: a visit may be dated neither before its customer's card existed nor ahead
    # of the server's clock (archives on a manual clock pass their own times).
    payload = {"customer_id": customer_id, "started_at": iso(datetime.now(UTC)),
               "ended_at": None, "purpose": "order",
               "summary": "Ordered 200 units", **data}
    return op("visit.create", visit_id or new_id(), payload)


def customer_create(name: str = "新客户 Ltd", customer_id: str | None = None,
                    **data: Any) -> dict[str, Any]:
    return op("customer.create", customer_id or new_id(), {"name": name, **data})


def customer_update(customer_id: str, base_rev: int = 1, **data: Any) -> dict[str, Any]:
    return op("customer.update", customer_id, data, base_rev=base_rev)


class ThreadedServer:
    """The real app served over real HTTP on 127.0.0.1 by uvicorn in a thread, with an
    injected clock: for end-to-end checks of time-driven behaviour (leases, deadlines)
    through the agent's own transport, without sleeping."""

    def __init__(self, data: Path, clock: Clock | None = None, **settings: Any) -> None:
        import socket

        import uvicorn

        if not (data / "archive.db").exists():
            init_archive(data)
        settings.setdefault("revocation_check_s", 3600)
        self.app = create_app(Settings(data=data, **settings), clock)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False))
        self.thread: Any = None

    @property
    def archive(self) -> Archive:
        return self.app.state.archive  # type: ignore[no-any-return]

    def start(self, timeout: float = 20) -> ThreadedServer:
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("threaded server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
