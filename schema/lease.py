"""Key leases: the server's time-limited permission for a device to open its vault.

A lease (device, epoch, issued-at, block-at, wipe-at, secret, and the server's
X25519 public key for outbox envelopes) is signed by the server key and sealed
to the device's X25519 key (`schema/sealing.py`), so only that device can read
the secret and nobody can forge or stretch the deadlines. The agent wraps its
vault key (DEK) under a key derived from the lease secret (and, when policy
requires, the rep's PIN through scrypt). All primitives come from
`cryptography`; nothing here is home-made crypto.
"""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

WRAP_INFO = b"fieldvault-dek-wrap-v1"
# scrypt at N=2^15, r=8 takes ~32 MiB and ~0.1 s: cheap once per unlock,
# expensive for someone trying every PIN against a stolen disk.
PIN_SCRYPT_N = 2**15


def lease_message(lease: dict[str, Any]) -> bytes:
    return b"FV1-LEASE\n" + orjson.dumps(lease, option=orjson.OPT_SORT_KEYS)


def pin_material(pin: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=PIN_SCRYPT_N, r=8, p=1).derive(pin.encode())


def wrapping_key(secret: bytes, salt: bytes, device_id: str, epoch: int,
                 pin: str | None = None) -> bytes:
    """The key that wraps the DEK: HKDF of the lease secret (plus scrypt(PIN) if required)."""
    material = secret + (pin_material(pin, salt) if pin is not None else b"")
    info = WRAP_INFO + f"|{device_id}|{epoch}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)
