"""Wipe orders and receipts, and devices as the office sees them."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from ..archive.errors import Conflict
from ..archive.store import Device, Store
from . import audit

WIPE_RECEIPT_MEANING = ("attested by the device: its own signed statement that it destroyed "
                        "its copy, not proof that no other copy exists")


def order_for(store: Store, now: str, device: Device) -> dict[str, Any]:
    """The revoked device's wipe order, issued at its first request (idempotent)."""
    row = store.wipe_order(device.id)
    if row is None:
        order_id = "wo_" + secrets.token_hex(8)
        store.insert_wipe_order(order_id, device.id, now)
        store.set_device_state(device.id, "wipe_pending", only_from="revoked")
        audit.append(store, now, "server", "device.wipe_order", device.id, {"order_id": order_id})
        row = {"order_id": order_id, "issued_at": now}
    return {"type": "wipe_order", "order_id": row["order_id"], "device_id": device.id,
            "rep_id": device.rep_id, "issued_at": row["issued_at"]}


def record_receipt(store: Store, now: str, device: Device, receipt: dict[str, Any]) -> None:
    """Keep the device's (already verified) receipt. Conflict `unknown_order` when no
    wipe with that order_id was ordered for it."""
    order = store.wipe_order(device.id)
    if order is None or order["order_id"] != receipt.get("order_id"):
        raise Conflict("unknown_order", "no wipe was ordered for this device with that order_id")
    text = orjson.dumps(receipt).decode()
    if order["receipt_at"] is not None:
        # A retried receipt, or one from a copy of the laptop (a disk image, a
        # restored backup) wiped later: the first stays, each later one is noted.
        if order["receipt"] != text:
            audit.append(store, now, device.id, "device.wipe_receipt.again", device.id,
                         {"order_id": order["order_id"], "wiped_at": receipt.get("wiped_at")})
        return
    store.set_wipe_receipt(order["order_id"], now, text)
    store.set_device_state(device.id, "wiped")
    audit.append(store, now, device.id, "device.wipe_receipt", device.id,
                 {"order_id": order["order_id"], "wiped_at": receipt.get("wiped_at")})


def devices_as_seen(store: Store, now: str, rep_id: str | None,
                    limit: int | None) -> list[dict[str, Any]]:
    """Devices with the state the laptop is in: past its block deadline without
    checking in, an active device has locked itself (`blocked`)."""
    rows = store.devices(rep_id, limit)
    for row in rows:
        if row["state"] == "active" and row["block_at"] and row["block_at"] <= now:
            row["state"] = "blocked"
    return rows
