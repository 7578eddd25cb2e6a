"""Key lease and offline grace, with an injected clock.

The server is the real app over real HTTP on 127.0.0.1 (uvicorn in a thread) so
the agent's own transport, signatures and sealed leases are exercised; server
and laptop share one ManualClock, as a laptop with a correct clock would, and
time moves by `clock.set/advance` instead of sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import keystore
from agent import sync as sync_mod
from agent.enroll import enroll
from agent.home import KEYRING_FILE, AgentConfig
from agent.keystore import CLOCK_TOLERANCE, KeyError_, VaultBlocked, VaultWiped
from agent.store import Store
from schema import lease as lease_crypto
from schema import sealing
from schema.clock import ManualClock, parse_iso
from schema.models import CustomerCreate, VisitCreate
from schema.signing import b64d, b64e
from server.rules import Archive, open_archive

from .harness import ThreadedServer, agent_cli, server_cli

VAULT_FILES = ("vault.db", "vault.db-wal", "vault.db-shm", KEYRING_FILE)
PIN = "2468"


@dataclass
class Env:
    clock: ManualClock
    server: ThreadedServer
    data: Path
    tmp: Path

    @property
    def archive(self) -> Archive:
        return self.server.archive


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv("FIELDVAULT_PIN", raising=False)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    server = ThreadedServer(tmp_path / "server", clock).start()
    yield Env(clock, server, tmp_path / "server", tmp_path)
    server.stop()


@dataclass
class Laptop:
    home: Path
    config: AgentConfig
    rep_id: str
    customers: list[str]


def laptop(env: Env, name: str = "Li Lei", pin: str | None = None) -> Laptop:
    """A rep with two customers and an enrolled, synced laptop."""
    rep = env.archive.add_rep(name)["id"]
    customers = [env.archive.add_customer(CustomerCreate(name=f"{name} customer {i}"), rep)["id"]
                 for i in range(2)]
    code, _ = env.archive.create_enroll_code(rep, timedelta(hours=1))
    home = env.tmp / f"agent-{rep}"
    config = enroll(home, env.server.url, code, pin=pin)
    sync(home, env.clock, pin)
    return Laptop(home, config, rep, customers)


def open_store(home: Path, clock: ManualClock, pin: str | None = None) -> Store:
    return Store.open(home, clock=clock, pin=pin)


def sync(home: Path, clock: ManualClock, pin: str | None = None) -> sync_mod.SyncReport:
    config = AgentConfig.load(home)
    assert config is not None
    store = open_store(home, clock, pin)
    transport = sync_mod.open_transport(home, config)
    try:
        return sync_mod.sync(store, transport)
    finally:
        transport.close()
        store.close()


def check_in(home: Path, pin: str | None = None) -> dict[str, Any]:
    config = AgentConfig.load(home)
    assert config is not None
    transport = sync_mod.open_transport(home, config)
    try:
        return sync_mod.check_in(home, config, transport, pin)
    finally:
        transport.close()


def log_visits(home: Path, clock: ManualClock, customer: str, notes: list[str],
               pin: str | None = None) -> list[str]:
    store = open_store(home, clock, pin)
    try:
        return [store.log_visit(VisitCreate(customer_id=customer, purpose="service", summary=note,
                                            started_at=clock.now()))["id"] for note in notes]
    finally:
        store.close()


def visit_ids(home: Path, clock: ManualClock, pin: str | None = None) -> set[str]:
    store = open_store(home, clock, pin)
    try:
        return {r["id"] for r in store.db.query("SELECT id FROM visits")}
    finally:
        store.close()


def keyring(home: Path) -> dict[str, Any]:
    return json.loads((home / KEYRING_FILE).read_bytes())


def deadlines(home: Path) -> tuple[datetime, datetime, datetime]:
    lease = keyring(home)["lease"]
    return parse_iso(lease["issued_at"]), parse_iso(lease["block_at"]), parse_iso(lease["wipe_at"])


def server_pub(config: AgentConfig) -> bytes:
    return b64d(config.server_sign_public_key)


def test_block_deadline_discards_the_secret_and_a_check_in_restores_access(env: Env) -> None:
    lap = laptop(env)
    offline = log_visits(lap.home, env.clock, lap.customers[0], ["typed offline 1", "typed offline 2"])
    issued, block_at, wipe_at = deadlines(lap.home)
    assert block_at - issued == timedelta(hours=72)  # default policy
    assert wipe_at - issued == timedelta(days=30)
    old_secret = keyring(lap.home)["secret"]

    env.clock.set(block_at - timedelta(seconds=1))
    open_store(lap.home, env.clock).close()
    assert keystore.status(lap.home, env.clock).state == "active"

    env.clock.set(block_at)
    with pytest.raises(VaultBlocked, match="connect to the company network"):
        open_store(lap.home, env.clock)
    ring = keyring(lap.home)
    assert "secret" not in ring
    assert old_secret.encode() not in (lap.home / KEYRING_FILE).read_bytes()
    assert keystore.status(lap.home, env.clock).state == "blocked"
    assert env.archive.list_devices(lap.rep_id)[0]["state"] == "blocked"
    # The secret is gone, not merely flagged: turning the clock back does not help.
    env.clock.set(block_at - timedelta(hours=1))
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)

    env.clock.set(block_at + timedelta(hours=5))  # back in the office, days later
    lease = check_in(lap.home)
    assert lease["epoch"] == ring["lease"]["epoch"] + 1
    assert parse_iso(lease["block_at"]) == env.clock.now() + timedelta(hours=72)
    assert keystore.status(lap.home, env.clock).state == "active"
    assert set(offline) <= visit_ids(lap.home, env.clock)  # no data loss
    report = sync(lap.home, env.clock)
    assert report.results == {"accepted": 2}
    assert {v["id"] for v in env.archive.list_visits(lap.rep_id)} == set(offline)
    assert env.archive.list_devices(lap.rep_id)[0]["state"] == "active"


@pytest.mark.parametrize("revoked", [True, False], ids=["revoked", "never-returns"])
def test_wipe_deadline_destroys_the_vault_without_reaching_the_server(env: Env, revoked: bool) -> None:
    lap = laptop(env)
    log_visits(lap.home, env.clock, lap.customers[0], ["a visit nobody will ever sync"])
    if revoked:
        env.archive.revoke(lap.rep_id, "left the company", "pool")
        assert env.archive.list_devices(lap.rep_id)[0]["state"] == "revoked"
    seen = env.archive.list_devices(lap.rep_id)[0]["last_seen_at"]
    env.server.stop()  # the laptop never reaches the server again
    _, block_at, wipe_at = deadlines(lap.home)

    env.clock.set(block_at + timedelta(hours=1))
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)
    assert (lap.home / "vault.db").exists()

    env.clock.set(wipe_at - timedelta(seconds=1))
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)
    assert keystore.status(lap.home, env.clock).state == "blocked"

    env.clock.set(wipe_at)
    assert keystore.status(lap.home, env.clock).state == "wiped"
    with pytest.raises(VaultWiped):
        open_store(lap.home, env.clock)
    assert [n for n in VAULT_FILES if (lap.home / n).exists()] == []
    with pytest.raises(KeyError_):
        open_store(lap.home, env.clock)
    assert keystore.status(lap.home, env.clock).state == "none"
    assert open_archive(env.data).list_devices(lap.rep_id)[0]["last_seen_at"] == seen


def test_a_clock_turned_back_beyond_tolerance_blocks(env: Env) -> None:
    lap = laptop(env)
    issued, _, _ = deadlines(lap.home)
    env.clock.set(issued - CLOCK_TOLERANCE + timedelta(minutes=1))  # within tolerance: fine
    open_store(lap.home, env.clock).close()

    env.clock.set(issued - CLOCK_TOLERANCE - timedelta(minutes=1))
    with pytest.raises(VaultBlocked, match="clock is behind"):
        open_store(lap.home, env.clock)
    assert "secret" not in keyring(lap.home)
    env.clock.set(issued + timedelta(minutes=10))  # setting it right again is not enough
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)
    check_in(lap.home)
    open_store(lap.home, env.clock).close()


def test_an_edited_clock_floor_does_not_let_a_turned_back_clock_pass(env: Env) -> None:
    """`last_server_time` in keyring.json is not signed: the floor the clock is judged
    against is the lease's signed `issued_at`, and the file's field can only raise it."""
    lap = laptop(env)
    issued, _, _ = deadlines(lap.home)
    path = lap.home / KEYRING_FILE
    ring = keyring(lap.home)
    ring["last_server_time"] = "2000-01-01T00:00:00.000000Z"  # the floor, edited back
    path.write_bytes(orjson.dumps(ring))
    env.clock.set(issued - CLOCK_TOLERANCE - timedelta(minutes=1))
    assert keystore.status(lap.home, env.clock).state == "blocked"
    with pytest.raises(VaultBlocked, match="clock is behind"):
        open_store(lap.home, env.clock)
    assert "secret" not in keyring(lap.home)


@pytest.mark.parametrize("field", ["block_at", "wipe_at", "require_pin", "device_id", "issued_at"])
def test_edited_lease_in_the_keyring_is_refused(env: Env, field: str) -> None:
    lap = laptop(env)
    path = lap.home / KEYRING_FILE
    original = path.read_bytes()
    ring = json.loads(original)
    far = "2099-01-01T00:00:00.000000Z"
    ring["lease"][field] = {"block_at": far, "wipe_at": far, "require_pin": True,
                            "device_id": "dev_someoneelse",
                            "issued_at": "2000-01-01T00:00:00.000000Z"}[field]
    path.write_bytes(orjson.dumps(ring))
    with pytest.raises(KeyError_, match="not signed by the server|another device"):
        open_store(lap.home, env.clock)
    path.write_bytes(original)
    open_store(lap.home, env.clock).close()


def test_stretching_the_deadlines_of_a_blocked_keyring_gains_nothing(env: Env) -> None:
    lap = laptop(env)
    _, block_at, _ = deadlines(lap.home)
    env.clock.set(block_at)
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)
    ring = keyring(lap.home)
    ring["lease"]["block_at"] = ring["lease"]["wipe_at"] = "2099-01-01T00:00:00.000000Z"
    (lap.home / KEYRING_FILE).write_bytes(orjson.dumps(ring))
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)


def test_damaged_wrapped_key_is_refused(env: Env) -> None:
    lap = laptop(env)
    ring = keyring(lap.home)
    ct = bytearray(b64d(ring["wrapped"]["ct"]))
    ct[0] ^= 1
    ring["wrapped"]["ct"] = b64e(bytes(ct))
    (lap.home / KEYRING_FILE).write_bytes(orjson.dumps(ring))
    with pytest.raises(KeyError_, match="cannot unwrap"):
        open_store(lap.home, env.clock)


def test_older_replayed_or_forged_leases_are_refused(env: Env) -> None:
    lap = laptop(env)
    other = laptop(env, "Han Meimei")
    config = lap.config
    transport = sync_mod.open_transport(lap.home, config)
    try:
        def fresh_sealed() -> dict[str, str]:
            body = orjson.dumps({"have_epoch": keystore.wrapped_epoch(lap.home)})
            return transport.request("POST", "/v1/lease", payload=body)["sealed_lease"]  # type: ignore[no-any-return]

        captured = fresh_sealed()
        keystore.install_lease(lap.home, config.device_id, server_pub(config), captured)
        sync_mod.check_in(lap.home, config, transport)
        held = (lap.home / KEYRING_FILE).read_bytes()
        with pytest.raises(KeyError_, match="older lease"):
            keystore.install_lease(lap.home, config.device_id, server_pub(config), captured)
        latest = fresh_sealed()
        keystore.install_lease(lap.home, config.device_id, server_pub(config), latest)
        held = (lap.home / KEYRING_FILE).read_bytes()
        with pytest.raises(KeyError_, match="older lease"):  # the same lease twice
            keystore.install_lease(lap.home, config.device_id, server_pub(config), latest)
        assert (lap.home / KEYRING_FILE).read_bytes() == held
    finally:
        transport.close()

    # A lease sealed to another laptop cannot be opened here.
    other_transport = sync_mod.open_transport(other.home, other.config)
    try:
        foreign = other_transport.request(
            "POST", "/v1/lease", payload=orjson.dumps({"have_epoch": None}))["sealed_lease"]
    finally:
        other_transport.close()
    with pytest.raises(KeyError_, match="could not be opened"):
        keystore.install_lease(lap.home, config.device_id, server_pub(config), foreign)

    # A lease with generous deadlines signed by any key but the pinned server's.
    forger = Ed25519PrivateKey.generate()
    lease = {**keyring(lap.home)["lease"], "epoch": 10**6, "secret": b64e(b"x" * 32),
             "block_at": "2099-01-01T00:00:00.000000Z", "wipe_at": "2099-01-01T00:00:00.000000Z"}
    box = keystore.load_box_key(lap.home).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    forged = sealing.seal(box, {"lease": lease, "unwrap": None, "signature": b64e(
        forger.sign(lease_crypto.lease_message(lease)))}, config.device_id.encode())
    with pytest.raises(KeyError_, match="not signed by the server"):
        keystore.install_lease(lap.home, config.device_id, server_pub(config), forged)
    assert (lap.home / KEYRING_FILE).read_bytes() == held
    open_store(lap.home, env.clock).close()


def test_pin_policy(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    lap = laptop(env)
    before = log_visits(lap.home, env.clock, lap.customers[0], ["before the PIN policy"])
    policy = server_cli(env.data, "policy", "set", "--require-pin")
    assert policy["require_pin"] is True
    epoch = keyring(lap.home)["lease"]["epoch"]

    with pytest.raises(KeyError_, match="requires a PIN"):
        check_in(lap.home)
    assert keyring(lap.home)["lease"]["epoch"] == epoch  # nothing installed
    lease = check_in(lap.home, PIN)
    assert lease["require_pin"] is True
    assert keyring(lap.home)["wrapped"]["pin"] is True
    assert keystore.needs_pin(lap.home)

    # The laptop alone (keyring and vault, lease secret included) does not open the vault.
    with pytest.raises(KeyError_, match="needs your PIN"):
        open_store(lap.home, env.clock)
    with pytest.raises(KeyError_, match="wrong PIN"):
        open_store(lap.home, env.clock, pin="1357")
    monkeypatch.setenv("FIELDVAULT_PIN", "9999")
    with pytest.raises(KeyError_, match="wrong PIN"):
        open_store(lap.home, env.clock)
    monkeypatch.setenv("FIELDVAULT_PIN", PIN)
    open_store(lap.home, env.clock).close()
    monkeypatch.delenv("FIELDVAULT_PIN")
    assert set(before) <= visit_ids(lap.home, env.clock, PIN)

    # Blocked, then two check-ins with a mistyped PIN: the right PIN must still restore
    # access (the server has to keep the secret the vault key is wrapped under).
    _, block_at, _ = deadlines(lap.home)
    env.clock.set(block_at + timedelta(hours=1))
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock, PIN)
    for wrong in ("0000", "1111"):
        with pytest.raises(KeyError_, match="wrong PIN"):
            check_in(lap.home, wrong)
    check_in(lap.home, PIN)
    assert set(before) <= visit_ids(lap.home, env.clock, PIN)
    assert sync(lap.home, env.clock, PIN).results == {"accepted": 1}


def test_policy_change_reaches_the_next_lease(env: Env) -> None:
    lap = laptop(env)
    issued, block_at, wipe_at = deadlines(lap.home)
    shown = env.archive.set_policy(1, 2, None)
    assert shown == {"offline_block_hours": 1, "offline_wipe_days": 2, "require_pin": False,
                     "timezone": "UTC"}
    assert deadlines(lap.home) == (issued, block_at, wipe_at)  # the lease held is unchanged

    lease = check_in(lap.home)  # the clock is left at real time for the CLI's sake
    now = env.clock.now()
    assert parse_iso(lease["issued_at"]) == now
    assert parse_iso(lease["block_at"]) == now + timedelta(hours=1)
    assert parse_iso(lease["wipe_at"]) == now + timedelta(days=2)
    device = env.archive.list_devices(lap.rep_id)[0]
    assert (device["block_at"], device["wipe_at"]) == (lease["block_at"], lease["wipe_at"])
    status = agent_cli(lap.home, "status")  # the agent CLI shows the same deadlines
    assert status["state"] == "active"
    assert (status["lease"]["block_at"], status["lease"]["wipe_at"]) == (
        lease["block_at"], lease["wipe_at"])

    env.clock.advance(timedelta(hours=1))
    with pytest.raises(VaultBlocked):
        open_store(lap.home, env.clock)
    env.clock.advance(timedelta(days=2))
    with pytest.raises(VaultWiped):
        open_store(lap.home, env.clock)
