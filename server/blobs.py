"""The archive's blob folder: attachments' bytes beside the archive, one file per sha256
(DATA/blobs/<aa>/<sha256>), never in a database row.

An upload arrives in chunks and may be cut off: each device's partial upload is its own
file (DATA/blobs/partial/<sha256>.<device>), appended at exactly the offset it has, so
a resumed upload continues where the server says it stopped. When the last byte is in,
the whole is hashed; only a file whose sha256 is its name is fsynced and renamed into
place (temp file + fsync + rename, as every durable file here). Folders 0700, files 0600.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .archive.errors import ArchiveError

BLOB_DIR = "blobs"
_SHA = re.compile(r"^[0-9a-f]{64}$")
_DEVICE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class BlobMismatch(ArchiveError):
    def __init__(self, sha256: str) -> None:
        super().__init__("sha256_mismatch", (
            f"the uploaded bytes do not hash to {sha256}: the upload was discarded; "
            "send the file again from offset 0"))


class Blobs:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / BLOB_DIR

    def _dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def path(self, sha256: str) -> Path:
        if not _SHA.fullmatch(sha256):
            raise ValueError("not a sha256")
        return self.root / sha256[:2] / sha256

    def _partial(self, sha256: str, device_id: str) -> Path:
        if not _SHA.fullmatch(sha256) or not _DEVICE.fullmatch(device_id):
            raise ValueError("not a sha256 or device id")
        return self._dir(self.root / "partial") / f"{sha256}.{device_id}"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def received(self, sha256: str, device_id: str) -> int:
        """How many bytes of this device's upload the server holds."""
        try:
            return self._partial(sha256, device_id).stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, sha256: str, device_id: str, offset: int, data: bytes) -> int:
        """Add `data` at `offset` if that is where the partial upload ends; the bytes
        held afterwards (unchanged when the offset is not the end: the caller answers
        with it and the device resumes from there)."""
        path = self._partial(sha256, device_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _FLAGS, 0o600)
        try:
            size = os.fstat(fd).st_size
            if offset != size:
                return size
            os.lseek(fd, size, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            return size + len(data)
        finally:
            os.close(fd)

    def finish(self, sha256: str, device_id: str) -> None:
        """Hash the complete upload; move it into place, or discard it (BlobMismatch)."""
        partial = self._partial(sha256, device_id)
        digest = hashlib.sha256()
        fd = os.open(partial, os.O_RDONLY | _FLAGS)
        with os.fdopen(fd, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise BlobMismatch(sha256)
        target = self.path(sha256)
        self._dir(target.parent)
        os.replace(partial, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename survives a power cut
        finally:
            os.close(dir_fd)

    def read(self, sha256: str, offset: int = 0, limit: int | None = None) -> bytes:
        fd = os.open(self.path(sha256), os.O_RDONLY | _FLAGS)
        with os.fdopen(fd, "rb") as fh:
            fh.seek(offset)
            return fh.read() if limit is None else fh.read(limit)

    def usage(self) -> tuple[int, int]:
        """(files, bytes) of the complete blobs, for `backup status`."""
        files = total = 0
        if not self.root.is_dir():
            return 0, 0
        for sub in self.root.iterdir():
            if sub.name == "partial" or not sub.is_dir():
                continue
            for blob in sub.iterdir():
                files += 1
                total += blob.lstat().st_size
        return files, total
