"""Wiping the local copy: verify the server's order, destroy, attest it with a signed receipt.

The receipt is the device's own attestation (signed with its key), not proof: a
disk image or a modified agent could sign one without destroying anything.

Order of events matters: the vault and its key are destroyed first; the
device signing key survives only until the receipt is delivered (it is needed
to sign it), then it goes too. A marker file (no customer data) tells later
commands what happened.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schema import signing

from .envelopes import ENVELOPE_FILE
from .home import BOX_KEY_FILE, CONFIG_FILE, KEYRING_FILE, SIGN_KEY_FILE, VAULT_FILE, write_private
from .sealed_attachments import SEALED_DIR

RECEIPT_FILE = "wipe_receipt.json"
WIPED_MARKER = "WIPED"
# Everything that can hold customer data or the key to it (the sealed outbox
# envelopes and photos too: unreadable here, but they are the unsynced work).
VAULT_FILES = (VAULT_FILE, f"{VAULT_FILE}-wal", f"{VAULT_FILE}-shm", f"{VAULT_FILE}-journal",
               KEYRING_FILE, ENVELOPE_FILE, f"{ENVELOPE_FILE}.tmp", SEALED_DIR, "attachments",
               "inbox")


class DeviceRevoked(Exception):
    """The server revoked this device and sent a verified wipe order."""

    def __init__(self, order: dict[str, Any]) -> None:
        super().__init__("this device was revoked")
        self.order = order


def verify_order(order: dict[str, Any], nonce: str, server_pub: bytes, device_id: str) -> bool:
    """True only for an order signed by the pinned server key, for this device,
    bound to the request we just made (so a recorded old order cannot be replayed)."""
    body = {k: v for k, v in order.items() if k != "signature"}
    if body.get("type") != "wipe_order" or body.get("device_id") != device_id:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(server_pub).verify(
            signing.b64d(str(order.get("signature", ""))), signing.wipe_order_message(body, nonce))
    except (InvalidSignature, ValueError):
        return False
    return True


def _shred(path: Path) -> None:
    """Overwrite with random bytes, flush to disk, then unlink. A symlink (e.g. planted
    in the attachment inbox) is removed itself, its target never touched; so is a FIFO
    or a file with other hard links (its bytes belong to those too)."""
    if path.is_symlink() or (path.exists() and not path.is_dir() and not path.is_file()):
        path.unlink()
        return
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            if child.is_symlink() or not child.is_dir():
                _shred(child)
            else:
                child.rmdir()
        path.rmdir()
        return
    info = path.stat()
    if info.st_nlink > 1:
        path.unlink()
        return
    size = info.st_size
    with path.open("r+b") as fh:
        remaining = size
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            fh.write(secrets.token_bytes(chunk))
            remaining -= chunk
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()


def destroy_vault(home: Path) -> list[str]:
    """Destroy the vault, its WAL/SHM/journal, its key, the sealed envelopes and
    attachments; names removed."""
    removed = []
    for name in VAULT_FILES:
        path = home / name
        if path.exists():
            _shred(path)
            removed.append(name)
    return removed


def make_receipt(order: dict[str, Any], removed: list[str], wiped_at: str,
                 key: Ed25519PrivateKey) -> dict[str, Any]:
    receipt = {"type": "wipe_receipt", "order_id": order["order_id"],
               "device_id": order["device_id"], "wiped_at": wiped_at, "removed": removed}
    sig = key.sign(signing.wipe_receipt_message(receipt))
    return {**receipt, "signature": signing.b64e(sig)}


def save_pending_receipt(home: Path, receipt: dict[str, Any]) -> None:
    write_private(home / RECEIPT_FILE, orjson.dumps(receipt))


def pending_receipt(home: Path) -> dict[str, Any] | None:
    path = home / RECEIPT_FILE
    return orjson.loads(path.read_bytes()) if path.exists() else None


def forget_device(home: Path, receipt: dict[str, Any]) -> None:
    """After the receipt is delivered: drop the device identity, leave a marker."""
    for name in (SIGN_KEY_FILE, BOX_KEY_FILE, CONFIG_FILE, RECEIPT_FILE):
        path = home / name
        if path.exists():
            _shred(path)
    marker = {k: receipt[k] for k in ("order_id", "device_id", "wiped_at", "removed")}
    write_private(home / WIPED_MARKER, orjson.dumps(marker, option=orjson.OPT_INDENT_2))
