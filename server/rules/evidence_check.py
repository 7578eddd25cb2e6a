"""Visit evidence checked after the push.

Each visit revision a laptop pushes carries the device's Ed25519 signature over its
content (schema/evidence.py). Verifying one costs ~0.2 ms here, more than everything
else the archive does for a pushed visit, so the push stores the evidence unchecked
(`verified` NULL) and the background jobs verify it in batches, outside any write
transaction: a push is never held behind them. The push request itself is signed by
the same device key (server/auth.py), so a later check changes when a bad signature
is seen, not whether it is. A revision that does not verify is marked (`verified` 0)
and written to the audit log; staff reading the visit see the verdict, and a revision
not checked yet is verified as it is read.
"""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schema import evidence
from schema.signing import b64d

from ..archive.store import Store
from . import audit

# Revisions verified per round: ~0.1 s of CPU here every revocation_check_s (15 s), so
# the jobs loop takes no more than ~1% of a core from the API it shares a process with;
# a 100,000-visit push is checked within the hour (`jobs run` checks one batch too).
BATCH = 500
ACTOR = "server:evidence"


def verifies(row: dict[str, Any], public_key: bytes) -> bool:
    """Whether the stored revision's signature verifies against `public_key`."""
    if row.get("content") is None or row.get("kind") is None:
        return False
    message = evidence.message(row["device_id"], row["kind"], row["visit_id"],
                               orjson.loads(row["content"]), list(row["attachments"]),
                               row["device_time"])
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(b64d(row["signature"]), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verdicts(rows: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    """(verified 0/1, visit_id, rev) of each unchecked row (Store.unchecked_evidence)."""
    return [(int(verifies(r, bytes(r["sign_public_key"]))), r["visit_id"], int(r["rev"]))
            for r in rows]


def record(store: Store, at: str, found: list[tuple[int, str, int]]) -> int:
    """Store the verdicts, each failure in the audit log; returns how many failed."""
    store.set_evidence_verdicts(found)
    failed = [(visit_id, rev) for ok, visit_id, rev in found if not ok]
    for visit_id, rev in failed:
        audit.append(store, at, ACTOR, "evidence.invalid", visit_id, {"rev": rev})
    return len(failed)


def with_verdicts(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evidence rows as staff read them: `verified` true or false, checked now when the
    background jobs have not come to it yet; the signed content stays in the archive."""
    keys: dict[str, bytes | None] = {}
    for r in rows:
        if r.get("verified") is None:
            if r["device_id"] not in keys:
                device = store.device(r["device_id"])
                keys[r["device_id"]] = device.sign_public_key if device else None
            key = keys[r["device_id"]]
            r["verified"] = key is not None and verifies(r, key)
        else:
            r["verified"] = bool(r["verified"])
        r.pop("content", None)
        r.pop("kind", None)
    return rows
