"""The one test harness: real processes, library shortcuts, the app in process.

Sections, in order:
1. Real processes: `fieldvault-server serve` on 127.0.0.1 and runs of both CLIs.
2. Library shortcuts around real processes: CLI runs cost about half a second each,
   so tests use these for bulk set-up and for reading state, and keep the CLIs for
   the behaviour under test. The device is read through the agent's own `Store`
   (the only thing that can read the encrypted vault), the archive through its
   public methods.
3. The app in process: the real FastAPI app on a tmp archive (TestClient, or
   uvicorn in a thread with an injected clock), devices that sign their own requests.
4. Wire operations as dicts.
5. Raw archive storage, for the tests whose subject IS the storage: what the file
   holds at rest, "this request wrote nothing" digests, restores. Nothing else
   reads or writes the archive behind its methods.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent import sync as sync_mod
from agent.enroll import enroll as enroll_library
from agent.home import AgentConfig
from agent.store import Store
from schema import sealing, signing
from schema.clock import Clock, iso
from schema.enums import VisitPurpose
from schema.models import CustomerCreate, VisitCreate
from server.app import create_app
from server.archive.sqlite import ARCHIVE_FILE
from server.keys import load_or_create_box_key
from server.rules import Archive, init_archive, open_archive
from server.settings import Settings

from . import reaper

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient


# === 1. real processes ================================================================

BIN = Path(sys.executable).parent
SERVER = str(BIN / "fieldvault-server")
AGENT = str(BIN / "fieldvault")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], check: bool = True, timeout: float = 120,
        env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a CLI command; `check` fails the test with its stderr when it exits non-zero.
    `env`: variables added to this process's environment."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# The archive of each data folder whose archive is not archive.db inside it (set by
# `init_server(data, archive_url=URL)`): every helper here that takes a data folder
# (the CLIs, `archive`, `ServerProcess`) reaches that archive, so one test body runs
# on every backend.
_ARCHIVE_URLS: dict[Path, str] = {}
# One open Archive per PostgreSQL URL: each open is a connection pool, and tests poll.
_PG_ARCHIVES: dict[str, Archive] = {}


def archive_url_of(data: Path) -> str | None:
    """The archive URL `init_server` registered for `data`; None: archive.db in it."""
    return _ARCHIVE_URLS.get(Path(data).resolve())


def archive_env(data: Path) -> dict[str, str]:
    """The environment that points a server command at `data`'s archive. Through the
    environment, not argv: a PostgreSQL URL can carry a password."""
    url = archive_url_of(data)
    return {"FIELDVAULT_ARCHIVE_URL": url} if url else {}


def forget_archive(data: Path) -> None:
    """Close and unregister `data`'s archive (before its database is dropped)."""
    url = _ARCHIVE_URLS.pop(Path(data).resolve(), None)
    if url is not None and url in _PG_ARCHIVES:
        _PG_ARCHIVES.pop(url).close()


def server_cli(data: Path, *args: str, check: bool = True) -> Any:
    """Run `fieldvault-server ARGS --data DATA --json` (on DATA's archive) and return
    its JSON."""
    proc = run([SERVER, *args, "--data", str(data), "--json"], check=check, env=archive_env(data))
    return json.loads(proc.stdout) if proc.returncode == 0 else proc


def agent_cli(home: Path, *args: str, check: bool = True) -> Any:
    """Run `fieldvault ARGS --home HOME --json` and return its JSON."""
    proc = run([AGENT, *args, "--home", str(home), "--json"], check=check)
    return json.loads(proc.stdout) if proc.returncode == 0 else proc


class ServerProcess:
    """`fieldvault-server serve` as a real process on a loopback port, on the archive
    `init_server` registered for `data` unless `archive_url` names another. With
    `workers` > 1 it is uvicorn's supervisor and its worker processes: all of them
    form one process group, and stop/kill reach the whole group."""

    def __init__(self, data: Path, port: int | None = None, replica: str | None = None,
                 args: tuple[str, ...] = (), archive_url: str | None = None, workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.data = data
        self.args = args  # more `serve` options, e.g. ("--hr-inbox", DIR)
        self.replica = replica  # --replica URL for serve; None keeps the default file replica
        self.archive_url = archive_url or archive_url_of(data)
        self.workers = workers
        self.env = env or {}  # more FIELDVAULT_* settings, e.g. the revocation check period
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "serve.log"

    def start(self, timeout: float = 60) -> ServerProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [SERVER, "serve", "--data", str(self.data), "--port", str(self.port)]
        if self.replica is not None:
            cmd += ["--replica", self.replica]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        cmd += list(self.args)
        env = {**os.environ, **self.env}
        if self.archive_url:
            env["FIELDVAULT_ARCHIVE_URL"] = self.archive_url  # not argv: it may hold a password
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        reaper.watch_group(self.proc.pid)  # killed even if this test process dies first
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()}")
            if self._answers() and self._started_workers(offset) >= self.workers:
                return self
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server did not come up:\n{self.log.read_text()}")

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def _started_workers(self, offset: int) -> int:
        """How many worker processes finished starting since `offset` of the log: one
        answer to /healthz proves only that one of them is up."""
        if self.workers == 1:
            return 1
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().count(b"Application startup complete")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._wait_group_gone()

    def kill(self) -> None:
        """SIGKILL to every process of the server (supervisor, workers, Litestream): no
        chance to clean up, like a power cut of the machine."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._wait_group_gone()

    def _wait_group_gone(self, timeout: float = 15) -> None:
        """Until no live process is left in the server's group: a worker orphaned by
        its supervisor's death would keep the port (and a SQLite lock) from the next
        start. SIGKILL any straggler (a worker outlives a SIGTERMed supervisor only
        when something went wrong)."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        deadline = time.monotonic() + timeout
        while _live_group_members(pgid):
            if time.monotonic() > deadline:
                raise AssertionError(f"server processes {_live_group_members(pgid)} outlived it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.02)
        reaper.forget_group(pgid)


def _live_group_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that are not zombies (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


@dataclass
@dataclass
class Backend:
    """Where a test's server keeps its archive: SQLite in `data` with one API process, or
    a PostgreSQL database served by `workers` processes. `data` holds the server's keys
    either way, and the harness reaches the archive from it (harness.init_server)."""

    name: str
    data: Path
    url: str | None
    workers: int

    @property
    def sqlite(self) -> bool:
        return self.url is None

    def server(self, **kw: Any) -> ServerProcess:
        """A `serve` process on this archive with this backend's number of workers."""
        return ServerProcess(self.data, workers=self.workers, **kw)

    def archive(self) -> Archive:
        return archive(self.data)


def init_server(data: Path, archive_url: str | None = None) -> dict[str, Any]:
    """`fieldvault-server init`: the archive (archive.db in `data`, or `archive_url`) and
    the server's keys in `data`. An `archive_url` is remembered for `data`."""
    if archive_url is not None:
        _ARCHIVE_URLS[Path(data).resolve()] = archive_url
    return server_cli(data, "init")  # type: ignore[no-any-return]


def add_rep(data: Path, name: str, **opts: str) -> str:
    args = ["rep", "add", "--name", name]
    for key, value in opts.items():
        args += [f"--{key}", value]
    return server_cli(data, *args)["id"]  # type: ignore[no-any-return]


def enroll(data: Path, home: Path, url: str, rep: str) -> dict[str, Any]:
    code = server_cli(data, "enroll-code", rep)["code"]
    return agent_cli(home, "enroll", "--server", url, "--code", code)  # type: ignore[no-any-return]


# === 2. library shortcuts around real processes =======================================

def archive(data: Path) -> Archive:
    """`data`'s archive through its public methods, on whichever backend it lives."""
    url = archive_url_of(data)
    if url is None:
        return open_archive(data)
    if url not in _PG_ARCHIVES:
        _PG_ARCHIVES[url] = open_archive(data, url=url)
    return _PG_ARCHIVES[url]


def add_customers(data: Path, owner: str | None, names: list[str]) -> list[dict[str, Any]]:
    arch = archive(data)
    return [arch.add_customer(CustomerCreate(name=name), owner) for name in names]


def lib_enroll(data: Path, home: Path, url: str, rep_id: str) -> AgentConfig:
    code, _ = archive(data).create_enroll_code(rep_id, timedelta(hours=1))
    config = enroll_library(home, url, code)
    Store.open(home, config.rep_id).close()
    return config


@contextmanager
def open_store(home: Path) -> Iterator[Store]:
    config = AgentConfig.load(home)
    assert config is not None, f"{home} is not enrolled"
    store = Store.open(home, config.rep_id)
    try:
        yield store
    finally:
        store.close()


def lib_sync(home: Path) -> sync_mod.SyncReport:
    """One in-process sync, exactly what `fieldvault sync` does minus the process."""
    config = AgentConfig.load(home)
    assert config is not None
    with open_store(home) as store:
        transport = sync_mod.open_transport(home, config)
        try:
            return sync_mod.sync(store, transport)
        finally:
            transport.close()


def log_visits(home: Path, customer_ids: list[str], count: int, prefix: str,
               start: int = 0, fsync: bool = True) -> list[dict[str, Any]]:
    """Log `count` visits quickly through the library; summaries are unique per index.
    `fsync=False`: setup of a long backlog, without the fsync of each save."""
    rows = []
    with open_store(home) as store:
        if not fsync:
            store.conn.execute("PRAGMA synchronous = OFF")
        for i in range(start, start + count):
            rows.append(store.log_visit(VisitCreate(
                customer_id=customer_ids[i % len(customer_ids)], purpose=VisitPurpose.service,
                summary=f"{prefix} visit #{i}", outcome=f"outcome {i}",
                started_at=datetime.now(UTC),
            )))
    return rows


def device_rows(home: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(customers by id, visits by id) as the agent's vault holds them."""
    with open_store(home) as store:
        customers = {r["id"]: r for r in store.db.query("SELECT * FROM customers")}
        visits = {r["id"]: r for r in store.db.query("SELECT * FROM visits")}
    return customers, visits


# Store.outbox_counts of a laptop with nothing left to send nor to hear about.
EMPTY_OUTBOX = {"pending": 0, "received": 0, "rejected": 0, "quarantined": 0}


def outbox_counts(home: Path) -> dict[str, int]:
    with open_store(home) as store:
        return store.outbox_counts()


def check_in(home: Path) -> None:
    """One lease check-in of an enrolled agent home, as `fieldvault sync` starts with."""
    config = AgentConfig.load(home)
    assert config is not None
    transport = sync_mod.open_transport(home, config)
    try:
        sync_mod.check_in(home, config, transport)
    finally:
        transport.close()


# === 3. the app in process ============================================================

def sealed_chunk(data: Path, device_id: str, content: bytes = b"x",
                 content_type: str = "image/png") -> dict[str, Any]:
    """A whole small photo as a laptop seals it to the server of `data` (its box key),
    as the body of POST /v1/final-flush/attachments (agent/sealed_attachments.py)."""
    sha = hashlib.sha256(content).hexdigest()
    box = load_or_create_box_key(data).public_key().public_bytes_raw()
    aad = sealing.attachment_aad(device_id, sha, len(content), content_type, 0)
    return {"sha256": sha, "size": len(content), "content_type": content_type, "offset": 0,
            "sealed": sealing.SealingKey(box).seal_bytes(content, aad)}


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
    if not (data / ARCHIVE_FILE).exists():
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


class ThreadedServer:
    """The real app served over real HTTP on 127.0.0.1 by uvicorn in a thread, with an
    injected clock: for end-to-end checks of time-driven behaviour (leases, deadlines)
    through the agent's own transport, without sleeping."""

    def __init__(self, data: Path, clock: Clock | None = None, **settings: Any) -> None:
        if not (data / ARCHIVE_FILE).exists():
            init_archive(data)
        settings.setdefault("revocation_check_s", 3600)
        self.app = create_app(Settings(data=data, **settings), clock)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False))
        self.thread: Any = None

    @property
    def archive(self) -> Archive:
        return self.app.state.archive  # type: ignore[no-any-return]

    def start(self, timeout: float = 20) -> ThreadedServer:
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


# === 4. wire operations, as dicts =====================================================

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


# === 5. raw archive storage (the storage itself under test) ===========================

# Tables whose rows are bookkeeping of authentication, not archive data: a request
# that passes the signature check records its nonce and the device's last_seen_at.
AUTH_TABLES = ("nonces", "devices")


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


@contextmanager
def raw_archive(data: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the archive file in `data`, behind every rule of
    the archive. Only for tests whose subject is the storage itself: tampering with
    the audit chain, what the file holds at rest, its integrity after a kill or a
    restore. Commits when the block ends without an error."""
    uri = f"file:{data / ARCHIVE_FILE}" + ("?mode=ro" if readonly else "")
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        with conn:
            yield conn


def stored_rows(data: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows as the archive file stores them, read-only (see `raw_archive`)."""
    with raw_archive(data, readonly=True) as conn:
        return [dict(r) for r in conn.execute(sql, params)]


def integrity_check(data: Path) -> str:
    """SQLite's own check of the archive file: "ok" when it is sound."""
    return str(stored_rows(data, "PRAGMA integrity_check")[0]["integrity_check"])


def fold_wal(data: Path) -> None:
    """Fold the write-ahead log into the archive file, so that copying the file alone
    copies the whole archive."""
    with raw_archive(data) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
