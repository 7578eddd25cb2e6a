"""Moving attachments between the vault and the server: uploaded before the visits
that name them (the server refuses a visit whose attachments it lacks), downloaded
after a pull for the visits that name them (a successor's customer history).

Uploads are resumable: the server answers how many bytes it holds, and the next
chunk starts there, so a cut-off upload of a large scan continues where it stopped.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

from schema.evidence import ATTACHMENT_CHUNK_BYTES, MAX_ATTACHMENT_BYTES

from . import attachments
from .errors import StoreError
from .store import Store
from .transport import ServerRefused, Transport

CHUNK_BYTES = ATTACHMENT_CHUNK_BYTES  # the server's chunk cap (server/routes/attachments.py)
UPLOAD_PATH = "/v1/attachments/upload"
# Every loop is bounded: a 20 MB file is 40 chunks.
MAX_CHUNKS = MAX_ATTACHMENT_BYTES // CHUNK_BYTES + 2
STOP_CODES = ("device_revoked", "device_wiped")


@dataclass
class Moved:
    uploaded: int = 0  # attachments the server now has whole
    sent_bytes: int = 0
    downloaded: int = 0


def _post(transport: Transport, sha: str, size: int, kind: str, offset: int,
          data: bytes) -> dict[str, object]:
    body = {"sha256": sha, "size": size, "content_type": kind, "offset": offset,
            "data": base64.b64encode(data).decode()}
    answer: dict[str, object] = transport.request("POST", UPLOAD_PATH, payload=orjson.dumps(body))
    return answer


def upload(store: Store, transport: Transport, moved: Moved | None = None,
           max_chunks: int | None = None) -> Moved:
    """Send every attachment a visit names that the server has not confirmed. A revoked
    device's uploads are taken too (its final flush); should the server refuse one for
    revocation, this stops quietly: the push must still hand the visits over, and the
    wipe then waits until every attachment is up (sync.sync).
    `max_chunks` stops early (a test's cut-off upload)."""
    moved = moved or Moved()
    budget = max_chunks if max_chunks is not None else MAX_CHUNKS * 10_000
    for sha in attachments.not_uploaded(store):
        ref = store.conn.execute("SELECT size, content_type FROM blobs WHERE sha256=?",
                                 (sha,)).fetchone()
        size, kind = int(ref[0]), str(ref[1])
        try:
            state = _post(transport, sha, size, kind, 0, b"")  # where to resume
            for _ in range(MAX_CHUNKS):
                if state["complete"]:
                    attachments.mark_uploaded(store, sha)
                    moved.uploaded += 1
                    break
                if budget <= 0:
                    return moved
                offset = int(str(state["received"]))
                data = attachments.chunk(store, sha, offset, CHUNK_BYTES)
                state = _post(transport, sha, size, kind, offset, data)
                moved.sent_bytes += len(data)
                budget -= 1
        except ServerRefused as exc:
            if exc.code in STOP_CODES:
                return moved
            raise
    return moved


def download(store: Store, transport: Transport, moved: Moved | None = None) -> Moved:
    """Fetch the bytes of attachments pulled visits name; one the server no longer lets
    this rep read (the customer moved on meanwhile) is left for the next pull to drop."""
    moved = moved or Moved()
    for ref in attachments.missing(store):
        parts: list[bytes] = []
        offset = 0
        try:
            for _ in range(MAX_CHUNKS):
                answer = transport.request("GET", f"/v1/attachments/{ref['sha256']}",
                                           params={"offset": offset})
                part = base64.b64decode(answer["data"], validate=True)
                parts.append(part)
                offset += len(part)
                if not answer["more"] or not part:
                    break
        except ServerRefused as exc:
            if exc.status == 404:
                continue
            raise
        try:
            attachments.save_downloaded(store, ref["sha256"], b"".join(parts))
        except StoreError:
            continue  # damaged on the way: fetched again at the next sync
        moved.downloaded += 1
    return moved
