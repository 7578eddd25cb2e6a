"""The archive's part for attachments (photos, signed forms) and visit evidence: a
device's resumable upload, a rep's download, a staff member's read, the totals that
`backup status` reports. The bytes are in the blob folder beside the archive
(server/blobs.py); each method's rows are one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..archive.store import Device
from ..blobs import Blobs
from . import attachment_access as access
from . import evidence_check
from .facade import ArchiveBase


class AttachmentMethods(ArchiveBase):
    @property
    def blobs(self) -> Blobs:
        assert self.data_dir is not None, "the archive was opened without its data folder"
        return Blobs(Path(self.data_dir))

    def upload_attachment(self, device: Device, sha256: str, size: int, content_type: str,
                          offset: int, data: bytes) -> dict[str, Any]:
        """One chunk of a device's upload at `offset`; {sha256, received, complete}. An
        empty chunk asks how much is held. ArchiveError sha256_mismatch when the whole
        does not hash to its name (discarded), attachment_too_large, beyond_size."""
        return access.upload(self._read, self._write, self.blobs, device, sha256, size,
                                  content_type, offset, data, self.now())

    def attachment_for_rep(self, rep_id: str, sha256: str, offset: int = 0,
                           limit: int | None = None) -> tuple[dict[str, Any], bytes]:
        """An attachment a visit of the rep's or of their customer's history names (a
        successor reads their predecessor's photos); NotFound otherwise."""
        with self._read() as s:
            row = access.for_rep(s, rep_id, sha256)
        return row, self.blobs.read(sha256, offset, limit)

    def staff_attachment(self, visit_id: str, sha256: str, by: str | None = None
                         ) -> tuple[dict[str, Any], bytes]:
        """A visit's attachment for staff who may read the visit (visit.read, a
        manager's team)."""
        with self._read() as s:
            ref = access.for_staff(s, by, visit_id, sha256)
        return ref, self.blobs.read(sha256)

    def visit_evidence(self, visit_id: str, by: str | None = None) -> dict[str, Any]:
        """A visit's attachments and each revision's device signature and laptop time."""
        with self._read() as s:
            return access.evidence_for_staff(s, by, visit_id)

    def check_evidence(self, limit: int = evidence_check.BATCH) -> dict[str, int]:
        """Verify up to `limit` visit revisions' device signatures stored unchecked at
        push (rules/evidence_check.py); {"checked", "failed", "left"}. The verification
        runs between a read and a short write, never inside a write transaction."""
        with self._read() as s:
            rows = s.unchecked_evidence(limit)
        found = evidence_check.verdicts(rows)
        with self._write() as s:
            failed = evidence_check.record(s, self.now(), found) if found else 0
            left = s.count_unchecked_evidence()
        return {"checked": len(found), "failed": failed, "left": left}

    def attachment_totals(self) -> dict[str, int]:
        """Rows and bytes the archive records, and the files the blob folder holds."""
        with self._read() as s:
            totals = s.attachment_totals()
        files, size = self.blobs.usage()
        return {**totals, "blob_files": files, "blob_bytes": size}
