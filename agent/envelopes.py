"""The sealed outbox: every outbox operation, also sealed to the server's X25519 key.

`outbox.sealed` in the agent home holds one line per operation, appended before
the vault transaction that saves it commits: `{"op_id": ..., "sealed": {...}}`.
The op_id is in clear so the file can be compacted once the server acknowledged
an operation; everything else (the operation and the device id) is sealed with
X25519 + HKDF + AES-GCM (`schema.sealing`), with the device id and op_id
as associated data. The laptop cannot read it back; only the server can.

Why: a revoked laptop whose vault no longer opens (blocked, PIN not given) must
still deliver its unsynced work, and the server must never hand a revoked device
anything that opens its vault. So the work travels in these envelopes instead
(`POST /v1/final-flush`), and the vault stays shut. What an envelope reveals to
whoever copies the file: how many operations are unsynced and their sizes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from schema import sealing

from . import sealed_attachments
from .home import write_all, write_private

ENVELOPE_FILE = "outbox.sealed"
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class Sealer:
    """Seals this device's outbox operations to the server's box key. One ephemeral key
    agreement serves the whole session (a fresh one when it is used up), so a save
    pays one AES-GCM, not a key agreement."""

    def __init__(self, home: Path, device_id: str, server_box_public_key: bytes) -> None:
        self.home = home
        self.device_id = device_id
        self.server_box_public_key = server_box_public_key
        self._key: sealing.SealingKey | None = None

    @property
    def path(self) -> Path:
        return self.home / ENVELOPE_FILE

    def key(self) -> sealing.SealingKey:
        """The session's sealing key (a fresh one when it is used up)."""
        if self._key is None or self._key.uses >= self._key.MAX_USES:
            self._key = sealing.SealingKey(self.server_box_public_key)
        return self._key

    def lines(self, ops: list[dict[str, Any]]) -> bytes:
        """One envelope line per wire operation."""
        out = []
        for op in ops:
            sealed = self.key().seal({"device_id": self.device_id, "op": op},
                                    sealing.envelope_aad(self.device_id, op["op_id"]))
            out.append(orjson.dumps({"op_id": op["op_id"], "sealed": sealed}) + b"\n")
        return b"".join(out)

    def seal_attachment(self, sha256: str, content_type: str, data: bytes) -> None:
        """Write the sealed copy of a photo or form (agent/sealed_attachments.py)."""
        sealed_attachments.save(self.home, self.device_id, self.key(), sha256, content_type,
                                data)

    def drop_attachment(self, sha256: str) -> None:
        sealed_attachments.drop(self.home, sha256)

    def append(self, data: bytes, durable: bool = True) -> int | None:
        """Append and fsync (unless the vault itself is not durable, see Store); on
        failure the file is cut back to where it was, so a failed save leaves no half
        line for the next append to glue onto. Returns the size before the append (for
        `cut_back` if the transaction it belongs to then fails), None if nothing was
        written."""
        if not data:
            return None
        fd = os.open(self.path, _APPEND_FLAGS, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn last line (power cut mid-append) stays apart
            try:
                write_all(fd, data)
                if durable:
                    _sync(fd)
            except BaseException:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        return size

    def cut_back(self, size: int) -> None:
        """Undo an append whose transaction did not commit: the envelope of an operation
        the rep was told was not saved must never reach the server. The caller still
        holds the vault's write lock, so no other append came after it."""
        fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            os.ftruncate(fd, size)
            _sync(fd)
        finally:
            os.close(fd)

    def replace(self, data: bytes) -> None:
        """Rewrite the whole file atomically (`home.write_private`)."""
        write_private(self.path, data)


def _sync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def read(home: Path) -> list[dict[str, Any]]:
    """The envelopes on file, first one per op_id, in the order written. A line that
    does not parse (torn by a crash mid-append) is skipped: its operation was never
    saved, since the save fails when the append does."""
    path = home / ENVELOPE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line in raw.splitlines():
        try:
            env = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if (isinstance(env, dict) and isinstance(env.get("op_id"), str)
                and isinstance(env.get("sealed"), dict) and env["op_id"] not in seen):
            seen.add(env["op_id"])
            out.append(env)
    return out


def keep_only(sealer: Sealer, pending: set[str]) -> bool:
    """Compact: drop envelopes of operations no longer pending (acknowledged by the
    server). The caller holds the vault's write lock, so no append runs meanwhile.
    Returns whether the file was rewritten."""
    if not sealer.path.exists():
        return False
    if not pending:
        if sealer.path.stat().st_size == 0:
            return False
        sealer.replace(b"")
        return True
    envelopes = read(sealer.home)
    kept = [e for e in envelopes if e["op_id"] in pending]
    raw_size = sealer.path.stat().st_size
    data = b"".join(orjson.dumps(e) + b"\n" for e in kept)
    if len(kept) == len(envelopes) and len(data) == raw_size:
        return False
    sealer.replace(data)
    return True
