"""Revocation of a departing rep: end to end with real processes, the reassignment
modes, scheduled departures, wipe orders that must not be obeyed, every API route
refusing a revoked device, and the HR API."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi.routing import APIRoute

from agent import attachments, keystore, sealed_attachments, wipe
from agent import sync as sync_mod
from agent.enroll import enroll
from agent.home import KEYRING_FILE, AgentConfig
from agent.store import Store
from agent.transport import Encoded, Transport, UntrustedResponse
from schema import signing
from schema.clock import ManualClock, iso
from schema.models import CustomerCreate, VisitCreate
from server.archive import ArchiveError
from server.keys import load_or_create_signing_key
from server.rules import Archive, init_archive

from . import harness
from .harness import (
    AGENT,
    SERVER,
    Backend,
    SignedDevice,
    ThreadedServer,
    archive_of,
    assert_json_error,
    enroll_device,
    make_client,
    raw_public,
    run,
    server_cli,
    snapshot,
    visit_create,
)

CUSTOMERS = ["琉璃塔光电科技有限公司", "Obsidian Narwhal Logistics", "Periwinkle Quokka Dairy"]
CARD_NOTE = "采购总监只收现金回扣 Tamarind ledger"
ONLINE_NOTES = ["Synced note about the Gondola conveyor retrofit",
                "客户要求下月再报价 Persimmon quote"]
OFFLINE_NOTES = ["离职前最后一次拜访 Marzipan tender notes",
                 "Offline note: Zeppelin warehouse wants a 9% discount"]
WORDS = ["琉璃塔", "Obsidian Narwhal", "Quokka", "Tamarind", "Gondola", "Persimmon", "Marzipan",
         "Zeppelin", "回扣", "离职前"]
NEEDLES = [s.encode() for s in CUSTOMERS + [CARD_NOTE] + ONLINE_NOTES + OFFLINE_NOTES + WORDS]


def log(home: Path, customer: str, notes: list[str]) -> list[str]:
    with harness.open_store(home) as store:
        return [store.log_visit(VisitCreate(customer_id=customer, purpose="service", summary=note,
                                            feedback=note, started_at=datetime.now(UTC)))["id"]
                for note in notes]


# --- end to end --------------------------------------------------------------------


@pytest.mark.slow
def test_departure_end_to_end(backend: Backend, tmp_path: Path) -> None:
    data = backend.data
    arch = backend.archive()
    manager = arch.add_rep("Wang Manager", tier="senior")["id"]
    leaver = arch.add_rep("Zhao Leaver", manager=manager)["id"]
    successor = arch.add_rep("Qian Successor", manager=manager)["id"]
    customers = [arch.add_customer(CustomerCreate(name=n, notes=CARD_NOTE), leaver)["id"]
                 for n in CUSTOMERS]
    server = backend.server(replica="none").start()
    try:
        home = tmp_path / "leaver"
        config = harness.lib_enroll(data, home, server.url, leaver)
        harness.lib_sync(home)
        online = log(home, customers[0], ONLINE_NOTES)
        assert harness.lib_sync(home).results == {"accepted": 2}
    finally:
        server.stop()

    # Offline: the rep keeps working; meanwhile HR revokes them.
    offline = log(home, customers[1], OFFLINE_NOTES)
    assert harness.outbox_counts(home)["pending"] == 2
    revoked = server_cli(data, "revoke", "Zhao Leaver", "--reason", "resigned",
                         "--reassign-to", "Qian Successor")
    assert revoked["status"] == "applied" and revoked["reassigned"] == {successor: 3}

    server = backend.server(port=server.port, replica="none").start()
    try:
        proc = run([AGENT, "sync", "--home", str(home)], check=False)
        assert proc.returncode == 3, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "revoked" in lines[0] and "wiped" in lines[0], proc.stderr

        # The offline visits reached the archive, held in quarantine for review.
        held = server_cli(data, "quarantine")
        assert {q["entity_id"] for q in held} == set(offline)
        assert {q["device_id"] for q in held} == {config.device_id}
        assert all("final flush" in q["reason"] for q in held)

        # Nothing of the company's data is left on the laptop, in any file.
        for name in (*wipe.VAULT_FILES, "config.json", "device_sign.pem", "device_box.pem"):
            assert not (home / name).exists(), name
        assert (home / wipe.WIPED_MARKER).exists()
        files = [p for p in home.rglob("*") if p.is_file()]
        if backend.sqlite:
            archived = b"".join(p.read_bytes() for p in data.glob("archive.db*"))
            assert all(n in archived for n in NEEDLES[:4])  # control: the scan finds what is there
        for path in files:
            content = path.read_bytes()
            found = [n.decode() for n in NEEDLES if n in content]
            assert not found, f"{path} still holds {found}"

        # The server recorded the signed receipt; HR's report shows all of it.
        devices = server_cli(data, "device", "list", "--rep", "Zhao Leaver")
        assert [(d["id"], d["state"]) for d in devices] == [(config.device_id, "wiped")]
        assert devices[0]["wipe_receipt_at"] and devices[0]["wipe_ordered_at"]
        report = server_cli(data, "departure-report", "Zhao Leaver")
        assert report["rep"] == {"id": leaver, "name": "Zhao Leaver", "active": False}
        assert report["revocation"]["reason"] == "resigned"
        assert report["revocation"]["requested_by"] == "hr"
        assert [d["state"] for d in report["devices"]] == ["wiped"]
        assert {(c["customer_id"], c["to"], c["owner_now"]) for c in report["customers"]} == {
            (cid, successor, successor) for cid in customers}
        assert report["visits_preserved"] == 2 and report["quarantined"] == 2
        # A receipt is the laptop's own signed statement, and the report says so.
        assert report["wipe_receipt"].startswith("attested by the device")
        text = run([SERVER, "departure-report", "Zhao Leaver", "--data", str(data)],
                   env=harness.archive_env(data)).stdout
        assert "attested by the device" in text and "prove" not in text.lower()

        # The successor's laptop gets the customers, with the departed rep's visits.
        succ = tmp_path / "successor"
        harness.lib_enroll(data, succ, server.url, successor)
        harness.lib_sync(succ)
        cards, visits = harness.device_rows(succ)
        assert set(cards) == set(customers)
        assert all(c["owner_rep_id"] == successor for c in cards.values())
        assert {v["id"]: v["rep_id"] for v in visits.values()} == {v: leaver for v in online}
        assert {v["summary"] for v in visits.values()} == set(ONLINE_NOTES)
        history = harness.archive(data).ownership_history(customers[0])
        assert (history[-1]["from_rep_id"], history[-1]["to_rep_id"]) == (leaver, successor)

        again = run([AGENT, "sync", "--home", str(home)], check=False)
        assert again.returncode == 3 and "wiped" in again.stderr
    finally:
        server.stop()


# --- reassignment modes ------------------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return init_archive(tmp_path / "server", ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))


def team(arch: Archive, tiers: tuple[str, ...] = ("senior", "mid", "junior")) -> dict[str, str]:
    ids = {"manager": arch.add_rep("Manager Ma", tier="senior")["id"]}
    for i, tier in enumerate(tiers):
        if isinstance(arch.clock, ManualClock):
            arch.clock.advance(timedelta(seconds=1))  # team order is order of joining
        ids[f"{tier}{i}"] = arch.add_rep(f"Rep {tier} {i}", manager="Manager Ma", tier=tier)["id"]
    ids["leaver"] = arch.add_rep("Leaver Lu", manager="Manager Ma")["id"]
    return ids


def customers_of(arch: Archive, owner: str, grades: str) -> list[dict[str, Any]]:
    return [arch.add_customer(CustomerCreate(name=f"Customer {i} ({g})", grade=g), owner)
            for i, g in enumerate(grades)]


def owners(arch: Archive, cards: list[dict[str, Any]]) -> dict[str, str | None]:
    return {c["id"]: arch.get_customer(c["id"])["owner_rep_id"] for c in cards}


@pytest.mark.parametrize("mode", ["successor", "manager", "pool"])
def test_reassign_to_successor_manager_or_pool(archive: Archive, mode: str) -> None:
    ids = team(archive)
    cards = customers_of(archive, ids["leaver"], "ABC")
    bystander = customers_of(archive, ids["mid1"], "B")
    target = {"successor": "Rep mid 1", "manager": "manager", "pool": "pool"}[mode]
    out = archive.revoke("Leaver Lu", "moved to a competitor", target)
    expected = {"successor": ids["mid1"], "manager": ids["manager"], "pool": None}[mode]
    assert owners(archive, cards) == {c["id"]: expected for c in cards}
    assert out["reassigned"] == {expected or "pool": 3}
    assert owners(archive, bystander) == {bystander[0]["id"]: ids["mid1"]}
    for card in cards:
        last = archive.ownership_history(card["id"])[-1]
        assert (last["from_rep_id"], last["to_rep_id"]) == (ids["leaver"], expected)
        assert "departure of Leaver Lu" in last["reason"]
        if mode == "pool":
            assert archive.get_customer(card["id"])["ownership_source"] == "pool"
    assert not archive.resolve_rep("Leaver Lu")["active"]


@pytest.mark.parametrize("tiers", [("senior", "mid", "junior"), ("junior", "mid", "senior")])
def test_team_deal_is_fair_and_gives_grade_a_to_seniors(archive: Archive,
                                                        tiers: tuple[str, ...]) -> None:
    ids = team(archive, tiers)
    senior, junior = (ids[f"{t}{tiers.index(t)}"] for t in ("senior", "junior"))
    cards = customers_of(archive, ids["leaver"], "AABBBCC")
    archive.revoke("Leaver Lu", "left", "team")
    got = owners(archive, cards)
    assert sorted(Counter(got.values()).values(), reverse=True) == [3, 2, 2]
    assert {got[c["id"]] for c in cards if c["grade"] == "A"} == {senior}
    assert {got[c["id"]] for c in cards if c["grade"] == "C"} == {junior}
    assert ids["manager"] not in got.values() and ids["leaver"] not in got.values()


def test_team_deal_without_tiers_gives_3_2_2(archive: Archive) -> None:
    ids = team(archive, ("mid", "mid", "mid"))
    cards = customers_of(archive, ids["leaver"], "BBBBBBB")
    archive.revoke("Leaver Lu", "left", "team")
    counts = Counter(owners(archive, cards).values())
    assert [counts[ids[k]] for k in ("mid0", "mid1", "mid2")] == [3, 2, 2]


def test_impossible_reassignment_changes_nothing(archive: Archive) -> None:
    loner = archive.add_rep("Loner Liu")["id"]
    cards = customers_of(archive, loner, "AB")
    before = snapshot(archive.data_dir)
    for mode, code in (("manager", "no_manager"), ("team", "no_team"), ("Nobody", "unknown_successor"),
                       ("Loner Liu", "invalid_successor")):
        with pytest.raises(ArchiveError) as err:
            archive.revoke("Loner Liu", "left", mode)
        assert err.value.code == code
    assert snapshot(archive.data_dir) == before
    assert archive.resolve_rep(loner)["active"] and set(owners(archive, cards).values()) == {loner}


# --- scheduled departures ----------------------------------------------------------


def keyed_device(arch: Archive, rep: str) -> str:
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    raw = lambda k: signing.b64d(raw_public(k))  # noqa: E731
    return arch.enroll(code, "laptop", raw(Ed25519PrivateKey.generate()),
                       raw(X25519PrivateKey.generate())).id


def test_scheduled_departure_waits_for_its_time(archive: Archive) -> None:
    ids = team(archive)
    device = keyed_device(archive, ids["leaver"])
    cards = customers_of(archive, ids["leaver"], "AB")
    clock = archive.clock
    assert isinstance(clock, ManualClock)
    when = iso(clock.now() + timedelta(days=1))
    out = archive.revoke("Leaver Lu", "end of contract", "Rep mid 1", effective_at=when)
    assert out["status"] == "scheduled" and out["applied_at"] is None

    assert archive.process_due_revocations() == []
    clock.advance(timedelta(hours=23, minutes=59))
    assert archive.process_due_revocations() == []
    assert archive.resolve_rep(ids["leaver"])["active"]
    assert archive.get_device(device).state == "active"  # type: ignore[union-attr]
    assert set(owners(archive, cards).values()) == {ids["leaver"]}

    clock.advance(timedelta(minutes=1))
    assert archive.process_due_revocations() == [ids["leaver"]]
    assert archive.process_due_revocations() == []
    assert not archive.resolve_rep(ids["leaver"])["active"]
    assert archive.get_device(device).state == "revoked"  # type: ignore[union-attr]
    assert set(owners(archive, cards).values()) == {ids["mid1"]}
    assert archive.departure_report("Leaver Lu")["revocation"]["status"] == "applied"


def test_scheduled_departure_still_happens_when_its_successor_left_first(
        archive: Archive) -> None:
    ids = team(archive)
    device = keyed_device(archive, ids["leaver"])
    cards = customers_of(archive, ids["leaver"], "AB")
    clock = archive.clock
    assert isinstance(clock, ManualClock)
    archive.revoke("Leaver Lu", "end of contract", "Rep mid 1",
                   effective_at=iso(clock.now() + timedelta(days=1)))
    archive.revoke("Rep mid 1", "left early", "pool")
    clock.advance(timedelta(days=2))
    assert archive.process_due_revocations() == [ids["leaver"]]
    # The departure is a security event: it must not wait on a reassignment that
    # became impossible. The customers go somewhere a manager can deal them from.
    assert archive.get_device(device).state == "revoked"  # type: ignore[union-attr]
    assert not archive.resolve_rep(ids["leaver"])["active"]
    assert set(owners(archive, cards).values()) == {None}  # the pool, for a manager to deal
    entry = [e for e in archive.audit_entries() if e["action"] == "rep.revoke"
             and e["subject"] == ids["leaver"]]
    assert "Rep mid 1" in entry[0]["details"]["fallback_to_pool"]


# --- wipe orders that must not be obeyed -------------------------------------------


class TamperingTransport(Transport):
    """Stands for an attacker who gets a wipe order of their choosing into an answer
    past the response signature check: the order's own signature must stop it.
    `inject` makes that order, given the nonce of the request being answered."""

    inject: Callable[[str], dict[str, Any]] | None = None

    def request_on(self, lane: int, method: str, path: str,
                   params: dict[str, Any] | None = None,
                   payload: bytes | Encoded | None = None) -> tuple[Any, str]:
        answer, nonce = super().request_on(lane, method, path, params, payload)
        if self.inject is not None and path in ("/v1/wipe-order", "/v1/push"):
            answer["wipe_order"] = self.inject(nonce)
        return answer, nonce


@pytest.fixture
def revoked_laptop(tmp_path: Path) -> Iterator[tuple[ThreadedServer, Path, AgentConfig, str]]:
    server = ThreadedServer(tmp_path / "server").start()
    arch = server.archive
    rep = arch.add_rep("Sun Leaver")["id"]
    customer = arch.add_customer(CustomerCreate(name=CUSTOMERS[1]), rep)["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "agent"
    config = enroll(home, server.url, code)
    harness.lib_sync(home)
    visit = log(home, customer, OFFLINE_NOTES[:1])[0]
    arch.revoke(rep, "left", "pool")
    yield server, home, config, visit
    server.stop()


def tampering(home: Path, config: AgentConfig) -> TamperingTransport:
    return TamperingTransport(config.server_url, config.device_id, keystore.load_sign_key(home),
                              signing.b64d(config.server_sign_public_key))


def assert_intact(home: Path) -> None:
    assert (home / "vault.db").exists() and (home / KEYRING_FILE).exists()
    assert not (home / wipe.WIPED_MARKER).exists()
    Store.open(home).close()


def test_forged_and_replayed_wipe_orders_are_ignored(
        revoked_laptop: tuple[ThreadedServer, Path, AgentConfig, str]) -> None:
    server, home, config, visit = revoked_laptop
    server_pub = signing.b64d(config.server_sign_public_key)
    transport = tampering(home, config)
    try:
        genuine = transport.request("GET", "/v1/wipe-order")["wipe_order"]
        nonce = transport.last_nonce
        body = {k: v for k, v in genuine.items() if k != "signature"}
        assert wipe.verify_order(genuine, nonce, server_pub, config.device_id)
        forger = Ed25519PrivateKey.generate()
        forged = {**body, "signature": signing.b64e(forger.sign(signing.wipe_order_message(body, nonce)))}
        assert not wipe.verify_order(forged, nonce, server_pub, config.device_id)
        assert not wipe.verify_order(genuine, "another-request-nonce", server_pub, config.device_id)
        assert not wipe.verify_order(genuine, nonce, server_pub, "dev_someone_else")
        assert not wipe.verify_order({**genuine, "order_id": "wo_other"}, nonce, server_pub,
                                     config.device_id)

        # Through the sync client: a forged order (signed with the wrong key over the very
        # request it answers), and the genuine order replayed against a new request.
        attacks = {
            "forged": lambda n: {**body, "signature": signing.b64e(
                forger.sign(signing.wipe_order_message(body, n)))},
            "replayed": lambda n: genuine,
        }
        for attack in attacks.values():
            transport.inject = attack
            with pytest.raises(UntrustedResponse):
                sync_mod.fetch_wipe_order(transport)
            store = Store.open(home)
            try:
                with pytest.raises(UntrustedResponse):
                    sync_mod.sync(store, transport)  # the final flush answered with the order
            finally:
                store.close()
            assert_intact(home)
        # The final flush reached quarantine (once); the laptop keeps the op until a
        # trustworthy answer comes.
        assert [q["entity_id"] for q in server.archive.quarantine()] == [visit]
        assert harness.outbox_counts(home)["pending"] == 1
        assert server.archive.list_devices()[0]["state"] == "wipe_pending"

        # The genuine order, verified against its own request, is obeyed.
        transport.inject = None
        order = sync_mod.fetch_wipe_order(transport).order
        assert sync_mod.obey_wipe(home, transport, order=order)
    finally:
        transport.close()
    assert not (home / "vault.db").exists() and (home / wipe.WIPED_MARKER).exists()
    assert server.archive.list_devices()[0]["state"] == "wiped"


# --- every route refuses a revoked device ------------------------------------------

UNAUTHENTICATED = {"/healthz", "/metrics", "/v1/enroll"}


def _walk(routes: Any) -> Iterator[Any]:
    """Routes with a path and methods; included routers are descended into (FastAPI
    versions differ in whether `app.routes` is flat)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        elif isinstance(route, APIRoute):
            yield route


def device_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) of the API that a device signs, enumerated from the app
    (its routes and its OpenAPI spec, so neither can hide one)."""
    found = {(m, r.path) for r in _walk(app.routes) for m in r.methods}
    found |= {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    out = []
    for method, path in sorted(found):
        if path in UNAUTHENTICATED or path.startswith(("/v1/hr/", "/v1/staff/", "/console")):
            # enrollment, the HR API (tested below), the staff API (staff tokens:
            # tests/test_authorization.py) and the staff console (sessions:
            # tests/test_console_auth.py) take no device signature
            continue
        path = path.replace("{sha256}", "0" * 64)  # an attachment's bytes: any sha256
        path = path.replace("{customer_id}", "FV000001")  # the leaver's card, made below
        assert "{" not in path, f"classify the parametrised route {path}"
        out.append((method, path))
    return out


BODIES = {"/v1/reconcile": {"customers": [], "visits": []}, "/v1/lease": {"have_epoch": 1},
          "/v1/push/verdicts": {"ops": [["0" * 32, 1]]},  # an op it never sent: unknown
          "/v1/final-flush": {"envelopes": []},
          "/v1/pool/claim": {"customer_id": "FV000002"},  # the pool card made below
          "/v1/attachments/upload": {  # one whole, verified 1-byte attachment
              "sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
              "size": 1, "content_type": "image/png", "offset": 0, "data": "eA=="}}
# Past the signature check, a device in good standing reads only attachments its visits
# or its customers name: 404 for any other, the same as for one that does not exist.
GOOD_ANSWER = {"/v1/attachments/" + "0" * 64: 404,
               "/v1/customers/FV000001/ownership": 404}  # only its owner reads it
SEALED_UPLOAD = sync_mod.SEALED_UPLOAD_PATH
REVOKED_ONLY = ("/v1/wipe-order", "/v1/wipe-receipt", "/v1/push", "/v1/final-flush", SEALED_UPLOAD)
# Served to a device in good standing AND to a revoked or wiped one: the final flush
# uploads its visits' photos before pushing them to quarantine.
FLUSH_TOO = ("/v1/attachments/upload",)


def test_every_route_refuses_a_revoked_then_wiped_device_but_the_departure_routes(tmp_path: Path) -> None:
    data = tmp_path / "server"
    client = make_client(data)
    arch = archive_of(client)
    rep = arch.add_rep("Zhou Leaver")["id"]
    customer = arch.add_customer(CustomerCreate(name=CUSTOMERS[0]), rep)["id"]
    arch.add_customer(CustomerCreate(name=CUSTOMERS[1]))  # in the pool: FV000002
    device = enroll_device(client, arch, rep)
    good = enroll_device(client, arch, arch.add_rep("Wu Stays")["id"])
    routes = device_routes(client.app)
    assert {("POST", "/v1/push"), ("GET", "/v1/pull"), ("POST", "/v1/reconcile"),
            ("GET", "/v1/whoami"), ("POST", "/v1/lease"), ("GET", "/v1/wipe-order"),
            ("POST", "/v1/wipe-receipt"), ("POST", "/v1/final-flush")} <= set(routes)
    assert not any(path == "/v1/flush-key" for _, path in routes)  # no key for revoked devices

    # A one-byte photo as the leaving laptop sealed it to the server's key.
    bodies = {**BODIES, SEALED_UPLOAD: harness.sealed_chunk(data, device.device_id)}

    def call(dev: SignedDevice, method: str, path: str, body: Any = None) -> Any:
        raw = b"" if method == "GET" else orjson.dumps(body if body is not None else bodies.get(path, {}))
        return dev.send(method, path, raw)

    for method, path in routes:  # control: a device in good standing gets through
        if path not in REVOKED_ONLY:
            assert call(good, method, path).status_code == GOOD_ANSWER.get(path, 200), path
    assert_json_error(call(good, "GET", "/v1/wipe-order"), 409, "not_revoked")
    assert_json_error(call(good, "POST", "/v1/final-flush"), 409, "not_revoked")
    assert_json_error(call(good, "POST", SEALED_UPLOAD), 409, "not_revoked")
    # No wipe was ordered for a device in good standing: the same answer as any receipt
    # for an order the device was not given.
    own = wipe.make_receipt({"order_id": "wo_none", "device_id": good.device_id}, [],
                            iso(datetime.now(UTC)), good.key)
    assert_json_error(call(good, "POST", "/v1/wipe-receipt", own), 409, "unknown_order")

    arch.revoke(rep, "left", "pool")
    visits_before = snapshot(data)["visits#rows"]
    server_pub = signing.b64d(raw_public(load_or_create_signing_key(data)))
    order: dict[str, Any] = {}
    for method, path in routes:
        if path == "/v1/push":
            resp = call(device, method, path, {"ops": [visit_create(customer)]})
            assert resp.status_code == 200, resp.text
            answer = resp.json()
            assert [r["status"] for r in answer["results"]] == ["quarantined"]
            order = answer["wipe_order"]
        elif path == "/v1/wipe-order":
            nonce = "n" * 24
            resp = device.send(method, path, b"", nonce=nonce)
            assert resp.status_code == 200, resp.text
            assert wipe.verify_order(resp.json()["wipe_order"], nonce, server_pub, device.device_id)
        elif path == "/v1/final-flush":
            # a revoked device hands over sealed envelopes; the answer holds results and
            # the wipe order, never a key (a bogus envelope is rejected, nothing stored)
            bogus_env = {"op_id": "a" * 32, "sealed": {"ephemeral_public_key": "A" * 43 + "=",
                                                       "nonce": "A" * 16, "ciphertext": "AAAA"}}
            resp = call(device, method, path, {"envelopes": [bogus_env]})
            assert resp.status_code == 200, resp.text
            answer = resp.json()
            assert set(answer) == {"results", "server_time", "wipe_order"}
            assert [r["status"] for r in answer["results"]] == ["rejected"]
        elif path in (*FLUSH_TOO, SEALED_UPLOAD):
            resp = call(device, method, path)
            assert resp.status_code == 200, resp.text
            assert resp.json()["complete"] is True
        elif path == "/v1/wipe-receipt":
            bogus = wipe.make_receipt({"order_id": "wo_bogus", "device_id": device.device_id}, [],
                                      iso(datetime.now(UTC)), device.key)
            assert_json_error(call(device, method, path, bogus), 409, "unknown_order")
            # A receipt naming another device is a bad request, not a missing order.
            other = wipe.make_receipt({"order_id": "wo_bogus", "device_id": good.device_id},
                                      [], iso(datetime.now(UTC)), device.key)
            resp = call(device, method, path, other)
            assert_json_error(resp, 422, "invalid_request")
            assert resp.json()["message"] == "the receipt names another device"
        else:
            assert_json_error(call(device, method, path), 403, "device_revoked")
    assert snapshot(data)["visits#rows"] == visits_before  # never a normal apply
    assert [q["entity_id"] for q in arch.quarantine()] != []

    receipt = wipe.make_receipt(order, ["vault.db"], iso(datetime.now(UTC)), device.key)
    resp = call(device, "POST", "/v1/wipe-receipt", receipt)
    assert resp.status_code == 200 and resp.json()["recorded"] is True
    assert arch.list_devices(rep)[0]["state"] == "wiped"
    quarantined = len(arch.quarantine())
    late = {"ops": [visit_create(customer)]}  # a copy of the laptop that syncs after the wipe
    for method, path in routes:
        body = late if path == "/v1/push" else (
            receipt if path == "/v1/wipe-receipt" else None)
        resp = call(device, method, path, body)
        if path in REVOKED_ONLY + FLUSH_TOO:
            # Still served to a wiped device: a copy or restored backup hands over its
            # work (quarantined, never applied), gets the order, wipes and says so.
            assert resp.status_code == 200, (path, resp.text)
        else:
            assert_json_error(resp, 403, "device_wiped")
    assert_json_error(call(device, "POST", "/v1/lease", {"have_epoch": None}), 403,
                      "device_wiped")
    assert len(arch.quarantine()) == quarantined + 1
    assert call(device, "POST", "/v1/push", late).status_code == 200
    assert len(arch.quarantine()) == quarantined + 1  # once per op_id
    assert arch.list_devices(rep)[0]["state"] == "wiped"
    assert snapshot(data)["visits#rows"] == visits_before


# --- the HR API --------------------------------------------------------------------


def test_hr_api_needs_its_token_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "server"
    client = make_client(data)
    arch = archive_of(client)
    ids = team(arch)
    cards = customers_of(arch, ids["leaver"], "AB")
    device = enroll_device(client, arch, ids["leaver"])
    token = arch.create_hr_token("workday")
    body = {"rep": "Leaver Lu", "reason": "resigned", "reassign_to": "manager"}
    url = "/v1/hr/departures"

    before = snapshot(data, skip=("nonces", "devices"))
    assert_json_error(client.post(url, json=body), 401, "unauthorized")
    assert_json_error(client.post(url, json=body, headers={"authorization": "Bearer fvhr_wrong"}),
                      401, "unauthorized")
    assert_json_error(client.post(url, json=body, headers={"authorization": f"Basic {token}"}),
                      401, "unauthorized")
    signed = device.headers("POST", url, orjson.dumps(body))  # a device key is not an HR token
    assert_json_error(client.post(url, content=orjson.dumps(body), headers=signed), 401)
    assert_json_error(client.get(f"{url}/Leaver Lu"), 401, "unauthorized")
    assert snapshot(data, skip=("nonces", "devices")) == before
    assert arch.resolve_rep(ids["leaver"])["active"]

    auth = {"authorization": f"Bearer {token}"}
    resp = client.post(url, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    first = resp.json()
    assert first["already"] is False and first["status"] == "applied"
    assert first["requested_by"] == "hr-api:workday" and first["source"] == "api"
    assert first["reassigned"] == {ids["manager"]: 2}
    assert set(owners(arch, cards).values()) == {ids["manager"]}
    assert arch.list_devices(ids["leaver"])[0]["state"] == "revoked"

    after = snapshot(data)
    again = client.post(url, json={**body, "reassign_to": "pool"}, headers=auth)
    assert again.status_code == 201 and again.json()["already"] is True
    assert again.json()["id"] == first["id"]
    assert snapshot(data) == after  # nothing reapplied

    report = client.get(f"{url}/Leaver Lu", headers=auth)
    assert report.status_code == 200
    assert report.json()["rep"]["active"] is False
    assert_json_error(client.post(url, json={**body, "rep": "Nobody"}, headers=auth), 404, "unknown_rep")

    # Documented in the OpenAPI spec, with its bearer scheme; the token is stored hashed.
    spec = client.get("/openapi.json").json()
    assert spec["paths"][url]["post"]["security"]
    stored = [r["token_hash"] for r in harness.stored_rows(data, "SELECT token_hash FROM hr_tokens")]
    assert token not in stored and all(len(h) == 64 for h in stored)


@pytest.mark.slow
def test_a_blocked_revoked_laptop_still_hands_over_its_unsynced_visits(
        backend: Backend, tmp_path: Path) -> None:
    """Past its block deadline the vault no longer opens, and the server hands a revoked
    device nothing that would open it: the offline visits travel in the envelopes sealed
    to the server's key when they were saved, reach quarantine, and the laptop wipes."""
    data = backend.data
    arch = backend.archive()
    leaver = arch.add_rep("Sun Blocked")["id"]
    customer = arch.add_customer(CustomerCreate(name=CUSTOMERS[1]), leaver)["id"]
    server = backend.server(replica="none").start()
    try:
        home = tmp_path / "leaver"
        config = harness.lib_enroll(data, home, server.url, leaver)
        harness.lib_sync(home)
        offline = log(home, customer, OFFLINE_NOTES)
        # A photo of 1.2 MB (three sealed chunks) on an offline visit: before this, the
        # hand-over carried its visit but the wipe destroyed the only copy of the photo.
        photo = os.urandom(1_200_000)
        with harness.open_store(home) as store:
            sha = attachments.add_bytes(store, photo, "warehouse.jpg")["sha256"]
            offline.append(store.log_visit(VisitCreate(
                customer_id=customer, purpose="service", summary="photo of the warehouse",
                started_at=datetime.now(UTC)), attach=[sha])["id"])
        copy = home / sealed_attachments.SEALED_DIR / sha
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
        assert photo[600_000:600_064] not in copy.read_bytes()  # sealed, not a plain copy
        # A policy of 3.6 ms: the next lease is past its block deadline by the time any
        # command runs (no waiting, and no secret anyone could ask for again).
        arch.set_policy(block_hours=1e-6, wipe_days=30, require_pin=None)
        transport = sync_mod.open_transport(home, config)
        try:
            sync_mod.check_in(home, config, transport)
        finally:
            transport.close()
        arch.revoke(leaver, "left while offline", "pool")
        block_at = datetime.fromisoformat(
            orjson.loads((home / KEYRING_FILE).read_bytes())["lease"]["block_at"].replace("Z", "+00:00"))
        assert datetime.now(UTC) > block_at
        with pytest.raises(keystore.VaultBlocked):
            Store.open(home, config.rep_id)
        proc = run([AGENT, "sync", "--home", str(home)], check=False)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.count("\n") == 1 and "revoked" in proc.stderr
        held = {q["entity_id"]: q for q in arch.quarantine()}
        assert sorted(held) == sorted(offline)  # nothing the rep typed was lost, nor doubled
        assert not (home / "vault.db").exists() and not (home / KEYRING_FILE).exists()
        assert not (home / "outbox.sealed").exists() and not copy.parent.exists()
        assert arch.list_devices(leaver)[0]["state"] == "wiped"
        # The photo arrived with it: the office accepts the visit, photo and all.
        arch.add_staff("office", "admin")
        assert arch.accept_quarantined(held[offline[-1]]["id"], "office")["decision"] == "accepted"
        ref, data = arch.staff_attachment(offline[-1], sha, "office")
        assert data == photo and ref["size"] == len(photo)
    finally:
        server.stop()
