"""Key material of the agent: device key pairs and the vault key (DEK) under its lease.

This module is the only one that touches key files, all written 0600. The DEK
is a random 256-bit raw SQLCipher key (no PBKDF2 on every open). It is never
stored in the clear: `keyring.json` holds it wrapped (AES-256-GCM) under a key
derived from the current server lease's secret, and, if policy says so, the
rep's PIN through scrypt. When the lease's block deadline passes the secret is
deleted, so the DEK cannot be recovered without checking in with the server;
after the wipe deadline the vault itself is destroyed.

Deadlines are judged against the later of the wall clock and the issue time of
the held lease, which the server signed, so turning the laptop clock back gains
nothing; a clock found well behind that time blocks the vault outright.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schema import lease as lease_crypto
from schema import sealing
from schema.clock import Clock, iso, parse_iso
from schema.signing import b64d, b64e

from .home import BOX_KEY_FILE, KEYRING_FILE, SIGN_KEY_FILE, write_private
from .wipe import destroy_vault

CLOCK_TOLERANCE = timedelta(minutes=5)


class KeyError_(Exception):
    """Key material is missing or unusable."""


class VaultBlocked(KeyError_):
    """The lease lapsed (or the clock was turned back): check in to continue."""


class VaultWiped(KeyError_):
    """The wipe deadline passed: the local copy has been destroyed."""


def sqlcipher_key_pragma(dek: bytes) -> str:
    """PRAGMA that hands SQLCipher a raw key (x'..' form skips key derivation)."""
    return f"PRAGMA key = \"x'{dek.hex()}'\""


# --- device key pairs -------------------------------------------------------------


def create_device_keys(home: Path) -> tuple[str, str]:
    """Generate the device's Ed25519 (signing) and X25519 (box) pairs; return public halves."""
    from cryptography.hazmat.primitives import serialization

    sign = Ed25519PrivateKey.generate()
    box = X25519PrivateKey.generate()
    pem = serialization.PrivateFormat.PKCS8
    for name, key in ((SIGN_KEY_FILE, sign), (BOX_KEY_FILE, box)):
        data = key.private_bytes(serialization.Encoding.PEM, pem, serialization.NoEncryption())
        write_private(home / name, data)
    raw = serialization.PublicFormat.Raw
    enc = serialization.Encoding.Raw
    return (base64.b64encode(sign.public_key().public_bytes(enc, raw)).decode(),
            base64.b64encode(box.public_key().public_bytes(enc, raw)).decode())


# The unencrypted PKCS#8 DER of an Ed25519 / X25519 private key (RFC 8410), as
# create_device_keys writes it: these 16 bytes (SEQUENCE, version 0, the algorithm's
# OID, OCTET STRING of OCTET STRING), then the 32-byte private key.
_PKCS8_PREFIX = {
    "ed25519": bytes.fromhex("302e020100300506032b657004220420"),
    "x25519": bytes.fromhex("302e020100300506032b656e04220420"),
}
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


def _raw_private(pem: bytes, kind: str) -> bytes | None:
    """The 32 private-key bytes of `pem` when it is exactly the PKCS#8 layout this
    module writes for `kind`; None for anything else (then cryptography's own PEM
    loader reads it). Why not always the loader: importing it
    (cryptography.hazmat.primitives.serialization, which pulls in the SSH, RSA, DSA
    and EC modules) was ~25 ms of every `fieldvault sync`, which only needs these two
    fixed-size keys. This is a comparison of bytes, not cryptography: the key object
    is still made by cryptography (from_private_bytes)."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
        return None
    try:
        der = base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
    except ValueError:
        return None
    prefix = _PKCS8_PREFIX[kind]
    return der[len(prefix):] if len(der) == len(prefix) + 32 and der.startswith(prefix) else None


def _load_private(home: Path, name: str, kind: str) -> Any:
    path = home / name
    if not path.exists():
        raise KeyError_("this agent is not enrolled: run `fieldvault enroll --server URL --code C`")
    pem = path.read_bytes()
    raw = _raw_private(pem, kind)
    if raw is not None:
        return (Ed25519PrivateKey if kind == "ed25519" else X25519PrivateKey).from_private_bytes(raw)
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def load_sign_key(home: Path) -> Ed25519PrivateKey:
    key = _load_private(home, SIGN_KEY_FILE, "ed25519")
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{home / SIGN_KEY_FILE} does not hold an Ed25519 key")
    return key


def load_box_key(home: Path) -> X25519PrivateKey:
    key = _load_private(home, BOX_KEY_FILE, "x25519")
    if not isinstance(key, X25519PrivateKey):
        raise KeyError_(f"{home / BOX_KEY_FILE} does not hold an X25519 key")
    return key


# --- the keyring: lease + wrapped DEK ------------------------------------------------


@dataclass
class LeaseStatus:
    state: str  # active | blocked | wiped | none
    lease: dict[str, Any]
    trusted_now: datetime
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "lease_epoch": self.lease.get("epoch"),
                "issued_at": self.lease.get("issued_at"), "block_at": self.lease.get("block_at"),
                "wipe_at": self.lease.get("wipe_at"), "trusted_now": iso(self.trusted_now)}


def _check_shape(keyring: Any) -> None:
    """ValueError unless `keyring` has every field this module reads, of its type. It
    says nothing of authenticity (`unlock` checks the server's signature)."""
    if not isinstance(keyring, dict):
        raise ValueError("not a JSON object")
    lease, wrapped = keyring.get("lease"), keyring.get("wrapped")
    if not isinstance(lease, dict) or not isinstance(wrapped, dict):
        raise ValueError("no lease or no wrapped key")
    for key in ("issued_at", "block_at", "wipe_at"):
        parse_iso(lease[key])  # KeyError, TypeError or ValueError if missing or not a time
    if not isinstance(lease.get("epoch"), int) or not isinstance(wrapped.get("epoch"), int):
        raise ValueError("no lease epoch")
    if not all(isinstance(wrapped.get(k), str) for k in ("salt", "nonce", "ct")):
        raise ValueError("no wrapped key")
    if "secret" in keyring and not (isinstance(keyring["secret"], str)
                                    and isinstance(keyring.get("signature"), str)):
        raise ValueError("a lease secret without the server's signature")
    last = keyring.get("last_server_time")
    if last is not None:
        parse_iso(last)


def _read_keyring(home: Path) -> dict[str, Any] | None:
    path = home / KEYRING_FILE
    if not path.exists():
        return None
    try:
        keyring = orjson.loads(path.read_bytes())
        _check_shape(keyring)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSONDecodeError too
        reason = (exc.args[0] if isinstance(exc, ValueError) and exc.args
                  else "a field is missing or malformed")
        raise KeyError_(f"{path} is damaged ({reason}): restore it from a backup of this "
                        "laptop, or ask your admin to enroll it again") from None
    return keyring  # type: ignore[no-any-return]


def _write_keyring(home: Path, keyring: dict[str, Any]) -> None:
    # One file, replaced atomically: the wrapped DEK and the lease that can
    # unwrap it always change together, whatever a crash interrupts.
    write_private(home / KEYRING_FILE, orjson.dumps(keyring))


def _verify_lease(lease: dict[str, Any], signature: str, server_pub: bytes, device_id: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(server_pub).verify(
            b64d(signature), lease_crypto.lease_message(lease))
    except (InvalidSignature, ValueError):
        raise KeyError_("the lease is not signed by the server pinned at enrollment") from None
    if lease.get("device_id") != device_id:
        raise KeyError_("the lease was issued to another device")


def _clock_floor(keyring: dict[str, Any]) -> datetime:
    """The earliest the time can be, by what the server vouched for. The floor is the
    lease's `issued_at`, which the server signed (and `unlock` checks the signature
    before judging); `last_server_time` is an unsigned field of the file, so it may
    only raise the floor, never lower it: editing it back gains nothing."""
    floor = parse_iso(keyring["lease"]["issued_at"])
    last = keyring.get("last_server_time")
    return max(floor, parse_iso(last)) if isinstance(last, str) else floor


def status(home: Path, clock: Clock) -> LeaseStatus:
    """Where this device stands, judged by the trusted clock (no side effects)."""
    keyring = _read_keyring(home)
    if keyring is None:
        return LeaseStatus("none", {}, clock.now(), "no lease: enroll this agent")
    lease = keyring["lease"]
    wall = clock.now()
    floor = _clock_floor(keyring)
    trusted = max(wall, floor)
    if trusted >= parse_iso(lease["wipe_at"]):
        return LeaseStatus("wiped", lease, trusted, "offline longer than the wipe deadline")
    if wall < floor - CLOCK_TOLERANCE:
        return LeaseStatus("blocked", lease, trusted,
                           "the laptop clock is behind the last server time")
    if trusted >= parse_iso(lease["block_at"]) or "secret" not in keyring:
        return LeaseStatus("blocked", lease, trusted, "offline longer than the block deadline")
    return LeaseStatus("active", lease, trusted)


def _unwrap(keyring: dict[str, Any], secret: bytes, device_id: str, pin: str | None) -> bytes:
    wrapped = keyring["wrapped"]
    if wrapped.get("pin") and pin is None:
        raise KeyError_("this vault needs your PIN: set FIELDVAULT_PIN or enter it when asked")
    kek = lease_crypto.wrapping_key(secret, b64d(wrapped["salt"]), device_id, wrapped["epoch"],
                                    pin if wrapped.get("pin") else None)
    try:
        return AESGCM(kek).decrypt(b64d(wrapped["nonce"]), b64d(wrapped["ct"]),
                                   f"{device_id}|{wrapped['epoch']}".encode())
    except InvalidTag:
        raise KeyError_("cannot unwrap the vault key: wrong PIN or damaged keyring") from None


@dataclass(frozen=True)
class Unlocked:
    """What an allowed unlock yields: the vault key and, when the held lease names
    it, the server's X25519 key that outbox envelopes are sealed to (trusted because
    the lease carrying it was just verified against the pinned signing key)."""

    dek: bytes
    server_box_public_key: bytes | None


def unlock(home: Path, device_id: str, server_pub: bytes, clock: Clock,
           pin: str | None = None) -> Unlocked:
    """The DEK, if the lease allows. Enforces block (discarding the lease secret)
    and wipe (destroying the vault) deadlines as a side effect."""
    keyring = _read_keyring(home)
    if keyring is None:
        raise KeyError_("this agent is not enrolled: run `fieldvault enroll --server URL --code C`")
    if "secret" in keyring:
        # Deadlines (and the issue time, the clock floor) edited in the file would
        # not match the server's signature.
        _verify_lease({**keyring["lease"], "secret": keyring["secret"]}, keyring["signature"],
                      server_pub, device_id)
    st = status(home, clock)
    if st.state == "wiped":
        destroy_vault(home)
        raise VaultWiped("this laptop stayed offline past the wipe deadline: its copy is destroyed")
    if st.state == "blocked":
        if "secret" in keyring:
            keyring.pop("secret")
            _write_keyring(home, keyring)
        raise VaultBlocked(f"{st.reason}: connect to the company network and run `fieldvault sync`")
    box = keyring["lease"].get("server_box_public_key")
    return Unlocked(_unwrap(keyring, b64d(keyring["secret"]), device_id, pin),
                    b64d(box) if isinstance(box, str) else None)


def install_lease(home: Path, device_id: str, server_pub: bytes, sealed: dict[str, str],
                  pin: str | None = None, new_dek: bytes | None = None) -> dict[str, Any]:
    """Open a sealed lease from the server, then re-wrap the DEK under it and
    destroy the old wrapping. `new_dek` is given once, at enrollment."""
    try:
        payload = sealing.open_sealed(load_box_key(home), sealed, device_id.encode())
    except (InvalidTag, ValueError, KeyError):
        raise KeyError_("the lease could not be opened with this device's key") from None
    lease = payload["lease"]
    _verify_lease(lease, payload["signature"], server_pub, device_id)
    old = _read_keyring(home)
    if old is not None and lease["epoch"] <= old["lease"]["epoch"]:
        raise KeyError_("refusing an older lease than the one held (replay)")
    if new_dek is not None:
        dek = new_dek
    else:
        if old is None:
            raise KeyError_("no vault key to re-wrap: enroll this agent again")
        unwrap = payload.get("unwrap")
        if "secret" in old:
            secret = b64d(old["secret"])
        elif unwrap and unwrap.get("epoch") == old["wrapped"]["epoch"]:
            secret = b64d(unwrap["secret"])
        else:
            raise KeyError_("the lease secret for this vault is gone: the vault cannot be opened")
        dek = _unwrap(old, secret, device_id, pin)
    if lease.get("require_pin") and pin is None:
        raise KeyError_("company policy requires a PIN: set FIELDVAULT_PIN or enter it when asked")
    use_pin = pin if lease.get("require_pin") or (old or {}).get("wrapped", {}).get("pin") else None
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = lease_crypto.wrapping_key(b64d(lease["secret"]), salt, device_id, lease["epoch"], use_pin)
    ct = AESGCM(kek).encrypt(nonce, dek, f"{device_id}|{lease['epoch']}".encode())
    # The lease's issue time is signed by the server: the trusted clock floor.
    issued = parse_iso(lease["issued_at"])
    last = max(issued, parse_iso(old["last_server_time"])) if old else issued
    public_lease = {k: v for k, v in lease.items() if k != "secret"}
    _write_keyring(home, {
        "lease": public_lease, "signature": payload["signature"], "secret": lease["secret"],
        "wrapped": {"epoch": lease["epoch"], "salt": b64e(salt), "nonce": b64e(nonce),
                    "ct": b64e(ct), "pin": use_pin is not None},
        "last_server_time": iso(last),
    })
    return public_lease


def wrapped_epoch(home: Path) -> int | None:
    keyring = _read_keyring(home)
    return keyring["wrapped"]["epoch"] if keyring else None


def needs_pin(home: Path) -> bool:
    keyring = _read_keyring(home)
    return bool(keyring and (keyring["wrapped"].get("pin") or keyring["lease"].get("require_pin")))
