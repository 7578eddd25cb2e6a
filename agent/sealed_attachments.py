"""Sealed copies of the photos and forms the server has not confirmed yet: each is also
sealed to the server's X25519 key when it is saved, to `attachments.sealed/<sha256>`
beside the vault.

Why: as with the outbox envelopes (agent/envelopes.py), a revoked laptop whose vault no
longer opens (blocked past its lease, PIN not given) must still hand over what its rep
saved. The visits travel in the envelopes; their photos travel in these copies, chunk
by chunk (`POST /v1/final-flush/attachments`), and the server opens each chunk and takes
it as an ordinary upload, so a quarantined visit can be accepted with its photos. The
laptop cannot read a copy back; only the server can.

A copy is one header line in clear (sha256, size, content type) and one line per chunk
of at most ATTACHMENT_CHUNK_BYTES, each sealed on its own with the device, the header
and its offset as associated data. What a copy reveals to whoever takes the file: the
hash, size and type of a photo not uploaded yet (someone holding the exact photo could
confirm it is this one), never its bytes. A copy is dropped as soon as the server
confirms the photo, and wiped with the vault. It costs the disk a second, sealed copy
of each photo until then (~1.34x its size).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from schema import sealing
from schema.evidence import ATTACHMENT_CHUNK_BYTES, SHA256_HEX

from .home import write_private

SEALED_DIR = "attachments.sealed"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _folder(home: Path) -> Path:
    """The copies' folder, 0700; a symlink or a file in its place is refused (the home is
    the rep's own 0700 folder, but nothing here follows a link)."""
    path = home / SEALED_DIR
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise OSError(f"{path} is not a folder: move it away") from None
    return path


def save(home: Path, device_id: str, key: sealing.SealingKey, sha256: str,
         content_type: str, data: bytes) -> None:
    """Write the sealed copy of `data` (atomically: temp file, fsync, rename)."""
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError("not a sha256")
    size = len(data)
    lines = [orjson.dumps({"sha256": sha256, "size": size, "content_type": content_type})]
    for offset in range(0, size, ATTACHMENT_CHUNK_BYTES):
        aad = sealing.attachment_aad(device_id, sha256, size, content_type, offset)
        sealed = key.seal_bytes(data[offset:offset + ATTACHMENT_CHUNK_BYTES], aad)
        lines.append(orjson.dumps({"offset": offset, "sealed": sealed}))
    write_private(_folder(home) / sha256, b"\n".join(lines) + b"\n")


def drop(home: Path, sha256: str) -> None:
    """Forget the copy of a photo the server confirmed (nothing if there is none)."""
    if SHA256_HEX.fullmatch(sha256):
        (home / SEALED_DIR / sha256).unlink(missing_ok=True)


def stored(home: Path) -> list[str]:
    """The sha256 of every copy on file."""
    try:
        names = os.listdir(home / SEALED_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if SHA256_HEX.fullmatch(n))


def load(home: Path, sha256: str) -> dict[str, Any] | None:
    """A copy as {sha256, size, content_type, chunks: {offset: sealed}}; None when it is
    gone, not a regular file, or does not parse (it is then left for the wipe)."""
    try:
        fd = os.open(home / SEALED_DIR / sha256, _READ_FLAGS)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        raw = fh.read()
    try:
        header, *rest = (orjson.loads(line) for line in raw.splitlines() if line)
        chunks = {int(c["offset"]): c["sealed"] for c in rest}
        copy = {"sha256": str(header["sha256"]), "size": int(header["size"]),
                "content_type": str(header["content_type"]), "chunks": chunks}
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError):
        return None
    return copy if copy["sha256"] == sha256 else None


def copies(home: Path) -> Iterator[dict[str, Any]]:
    """Every readable copy, one at a time (a copy may be ~27 MB)."""
    for sha256 in stored(home):
        copy = load(home, sha256)
        if copy is not None:
            yield copy
