"""Offline policy and key leases: how long a laptop may work without checking in."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from schema.clock import iso
from schema.signing import b64e

from ..archive.errors import ArchiveError, Forbidden
from ..archive.store import Store
from . import audit, days


def policy(store: Store) -> dict[str, Any]:
    # One read (every check-in reads the policy): a statement each was a PostgreSQL
    # round trip each.
    stored = store.metas(["offline_block_hours", "offline_wipe_days", "require_pin",
                          days.META_KEY])
    return {"offline_block_hours": float(stored.get("offline_block_hours") or 72),
            "offline_wipe_days": float(stored.get("offline_wipe_days") or 30),
            "require_pin": stored.get("require_pin") == "1",
            # The company's zone: the calendar days plans and reports count in.
            "timezone": stored.get(days.META_KEY) or days.DEFAULT_ZONE}


def set_policy(store: Store, now: str, block_hours: float | None, wipe_days: float | None,
               require_pin: bool | None, by: str, timezone: str | None = None) -> dict[str, Any]:
    """Change the policy; raises ArchiveError `invalid_policy` for impossible values
    (a time zone the tz database does not know, too)."""
    new = policy(store)
    if timezone is not None:
        new["timezone"] = days.check_zone(timezone)
    if block_hours is not None:
        new["offline_block_hours"] = block_hours
    if wipe_days is not None:
        new["offline_wipe_days"] = wipe_days
    if require_pin is not None:
        new["require_pin"] = require_pin
    if not 0 < new["offline_block_hours"] <= 24 * 365:
        raise ArchiveError("invalid_policy", "offline block hours must be in (0, 8760]")
    if not 0 < new["offline_wipe_days"] <= 3650:
        raise ArchiveError("invalid_policy", "offline wipe days must be in (0, 3650]")
    if new["offline_wipe_days"] * 24 < new["offline_block_hours"]:
        raise ArchiveError("invalid_policy", "the wipe deadline must not come before the block")
    for key in ("offline_block_hours", "offline_wipe_days"):
        store.set_meta(key, repr(new[key]))
    store.set_meta("require_pin", "1" if new["require_pin"] else "0")
    store.set_meta(days.META_KEY, new["timezone"])
    audit.append(store, now, by, "policy.set", "", new)
    return new


def issue(store: Store, now_dt: datetime, device_id: str, have_epoch: int | None,
          backlog: tuple[int, str | None] | None = None) -> dict[str, Any]:
    """A fresh lease for an active device, plus the secret the device's DEK is
    currently wrapped under (so a blocked device can unwrap and re-wrap).
    The two latest secrets are kept: a lease whose answer was lost is still
    recoverable. Raises Forbidden `device_revoked` for any device not active."""
    rules = policy(store)
    now = iso(now_dt)
    dev = store.device_row(device_id, lock=True)
    if dev is None or dev["state"] != "active":
        raise Forbidden("device_revoked", "this device is no longer allowed")
    epoch = dev["lease_epoch"]
    unwrap: bytes | None = None
    prev: bytes | None
    if have_epoch is not None and have_epoch == epoch and dev["lease_secret"]:
        unwrap = prev = bytes(dev["lease_secret"])
    elif have_epoch is not None and have_epoch == epoch - 1 and dev["lease_prev_secret"]:
        # The device never installed the last lease (answer lost, PIN refused):
        # re-issue that epoch, so the kept secret stays the one of epoch - 1
        # however many attempts fail (moving on would lose it at the second).
        unwrap = prev = bytes(dev["lease_prev_secret"])
        epoch -= 1
    else:
        prev = dev["lease_secret"]
    if have_epoch is not None and have_epoch > epoch:
        # The archive was restored from a replica older than the device's lease:
        # go on from the device's epoch (anything at or below it is refused as a
        # replay). The secret of that epoch was lost with the archive.
        epoch, prev = have_epoch, None
    secret = secrets.token_bytes(32)
    block_at = iso(now_dt + timedelta(hours=rules["offline_block_hours"]))
    wipe_at = iso(now_dt + timedelta(days=rules["offline_wipe_days"]))
    # An agent too old to report its backlog leaves the last report standing.
    store.set_lease(device_id, epoch + 1, secret, prev, now, block_at, wipe_at, backlog)
    lease = {"device_id": device_id, "epoch": epoch + 1, "issued_at": now,
             "block_at": block_at, "wipe_at": wipe_at, "require_pin": rules["require_pin"],
             "secret": b64e(secret)}
    return {"lease": lease,
            "unwrap": {"epoch": have_epoch, "secret": b64e(unwrap)} if unwrap else None}
