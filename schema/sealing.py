"""Sealing a payload to one X25519 public key: ephemeral X25519 + HKDF-SHA256 +
AES-256-GCM, with associated data binding it to its context. Only the holder of
the private key can open it, and any change to it fails the open.

Three uses: the server seals each key lease to the device's key (`schema/lease.py`);
the agent seals its outbox envelopes and a copy of each photo not yet uploaded to the
server's key (`agent/envelopes.py`, `agent/sealed_attachments.py`).
All primitives come from `cryptography`; nothing here is home-made crypto.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .signing import b64d, b64e

# The HKDF label of every sealed payload, leases and envelopes alike: part of the
# wire format (named for its first use), so it stays as it is.
SEAL_INFO = b"fieldvault-lease-seal-v1"


def _raw(pub: X25519PublicKey) -> bytes:
    # public_bytes_raw, not public_bytes(Encoding.Raw, ...): the same 32 bytes without
    # importing cryptography's serialization package (~25 ms of every agent start-up).
    return pub.public_bytes_raw()


def _seal_key(shared: bytes, eph_pub: bytes, device_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + device_pub,
                info=SEAL_INFO).derive(shared)


def seal(device_box_pub: bytes, payload: dict[str, Any], aad: bytes) -> dict[str, str]:
    """Encrypt `payload` so only the holder of the device's X25519 private key can read it."""
    return seal_many(device_box_pub, [(payload, aad)])[0]


def seal_many(box_pub: bytes, items: list[tuple[dict[str, Any], bytes]]) -> list[dict[str, str]]:
    """Seal several payloads (each with its own associated data) to one X25519 key,
    with one key agreement for the batch (see `SealingKey`)."""
    key = SealingKey(box_pub)
    return [key.seal(payload, aad) for payload, aad in items]


class SealingKey:
    """One ephemeral X25519 agreement with a recipient, reused for a bounded number of
    payloads, each with its own random 96-bit nonce and associated data; every sealed
    item still opens on its own with `open_sealed`. Sealing then costs one AES-GCM
    (microseconds) instead of a key agreement (~0.1-0.4 ms) per payload. The
    ephemeral private key lives only in memory."""

    # Far below the 2^32 random nonces per key that AES-GCM tolerates.
    MAX_USES = 1 << 20

    def __init__(self, box_pub: bytes) -> None:
        self.box_pub = box_pub
        eph = X25519PrivateKey.generate()
        eph_pub = _raw(eph.public_key())
        shared = eph.exchange(X25519PublicKey.from_public_bytes(box_pub))
        self._aead = AESGCM(_seal_key(shared, eph_pub, box_pub))
        self._eph_text = b64e(eph_pub)
        self.uses = 0

    def seal(self, payload: dict[str, Any], aad: bytes) -> dict[str, str]:
        return self.seal_bytes(orjson.dumps(payload), aad)

    def seal_bytes(self, plain: bytes, aad: bytes) -> dict[str, str]:
        """Seal raw bytes (a chunk of a photo): no JSON, so no second base64 inside."""
        if self.uses >= self.MAX_USES:
            raise ValueError("this sealing key is used up: make a new one")
        self.uses += 1
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plain, aad)
        return {"ephemeral_public_key": self._eph_text, "nonce": b64e(nonce),
                "ciphertext": b64e(ct)}


class Opener:
    """Opens sealed payloads addressed to one X25519 private key, deriving the key of
    each ephemeral public key once (a batch sealed by `seal_many` shares one)."""

    def __init__(self, box: X25519PrivateKey) -> None:
        self.box = box
        self.box_pub = _raw(box.public_key())
        self._keys: dict[str, AESGCM] = {}

    def open(self, sealed: dict[str, str], aad: bytes) -> dict[str, Any]:
        """Decrypt; raises InvalidTag if tampered with, ValueError/KeyError if malformed."""
        return orjson.loads(self.open_bytes(sealed, aad))  # type: ignore[no-any-return]

    def open_bytes(self, sealed: dict[str, str], aad: bytes) -> bytes:
        """Decrypt what `SealingKey.seal_bytes` sealed; raises as `open`."""
        eph_text = sealed["ephemeral_public_key"]
        aead = self._keys.get(eph_text)
        if aead is None:
            eph_pub = b64d(eph_text)
            shared = self.box.exchange(X25519PublicKey.from_public_bytes(eph_pub))
            aead = AESGCM(_seal_key(shared, eph_pub, self.box_pub))
            if len(self._keys) < 1024:  # bounded: a request may name many ephemeral keys
                self._keys[eph_text] = aead
        return aead.decrypt(b64d(sealed["nonce"]), b64d(sealed["ciphertext"]), aad)


def open_sealed(device_box: X25519PrivateKey, sealed: dict[str, str], aad: bytes) -> dict[str, Any]:
    """Decrypt a sealed payload; raises cryptography's InvalidTag if it was tampered with."""
    return Opener(device_box).open(sealed, aad)


def attachment_aad(device_id: str, sha256: str, size: int, content_type: str,
                   offset: int) -> bytes:
    """Associated data of one sealed chunk of an attachment: binds the device, the whole
    file's hash, size and type, and where the chunk starts, all sent in clear beside it,
    so a chunk opens only as the part of the file it was sealed as."""
    return f"FV1-ATTACHMENT\n{device_id}\n{sha256}\n{size}\n{content_type}\n{offset}".encode()


def envelope_aad(device_id: str, op_id: str) -> bytes:
    """Associated data of an outbox envelope: binds the device and the op_id kept in
    clear beside it, so an envelope opens only for the device that wrote it."""
    return f"FV1-OUTBOX\n{device_id}\n{op_id}".encode()
