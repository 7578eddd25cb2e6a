"""Enrollment codes: one-time, read aloud and typed by hand; only their hash is kept."""

from __future__ import annotations

import hashlib
import secrets

from ..archive.errors import Forbidden
from ..archive.store import Device, Store
from . import audit

# Crockford base32 without look-alikes: codes are read aloud and typed by hand.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


def hash_code(code: str) -> str:
    normalized = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalized.encode()).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


def enroll(store: Store, now: str, code: str, name: str, sign_pub: bytes,
           box_pub: bytes) -> Device:
    """Spend the code on a new device of its rep. Forbidden `invalid_code` (one answer
    for unknown, used and expired: no oracle for guessing) or `rep_inactive`; the
    store's UniqueViolation when a key belongs to another device."""
    code_hash = hash_code(code)
    row = store.enroll_code(code_hash)
    if row is None or row["used_at"] is not None or row["expires_at"] < now:
        raise Forbidden("invalid_code", "enrollment code is unknown, used or expired: "
                        "ask your admin for a new one")
    rep = store.rep(row["rep_id"])
    if rep is None or not rep["active"]:
        raise Forbidden("rep_inactive", "this rep is no longer active")
    device_id = "dev_" + secrets.token_hex(8)
    store.use_enroll_code(code_hash, device_id, now)
    store.insert_device(device_id, row["rep_id"], name, sign_pub, box_pub, now)
    audit.append(store, now, device_id, "device.enroll", row["rep_id"], {"name": name})
    device = store.device(device_id)
    assert device is not None
    return device
