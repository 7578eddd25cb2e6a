"""Key material of the agent: the vault key (DEK) and the device key pairs.

This module is the only one that touches key files. The DEK is a random
256-bit raw SQLCipher key, so opening the vault costs no PBKDF2 round.
All key files are written 0600.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .home import write_private

DEK_FILE = "vault.key"
SIGN_KEY_FILE = "device_sign.pem"
BOX_KEY_FILE = "device_box.pem"


class KeyError_(Exception):
    """Key material is missing or unusable."""


def load_or_create_dek(home: Path) -> bytes:
    """The vault's data-encryption key, created on first use."""
    path = home / DEK_FILE
    if path.exists():
        dek = bytes.fromhex(path.read_text().strip())
        if len(dek) != 32:
            raise KeyError_(f"{path} is corrupt: expected a 256-bit key")
        return dek
    dek = secrets.token_bytes(32)
    write_private(path, dek.hex().encode())
    return dek


def sqlcipher_key_pragma(dek: bytes) -> str:
    """PRAGMA that hands SQLCipher a raw key (x'..' form skips key derivation)."""
    return f"PRAGMA key = \"x'{dek.hex()}'\""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def create_device_keys(home: Path) -> tuple[str, str]:
    """Generate the device's Ed25519 (signing) and X25519 (box) pairs; return public halves."""
    sign = Ed25519PrivateKey.generate()
    box = X25519PrivateKey.generate()
    pem = serialization.PrivateFormat.PKCS8
    for name, key in ((SIGN_KEY_FILE, sign), (BOX_KEY_FILE, box)):
        data = key.private_bytes(serialization.Encoding.PEM, pem, serialization.NoEncryption())
        write_private(home / name, data)
    raw = serialization.PublicFormat.Raw
    enc = serialization.Encoding.Raw
    return _b64(sign.public_key().public_bytes(enc, raw)), _b64(box.public_key().public_bytes(enc, raw))


def load_sign_key(home: Path) -> Ed25519PrivateKey:
    path = home / SIGN_KEY_FILE
    if not path.exists():
        raise KeyError_("this agent is not enrolled: run `fieldvault enroll --server URL --code C`")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path} does not hold an Ed25519 key")
    return key
