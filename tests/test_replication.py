"""The durable master archive (issue 5): Litestream replication, restore (latest and
point in time), and agents that put back what a restore lost.

Everything runs for real: `fieldvault-server serve` under the Litestream binary,
`fieldvault sync`, `fieldvault-server restore` and `backup status`, and for the S3
replica moto's S3 server, started here on 127.0.0.1. No traffic leaves the machine:
every endpoint is a loopback address, S3 credentials come from the environment.
Bulk data is typed through the agent library (fast) and synced with the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.enroll import enroll
from agent.store import Store, open_vault
from schema.clock import SystemClock
from schema.enums import OpKind, OpStatus
from schema.models import CustomerCreate, CustomerPatch, OpResult, VisitCreate, VisitVoid
from server import replication
from server.archive.sqlite import ARCHIVE_FILE
from server.keys import load_or_create_signing_key
from server.rules import Archive, init_archive, open_archive

from . import harness
from .harness import SERVER, ServerProcess, agent_cli, free_port, run, server_cli

pytestmark = pytest.mark.slow

BUCKET = "fieldvault-test"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "fieldvault-test", "AWS_SECRET_ACCESS_KEY": "fieldvault-test",
           "AWS_EC2_METADATA_DISABLED": "true"}
CARD_FIELDS = list(CustomerCreate.model_fields)


# --- helpers ----------------------------------------------------------------------


@contextmanager
def archive(data: Path) -> Iterator[Archive]:
    """The archive through the library; its connection is closed on the way out, so the
    test process never holds the file open while a server is killed or a restore runs."""
    arch = open_archive(data)
    try:
        yield arch
    finally:
        arch.close()


def make_archive(data: Path) -> Path:
    """`fieldvault-server init`, through the library (a CLI run costs a second or two)."""
    init_archive(data).close()
    load_or_create_signing_key(data)
    return data


def new_agent(data: Path, server: ServerProcess, name: str) -> Path:
    """A rep and their enrolled laptop (set-up through the libraries: CLI runs are slow)."""
    with archive(data) as arch:
        rep = arch.add_rep(name)["id"]
        code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = data.parent / f"agent-{name}"
    enroll(home, server.url, code)
    return home


@contextmanager
def vault(home: Path) -> Iterator[Store]:
    store = Store.open(home)
    try:
        yield store
    finally:
        store.close()


def type_batch(home: Path, tag: str, visits: int, new_customers: int = 1,
               edit_existing: bool = False) -> None:
    """What a rep types on the laptop between two syncs: new cards, visits spread over
    them and the cards already there, and optionally an edit of an older card."""
    with vault(home) as store:
        # Test speed only: the laptop's per-visit fsync is not what is under test here.
        store.conn.execute("PRAGMA synchronous = OFF")
        older = [r["id"] for r in store.db.query("SELECT id FROM customers ORDER BY id")]
        made = [store.add_customer(CustomerCreate(name=f"{tag} customer {i}"))["id"]
                for i in range(new_customers)]
        if edit_existing:
            store.edit_customer(older[0], CustomerPatch(notes=f"edited in {tag}"))
        targets = made + older
        now = datetime.now(UTC)
        for i in range(visits):
            store.log_visit(VisitCreate(customer_id=targets[i % len(targets)], purpose="service",
                                        summary=f"{tag} visit {i}", started_at=now))


def sync(home: Path) -> dict[str, Any]:
    report = agent_cli(home, "sync")
    assert isinstance(report, dict)
    return report


def on_device(home: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(customers, the rep's own visits) as the laptop holds them, by id."""
    with vault(home) as store:
        customers = {r["id"]: r for r in store.db.query("SELECT * FROM customers")}
        visits = {r["id"]: r for r in store.db.query("SELECT * FROM visits WHERE rep_id=?",
                                                       [store.rep_id])}
    return customers, visits


def customers_of(data: Path) -> list[dict[str, Any]]:
    """Every card of the archive, by id (read through the library, connection closed)."""
    with archive(data) as arch:
        return sorted(arch.iter_customers(), key=lambda r: r["id"])


def visits_of(data: Path) -> list[dict[str, Any]]:
    """Every visit of the archive, by id."""
    with archive(data) as arch:
        return sorted(arch.iter_visits(), key=lambda r: r["id"])


def devices_of(data: Path) -> list[dict[str, Any]]:
    with archive(data) as arch:
        return arch.list_devices()


def wait_replicated(data: Path, timeout: float = 30) -> dict[str, Any]:
    """Until the replica holds every transaction Litestream captured and nothing new
    has arrived for a while (Litestream captures and ships once a second)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        status = replication.backup_status(data, max_lag=60)
        if status.get("healthy") and status["lag_txns"] == 0:
            if status["txid"] != last:
                last, since = status["txid"], time.monotonic()
            elif time.monotonic() - since > 1.5:
                return status
        time.sleep(0.25)
    raise AssertionError(f"replica did not catch up: {replication.backup_status(data, max_lag=60)}")


def quiet_instant(data: Path) -> str:
    """A restore point strictly between what is written so far and what comes next.
    LTX timestamps have a one-second granularity: the instant is a whole second with
    nothing replicated in it, nor in the second before or after."""
    wait_replicated(data)
    time.sleep(1.1)
    at = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.2)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def lose_archive(data: Path) -> None:
    """The disk died: the archive and Litestream's local state are gone. The signing
    key is kept: it is backed up separately, and the agents pinned it."""
    for name in (ARCHIVE_FILE, f"{ARCHIVE_FILE}-wal", f"{ARCHIVE_FILE}-shm"):
        (data / name).unlink(missing_ok=True)
    litestream_dir = data / f".{ARCHIVE_FILE}-litestream"
    for path in sorted(litestream_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    if litestream_dir.exists():
        litestream_dir.rmdir()
    assert (data / "server_sign.pem").exists()


def restore(data: Path, replica: str, *extra: str) -> dict[str, Any]:
    out = server_cli(data, "restore", "--replica", replica, *extra)
    assert isinstance(out, dict)
    return out


def content(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return customers_of(data), visits_of(data)


def file_url(path: Path) -> str:
    return "file://" + str(path.resolve())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The `error: ...` lines a CLI wrote to stderr."""
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with an empty bucket; yields its endpoint URL.
    Credentials go through the environment, as in production."""
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                             "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "moto.log").read_text()
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "moto did not come up"
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


# --- round trips -------------------------------------------------------------------


def round_trip(tmp_path: Path, replica: str) -> Path:
    """Write through real syncs, stop cleanly, restore into a fresh directory: the
    restored archive passes integrity_check and holds exactly the same cards and visits.
    On the way, /healthz and /metrics show replication and the sync counters."""
    data = make_archive(tmp_path / "server")
    server = ServerProcess(data, replica=replica).start()
    try:
        home = new_agent(data, server, "Li Wei")
        type_batch(home, "morning", 120, new_customers=3)
        assert sync(home)["results"] == {"accepted": 123}
        type_batch(home, "afternoon", 30, new_customers=1, edit_existing=True)
        with vault(home) as store:
            store.void_visit(store.list_visits(limit=1)[0]["id"], VisitVoid(reason="duplicate"))
        report = sync(home)
        assert report["needs_attention"] == 0 and report["pushed"] == 33
        health = httpx.get(server.url + "/healthz", timeout=30).json()
        assert health["replication"]["replica"] == replica and health["archive_epoch"] == epoch(data)
        metrics = httpx.get(server.url + "/metrics", timeout=30).text
        assert 'fieldvault_push_ops_total{status="accepted"} 156.0' in metrics
        for name in ("fieldvault_pull_requests_total", "fieldvault_replica_txid",
                     "fieldvault_replica_lag_txns", "fieldvault_replica_healthy"):
            assert f"\n{name} " in metrics, name
        status = wait_replicated(data)
        assert status["replica"] == replica and status["errors"] == [] and status["txid"] > 1
    finally:
        server.stop()
    fresh = tmp_path / "restored"
    out = restore(fresh, replica)
    assert (out["customers"], out["visits"]) == (4, 150)
    assert harness.integrity_check(fresh) == "ok"
    assert content(fresh) == content(data)
    # The restored archive is a new epoch: agents that see it reconcile before trusting it.
    assert out["archive_epoch"] == epoch(fresh) != epoch(data)
    return data


def epoch(data: Path) -> str:
    with archive(data) as arch:
        return arch.epoch


def test_file_replica_round_trip(tmp_path: Path) -> None:
    data = round_trip(tmp_path, file_url(tmp_path / "other-disk" / "replica"))
    status = server_cli(data, "backup", "status")  # the admin's check, after the fact
    assert status["healthy"] and status["lag_txns"] == 0 and status["errors"] == []


def test_s3_replica_round_trip(tmp_path: Path, s3: str) -> None:
    data = round_trip(tmp_path, f"s3://{BUCKET}/fieldvault/archive?endpoint={s3}&region=us-east-1")
    # A bucket that does not exist is refused at start-up, in Litestream's words.
    proc = run([SERVER, "serve", "--data", str(data), "--port", str(free_port()),
                "--replica", f"s3://no-such-bucket/archive?endpoint={s3}"], check=False, timeout=60)
    assert proc.returncode == 1 and len(error_lines(proc)) == 1, proc.stderr
    assert "NoSuchBucket" in error_lines(proc)[0]


# --- disaster: the server's disk dies ------------------------------------------------


@dataclass(frozen=True)
class Crash:
    """The world right after the crash: server data, replica and laptops under `root`."""

    root: Path
    port: int
    at: str  # an instant between the first and the last batch
    reps: int = 3
    first: int = 800
    last: int = 200


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> Crash:
    """Three reps sync 3 x 1,000 visits in two batches; the server is SIGKILLed right
    after the last sync. Each test restores its own copy of this world."""
    world = Crash(root=tmp_path_factory.mktemp("disaster"), port=free_port(), at="")
    data = make_archive(world.root / "server")
    replica = file_url(world.root / "other-disk" / "replica")
    server = ServerProcess(data, port=world.port, replica=replica).start()
    try:
        homes = [new_agent(data, server, f"rep{i}") for i in range(world.reps)]
        for i, home in enumerate(homes):
            type_batch(home, f"rep{i} first", world.first, new_customers=3)
        for home in homes:
            assert sync(home)["results"] == {"accepted": world.first + 3}
        at = quiet_instant(data)
        for i, home in enumerate(homes):
            type_batch(home, f"rep{i} last", world.last, new_customers=1, edit_existing=True)
        for home in homes:
            assert sync(home)["results"] == {"accepted": world.last + 2}
    finally:
        server.kill()
    return replace(world, at=at)


@pytest.mark.parametrize("restore_to", ["latest", "before_last_batch"])
def test_disaster_agents_put_back_what_the_replica_lacks(
    crash: Crash, tmp_path: Path, restore_to: str
) -> None:
    """The server was SIGKILLed right after the last sync; now its archive files are
    deleted. The admin restores from the replica (the latest state, or a point before
    the last batch, so that the archive certainly lacks what the agents hold) and starts
    the server; the agents' next sync reconciles by itself. Then the archive holds every
    record every agent has, each exactly once."""
    world = tmp_path / "world"
    shutil.copytree(crash.root, world, symlinks=True)
    data, reps, first, last = world / "server", crash.reps, crash.first, crash.last
    replica = file_url(world / "other-disk" / "replica")
    homes = [world / f"agent-rep{i}" for i in range(reps)]
    at = crash.at if restore_to == "before_last_batch" else None
    lose_archive(data)
    before = [on_device(home) for home in homes]

    restored = restore(data, replica, *(["--timestamp", at] if at else []))
    assert harness.integrity_check(data) == "ok"
    if at:  # exactly the first batch: the last one exists only on the laptops now
        assert (restored["visits"], restored["customers"]) == (reps * first, reps * 3)
    server = ServerProcess(data, port=crash.port, replica=replica).start()
    try:
        reports = [sync(home) for home in homes]
        again = sync(homes[0])
    finally:
        server.stop()

    for report in reports:
        assert report["needs_attention"] == 0, report
        assert report["results"].keys() <= {"accepted"}, report
    if at:  # each agent put back its last batch: one new card, one edited card, the visits
        assert [r["reconciled"] for r in reports] == [{"customers": 2, "visits": last}] * reps
    # What the restore lacked was sent again, and nothing else.
    total = reps * (first + last)
    assert restored["visits"] + sum(r["reconciled"].get("visits", 0) for r in reports) == total
    assert again["pushed"] == 0 and again["reconciled"] == {}

    customers = {r["id"]: r for r in customers_of(data)}
    visits = visits_of(data)
    held_customers: dict[str, dict[str, Any]] = {}
    held_visits: dict[str, dict[str, Any]] = {}
    for home in homes:
        device_customers, device_visits = on_device(home)
        held_customers.update(device_customers)
        held_visits.update(device_visits)
    assert len(held_visits) == total and len(held_customers) == reps * 4
    assert [v["id"] for v in visits] == sorted(held_visits)  # every visit, none twice
    assert len({v["summary"] for v in visits}) == total  # none again under another id
    assert customers.keys() == held_customers.keys()
    for cid, card in held_customers.items():  # the edits made in the lost window too
        assert {k: customers[cid][k] for k in CARD_FIELDS} == {k: card[k] for k in CARD_FIELDS}
    # Put back as they were: a re-created card or visit keeps its creation time.
    for device_customers, device_visits in before:
        assert {c: customers[c]["created_at"] for c in device_customers} == {
            c: card["created_at"] for c, card in device_customers.items()}
        assert {v: visit["created_at"] for v, visit in device_visits.items()} == {
            r["id"]: r["created_at"] for r in visits if r["id"] in device_visits}
    archived = {v["id"]: v for v in visits}
    for vid, visit in held_visits.items():
        assert (archived[vid]["summary"], archived[vid]["customer_id"]) == (
            visit["summary"], visit["customer_id"])


# --- point in time, and a restored archive that replicates again -----------------------


def test_point_in_time_then_replicate_again_and_restore_again(tmp_path: Path) -> None:
    """A restore to an instant between two batches gives exactly the first batch (done in
    place with --force, as the runbook's rollback: the old WAL and Litestream state must
    not leak into it). The restored archive then replicates again into the same replica,
    takes new writes, and a second restore brings back all of them, while the batch the
    first restore rolled back does not come back from the replica's older history."""
    data = make_archive(tmp_path / "server")
    replica = file_url(tmp_path / "other-disk" / "replica")
    server = ServerProcess(data, replica=replica).start()
    try:
        home = new_agent(data, server, "Chen Jing")
        type_batch(home, "first", 40, new_customers=2)
        sync(home)
        first_customers, first_visits = on_device(home)
        at = quiet_instant(data)
        type_batch(home, "second", 25, new_customers=1, edit_existing=True)
        sync(home)
    finally:
        server.stop()
    second = on_device(home)[1].keys() - first_visits.keys()
    assert len(second) == 25

    restored = data
    out = restore(restored, replica, "--timestamp", at, "--force")
    assert out["timestamp"] == at and harness.integrity_check(restored) == "ok"
    assert [v["id"] for v in visits_of(restored)] == sorted(first_visits)
    assert {c["id"]: c["rev"] for c in customers_of(restored)} == {
        cid: c["rev"] for cid, c in first_customers.items()}

    # The restored archive goes on, replicating into the same replica.
    server = ServerProcess(restored, port=server.port, replica=replica).start()
    try:
        other = new_agent(restored, server, "Wang Fang")  # a device enrolled after the restore
        type_batch(other, "after restore", 30, new_customers=1)
        sync(other)
    finally:
        server.stop()
    again = tmp_path / "restored-again"
    restore(again, replica)
    assert harness.integrity_check(again) == "ok"
    assert content(again) == content(restored)  # nothing written after the first restore is missing
    assert len(devices_of(again)) == 2
    again_visits = {v["id"] for v in visits_of(again)}
    assert again_visits == first_visits.keys() | on_device(other)[1].keys()
    assert not again_visits & second  # the rolled-back batch stays rolled back


# --- bad input -----------------------------------------------------------------------


def closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # nothing listens there: connections are refused at once
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


BAD_REPLICAS = [
    ("file://{tmp}/a-file/replica", "cannot write the file replica"),
    ("ftp://x", "must be file:///PATH, s3://BUCKET/PATH or none"),
    ("s3://", "use s3://BUCKET/PATH"),
    ("s3:///archive", "use s3://BUCKET/PATH"),
    ("s3://bucket/archive?endpoint=127.0.0.1:9000", "endpoint must be http(s)://HOST[:PORT]"),
    ("s3://bucket/archive?endpoint=http://127.0.0.1:{closed}", "is unreachable"),
]


def test_serve_refuses_a_replica_it_cannot_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a server silently running without backups: `serve` exits non-zero at
    start-up with one clear error line, quickly, before anything listens."""
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "a-file").write_text("not a directory")
    started = time.monotonic()
    runs = []
    for i, (replica, says) in enumerate(BAD_REPLICAS):  # all at once: each run is mostly start-up
        data = make_archive(tmp_path / f"server-{i}")
        replica = replica.format(tmp=tmp_path, closed=closed_port())
        proc = subprocess.Popen(
            [SERVER, "serve", "--data", str(data), "--port", str(free_port()), "--replica", replica],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
        runs.append((replica, says, data, proc))
    for replica, says, data, proc in runs:
        out, err = proc.communicate(timeout=60)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert proc.returncode != 0, (replica, out, err)
        assert len(errors) == 1 and says in errors[0], (replica, err)
        assert "Traceback" not in err and not out, (replica, out, err)
        assert not (data / replication.CONFIG_FILE).exists()
    assert time.monotonic() - started < 45  # fails fast, not after Litestream's retries


def test_the_api_stops_when_litestream_dies(tmp_path: Path) -> None:
    """If Litestream itself is killed, the API must not go on taking writes that nobody
    replicates (while /healthz would still read the replica as healthy): it stops."""
    server = ServerProcess(make_archive(tmp_path / "server")).start()
    assert server.proc is not None
    try:
        os.kill(server.proc.pid, signal.SIGKILL)  # `serve` exec'd Litestream: this pid is it
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(server.url + "/healthz", timeout=1)
            except httpx.TransportError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the API still answers without Litestream")
        for _ in range(50):  # it exits with its error line once uvicorn has shut down
            if "error: Litestream exited" in server.log.read_text():
                break
            time.sleep(0.2)
        assert "error: Litestream exited, so the API stops" in server.log.read_text()
    finally:
        server.kill()


def test_backup_status_reports_an_unreachable_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = make_archive(tmp_path / "server")
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    never = server_cli(data_dir, "backup", "status", check=False)
    assert never.returncode == 1 and "never been started" in never.stdout
    # The replica was fine at start-up; later its endpoint went away.
    url = f"s3://{BUCKET}/archive?endpoint=http://127.0.0.1:{closed_port()}"
    replication.write_config(data_dir, replication.parse_replica(url, data_dir))
    proc = server_cli(data_dir, "backup", "status", check=False)
    assert proc.returncode == 1
    status = json.loads(proc.stdout)
    assert status["healthy"] is False and status["replica"] == url
    assert len(status["errors"]) == 1 and "unreachable" in status["errors"][0]


def test_restore_refuses_to_overwrite_an_archive_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = make_archive(tmp_path / "server")
    before = {p.name: sha(p) for p in data_dir.iterdir() if p.is_file()}
    proc = server_cli(data_dir, "restore", "--replica", file_url(tmp_path / "replica"), check=False)
    assert proc.returncode == 1
    assert len(error_lines(proc)) == 1 and "--force" in error_lines(proc)[0], proc.stderr
    assert {p.name: sha(p) for p in data_dir.iterdir() if p.is_file()} == before
    # A replica that cannot be reached: a quick, clear refusal, and no archive appears.
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    fresh = tmp_path / "fresh"
    url = f"s3://{BUCKET}/archive?endpoint=http://127.0.0.1:{closed_port()}"
    proc = server_cli(fresh, "restore", "--replica", url, check=False)
    assert proc.returncode == 1
    assert len(error_lines(proc)) == 1 and "unreachable" in error_lines(proc)[0], proc.stderr
    assert not (fresh / ARCHIVE_FILE).exists()


def test_reconcile_puts_back_a_record_despite_a_refused_operation(tmp_path: Path) -> None:
    """A refused operation stays in the outbox for the rep's attention. It must not keep
    its record from being put back after a restore; the record keeps its creation time."""
    store = Store(open_vault(tmp_path / "vault.db", secrets.token_bytes(32)), "rep_a", SystemClock())
    try:
        card = store.add_customer(CustomerCreate(name="杭州青禾食品有限公司"))
        create = store.pending_ops(10)[0]
        store.apply_results([OpResult(op_id=create["op_id"], status=OpStatus.accepted,
                                      entity_id=card["id"], rev=1, card_no="FV000001")])
        store.edit_customer(card["id"], CustomerPatch(notes="refused by the archive"))
        edit = store.pending_ops(10)[0]
        store.apply_results([OpResult(op_id=edit["op_id"], status=OpStatus.rejected,
                                      entity_id=card["id"], reason="refused")])
        assert store.requeue_missing({}, {}, "new-epoch") == {"customers": 1, "visits": 0}
        [again] = store.pending_ops(10)
        assert (again["kind"], again["entity_id"]) == (OpKind.customer_create, card["id"])
        assert again["at"] == card["created_at"]
        assert len(store.needs_attention()) == 1  # the refused edit is still there to see
    finally:
        store.close()
