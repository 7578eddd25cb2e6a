"""The server's key pairs, both in the data directory, 0600, created once.

- `server_sign.pem` (Ed25519): agents pin its public half at enrollment and trust
  every answer, lease and wipe order signed with it.
- `server_box.pem` (X25519): agents seal every outbox operation to its public half
  (sent to them inside each signed lease), so a revoked laptop whose vault no longer
  opens can still hand over its unsynced work without anything being unlocked.
  Losing it makes envelopes written before the loss unreadable; back it up with
  the signing key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from schema.signing import b64e

KEY_FILE = "server_sign.pem"
BOX_KEY_FILE = "server_box.pem"


def _load_or_create(path: Path, generate: Any, kind: type) -> Any:
    if not path.exists():
        key = generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written under a private temporary name, then linked into place: a second
        # process starting at the same moment finds either no key or a whole one.
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, kind):
        raise ValueError(f"{path} does not hold an {kind.__name__.removesuffix('PrivateKey')} key")
    return loaded


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    key: Ed25519PrivateKey = _load_or_create(data_dir / KEY_FILE, Ed25519PrivateKey.generate,
                                             Ed25519PrivateKey)
    return key


def load_or_create_box_key(data_dir: Path) -> X25519PrivateKey:
    key: X25519PrivateKey = _load_or_create(data_dir / BOX_KEY_FILE, X25519PrivateKey.generate,
                                            X25519PrivateKey)
    return key


def public_key_b64(key: Ed25519PrivateKey | X25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64e(raw)
