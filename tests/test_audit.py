"""The audit chain: what it records, and that `audit verify` finds tampering.

The chain is built once through the real app in process (enrollment over HTTP,
a revoked device's final flush and signed wipe receipt, admin and HR actions);
each tampering case works on its own copy of the archive, edited with plain
sqlite3 as someone with write access to the file would, and is judged by the
`fieldvault-server audit verify` CLI.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent import wipe
from schema.clock import iso
from schema.models import CustomerCreate, CustomerPatch
from server.rules import open_archive
from server.rules.audit import entry_hash

from . import harness
from .harness import SERVER, archive_of, enroll_device, make_client, run, server_cli, visit_create

EXPECTED_ACTIONS = {
    "rep.add", "enroll_code.create", "device.enroll", "customer.add", "customer.edit",
    "customer.assign", "policy.set", "hr_token.create", "rep.revoke_requested", "rep.revoke",
    "device.wipe_order", "device.wipe_receipt", "archive.new_epoch", "export.customers",
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive whose audit log holds one of every kind of recorded action."""
    data = tmp_path_factory.mktemp("audit") / "server"
    client = make_client(data)
    arch = archive_of(client)
    manager = arch.add_rep("Manager Ma", tier="senior")["id"]
    leaver = arch.add_rep("Leaver Lu", manager="Manager Ma")["id"]
    device = enroll_device(client, arch, leaver)
    card = arch.add_customer(CustomerCreate(name="Jade Harbour Instruments"), leaver)
    arch.edit_customer(card["id"], CustomerPatch(notes="office call-back done"), "office")
    spare = arch.add_customer(CustomerCreate(name="Pool Lead Co"))
    arch.assign(spare["id"], manager, "inbound lead", "admin")
    arch.set_policy(48, 14, True)
    arch.create_hr_token("workday")
    arch.revoke(leaver, "resigned", "manager", by="hr")
    flush = device.push([visit_create(card["id"])])
    assert flush.status_code == 200, flush.text
    receipt = wipe.make_receipt(flush.json()["wipe_order"], ["vault.db"], iso(datetime.now(UTC)),
                                device.key)
    resp = device.send("POST", "/v1/wipe-receipt", orjson.dumps(receipt))
    assert resp.status_code == 200, resp.text
    arch.start_new_epoch("restored from replica (drill)")
    client.close()
    server_cli(data, "customer", "list")  # an admin export
    return data


def entries(data: Path) -> list[dict[str, Any]]:
    return open_archive(data).audit_entries(limit=10_000)


def verify(data: Path) -> tuple[int, dict[str, Any]]:
    proc = run([SERVER, "audit", "verify", "--data", str(data), "--json"], check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_security_events_are_in_the_chain(chain: Path) -> None:
    log = entries(chain)
    assert EXPECTED_ACTIONS <= {e["action"] for e in log}
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    by_action = {e["action"]: e for e in log}
    revoke = by_action["rep.revoke"]
    assert revoke["actor"] == "hr" and revoke["details"]["reason"] == "resigned"
    assert revoke["details"]["reassigned"] and revoke["details"]["devices"]
    device_id = revoke["details"]["devices"][0]
    assert by_action["device.enroll"]["actor"] == device_id
    assert by_action["device.wipe_order"]["subject"] == device_id
    assert by_action["device.wipe_receipt"]["actor"] == device_id
    assert by_action["device.wipe_receipt"]["details"]["order_id"] == (
        by_action["device.wipe_order"]["details"]["order_id"])
    assert by_action["policy.set"]["details"] == {
        "offline_block_hours": 48, "offline_wipe_days": 14, "require_pin": True,
        "timezone": "UTC"}
    departures = [e for e in log if e["action"] == "customer.assign"
                  and e["details"]["reason"].startswith("departure of Leaver Lu")]
    assert len(departures) == 1
    # The HR token's secret is not in the log, only its name.
    assert by_action["hr_token.create"]["subject"] == "workday"
    assert by_action["export.customers"]["details"]["count"] == 2

    listed = server_cli(chain, "audit", "list", "--limit", "5")
    assert [e["seq"] for e in listed] == [e["seq"] for e in log[-5:]]

    code, verdict = verify(chain)
    assert code == 0 and verdict == {"ok": True, "entries": len(log), "first_broken": None,
                                     "problem": ""}


def test_triggers_refuse_update_and_delete(chain: Path, tmp_path: Path) -> None:
    data = tmp_path / "copy"
    shutil.copytree(chain, data)
    with harness.raw_archive(data) as conn:
        for sql in ("UPDATE audit_log SET details='{}' WHERE seq=2",
                    "UPDATE audit_log SET hash=hash WHERE seq=2",
                    "DELETE FROM audit_log WHERE seq=3",
                    "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
            conn.rollback()
    assert open_archive(data).audit_verify().ok


def _target(data: Path) -> int:
    """A middle entry to tamper with: the departure itself."""
    return next(e["seq"] for e in entries(data) if e["action"] == "rep.revoke")


def _update_details(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET details=? WHERE seq=?",
                 ('{"reason":"never happened"}', seq))


def _update_actor(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor='someone-else' WHERE seq=?", (seq,))


def _delete_middle(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("DELETE FROM audit_log WHERE seq=?", (seq,))


def _change_hash(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET hash=? WHERE seq=?", (hashlib.sha256(b"x").hexdigest(), seq))


def _rehash_one(conn: sqlite3.Connection, seq: int) -> None:
    """Edit an entry and give it a matching hash: the next entry no longer links to it."""
    conn.execute("DROP TRIGGER audit_log_no_update")
    row = conn.execute("SELECT prev_hash, at, actor, action, subject FROM audit_log WHERE seq=?",
                       (seq,)).fetchone()
    details = '{"reason":"never happened"}'
    conn.execute("UPDATE audit_log SET details=?, hash=? WHERE seq=?",
                 (details, entry_hash(row[0], seq, row[1], row[2], row[3], row[4], details), seq))
    return None


def _renumber(conn: sqlite3.Connection, seq: int) -> None:
    """Drop an entry and close the gap by renumbering the later ones."""
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("DELETE FROM audit_log WHERE seq=?", (seq,))
    conn.execute("UPDATE audit_log SET seq=-(seq-1) WHERE seq>?", (seq,))
    conn.execute("UPDATE audit_log SET seq=-seq WHERE seq<0")


# case -> (edit, first broken entry relative to the edited one, problem reported)
TAMPERING: dict[str, tuple[Callable[[sqlite3.Connection, int], None], int, str]] = {
    "update-details": (_update_details, 0, "content does not match"),
    "update-actor": (_update_actor, 0, "content does not match"),
    "delete-middle-row": (_delete_middle, 0, "is missing"),
    "change-hash": (_change_hash, 0, "content does not match"),
    "rehash-one-entry": (_rehash_one, 1, "does not link"),
    "delete-and-renumber": (_renumber, 0, "does not link"),
}
# `audit verify` is run as a CLI for these; the others check the same verdict in process.
CLI_CASES = ("delete-middle-row", "rehash-one-entry")


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_detected(chain: Path, tmp_path: Path, case: str) -> None:
    data = tmp_path / "copy"
    shutil.copytree(chain, data)
    seq = _target(data)
    edit, offset, problem = TAMPERING[case]
    with harness.raw_archive(data) as conn:
        edit(conn, seq)
        conn.commit()
    if case in CLI_CASES:
        code, verdict = verify(data)
        assert code == 1
    else:
        found = open_archive(data).audit_verify()
        verdict = {"ok": found.ok, "first_broken": found.first_broken, "problem": found.problem}
    assert verdict["ok"] is False and verdict["first_broken"] == seq + offset, verdict
    assert problem in verdict["problem"], verdict


def test_verify_without_json_names_the_broken_entry(chain: Path, tmp_path: Path) -> None:
    data = tmp_path / "copy"
    shutil.copytree(chain, data)
    seq = _target(data)
    with harness.raw_archive(data) as conn:
        _update_details(conn, seq)
        conn.commit()
    proc = run([SERVER, "audit", "verify", "--data", str(data)], check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: audit entry {seq} is broken: content does not match its hash")
