"""Copies of a revoked laptop that connect after its wipe receipt, and a revoked laptop
with a damaged keyring (red-team re-check of issue 8, finding 2).

A copy of the agent home (cp -a, a disk image, a restored backup) taken before the
revocation used to get 403 `device_wiped` once the original had sent its receipt: it
printed "server refused the check-in", kept its data until its block deadline and
could not hand over its unsynced work. Now it is treated like a revoked device: it
hands over what it holds, obeys the signed wipe order, wipes and sends its own receipt,
which the server notes without losing the original's. All with real processes.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from agent import envelopes, wipe
from agent.home import KEYRING_FILE
from schema.enums import VisitPurpose
from schema.models import CustomerCreate, VisitCreate
from server.rules import init_archive, open_archive

from . import harness
from .harness import AGENT, ServerProcess, run, server_cli


def log(home: Path, customer: str, summary: str) -> str:
    with harness.open_store(home) as store:
        return str(store.log_visit(VisitCreate(
            customer_id=customer, purpose=VisitPurpose.service, summary=summary,
            started_at=datetime.now(UTC)))["id"])


def cp_a(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True, timeout=60)


def sync(home: Path) -> subprocess.CompletedProcess[str]:
    return run([AGENT, "sync", "--home", str(home)], check=False)


def assert_wiped(home: Path, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "revoked" in lines[0] and "wiped" in lines[0], proc.stderr
    for name in wipe.VAULT_FILES:
        assert not (home / name).exists(), name
    assert not (home / envelopes.ENVELOPE_FILE).exists() or envelopes.read(home) == []
    assert (home / wipe.WIPED_MARKER).exists()
    gone = run([AGENT, "customer", "list", "--home", str(home)], check=False)
    assert gone.returncode == 3 and "wiped" in gone.stderr, gone.stderr


def test_copies_that_connect_after_the_receipt_hand_over_and_wipe(tmp_path: Path) -> None:
    data = tmp_path / "server"
    arch = init_archive(data)
    leaver = arch.add_rep("Wen Leaver")["id"]
    customer = arch.add_customer(CustomerCreate(name="Cobalt Ferry 物流"), leaver)["id"]
    server = ServerProcess(data, replica="none").start()
    try:
        home, copy, backup = tmp_path / "laptop", tmp_path / "copy", tmp_path / "backup"
        config = harness.lib_enroll(data, home, server.url, leaver)
        harness.lib_sync(home)
        shared = log(home, customer, "offline on the laptop, before the copy")
        cp_a(home, copy)  # the rep copies the agent home; its lease still opens the vault
        on_copy = log(copy, customer, "offline on the copy only")
        on_laptop = log(home, customer, "offline on the laptop after the copy")
        # A lease that is past its block deadline at once: the laptop and its backup no
        # longer open their vaults and hand over their sealed envelopes instead.
        arch.set_policy(block_hours=1e-6, wipe_days=30, require_pin=None)
        harness.check_in(home)
        cp_a(home, backup)
        server_cli(data, "revoke", "Wen Leaver", "--reason", "resigned")

        assert_wiped(home, sync(home))
        first = arch.wipe_order(config.device_id)
        assert first is not None and first["receipt"] is not None
        assert open_archive(data).list_devices(leaver)[0]["state"] == "wiped"

        # The copy, after the receipt: it pushes (its vault opens), obeys, wipes.
        assert_wiped(copy, sync(copy))
        # The restored backup, after the receipt: its vault is blocked, so envelopes.
        assert_wiped(backup, sync(backup))

        held = Counter(q["entity_id"] for q in open_archive(data).quarantine())
        assert held == {shared: 1, on_laptop: 1, on_copy: 1}
        # The original's receipt stays the one on record; the copies' are noted.
        assert arch.wipe_order(config.device_id) == first
        again = [e for e in arch.audit_entries()
                 if e["action"] == "device.wipe_receipt.again"]
        assert [a["subject"] for a in again] == [config.device_id] * 2
        assert open_archive(data).list_devices(leaver)[0]["state"] == "wiped"
        assert sync(copy).returncode == 3  # nothing left to do there
    finally:
        server.stop()


def test_a_revoked_laptop_with_a_damaged_keyring_hands_over_its_envelopes(
        tmp_path: Path) -> None:
    data = tmp_path / "server"
    arch = init_archive(data)
    leaver, stayer = arch.add_rep("Kai Leaver")["id"], arch.add_rep("Ida Stayer")["id"]
    customers = {r: arch.add_customer(CustomerCreate(name=f"Amber Quay {r}"), r)["id"]
                 for r in (leaver, stayer)}
    server = ServerProcess(data, replica="none").start()
    try:
        homes = {r: tmp_path / r for r in (leaver, stayer)}
        visits = {}
        for rep, home in homes.items():
            harness.lib_enroll(data, home, server.url, rep)
            harness.lib_sync(home)
            visits[rep] = log(home, customers[rep], "offline, then the keyring was damaged")
            ring = orjson.loads((home / KEYRING_FILE).read_bytes())
            ring.pop("wrapped")  # damaged: the check-in fails before reaching the server
            (home / KEYRING_FILE).write_bytes(json.dumps(ring).encode())
        server_cli(data, "revoke", "Kai Leaver", "--reason", "resigned")

        # In good standing: the one-line local error, as before; nothing is wiped.
        proc = sync(homes[stayer])
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
        assert not (homes[stayer] / wipe.WIPED_MARKER).exists()

        # Revoked: the server says so, the envelopes go, the laptop wipes.
        assert_wiped(homes[leaver], sync(homes[leaver]))
        held = Counter(q["entity_id"] for q in open_archive(data).quarantine())
        assert held == {visits[leaver]: 1}
        assert open_archive(data).list_devices(leaver)[0]["state"] == "wiped"
    finally:
        server.stop()
