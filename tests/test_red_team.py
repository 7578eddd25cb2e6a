"""Attacks re-tried against the merged hardening of issue 8, and what they found.

Each test is one way in that was still open after the first round of fixes: it
failed before its fix (see the commit that added it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agent import keystore
from agent.enroll import enroll
from schema import lease as lease_crypto
from schema.models import CustomerCreate

from .inproc import SignedDevice, ThreadedServer


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path / "server").start()
    yield server
    server.stop()


# --- the final flush ---------------------------------------------------------------


def test_an_envelope_with_loose_types_is_refused_like_a_push(
        served: ThreadedServer, tmp_path: Path) -> None:
    """The operation inside an envelope is wire data like a push's: strict types. A
    revoked device (or a copy of it) sealing `"seq": "5"`, `"base_rev": false` or
    `"at": 0` must not get it quarantined as a 1970 edit."""
    arch = served.archive
    rep = arch.add_rep("Lo Leaver")["id"]
    customer = arch.add_customer(CustomerCreate(name="Loose Ltd"), rep)["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "home"
    config = enroll(home, served.url, code)
    arch.revoke(rep, "left", "pool")
    box_pub = served.app.state.box_key.public_key().public_bytes_raw()
    good = {"op_id": "op" + "0" * 30, "seq": 1, "kind": "customer.update",
            "entity_id": customer, "base_rev": 1, "at": "2026-12-01T10:00:00.000000Z",
            "data": {"notes": "typed offline"}}
    loose = {
        "seq as text": {"seq": "5"},
        "base_rev as false": {"base_rev": False},
        "at as a number": {"at": 0},
        "notes as a number": {"data": {"notes": 5}},
    }

    def envelope(op: dict[str, Any]) -> dict[str, Any]:
        aad = lease_crypto.envelope_aad(config.device_id, op["op_id"])
        sealed = lease_crypto.seal(box_pub, {"device_id": config.device_id, "op": op}, aad)
        return {"op_id": op["op_id"], "sealed": sealed}

    ops = [{**good, **change, "op_id": f"loose{n:027d}"} for n, change in enumerate(loose.values())]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        dev = SignedDevice(client, config.device_id, rep, keystore.load_sign_key(home))
        resp = dev.send("POST", "/v1/final-flush",
                        orjson.dumps({"envelopes": [envelope(op) for op in [*ops, good]]}))
    assert resp.status_code == 200, resp.text
    statuses = [r["status"] for r in resp.json()["results"]]
    assert dict(zip([*loose, "strict"], statuses, strict=True)) == {
        **dict.fromkeys(loose, "rejected"), "strict": "quarantined"}
    assert [q["op_id"] for q in arch.quarantine()] == [good["op_id"]]
