"""Visit evidence: what a laptop signs when a visit revision is saved, so the archive can
show which device recorded what and when, even for a visit that arrived days later.

The signed bytes are built here and only here, from the operation as it travels: the
visit's content (the op's `data`, as the wire model dumps it), the sha256 of each
attachment, the device's time and ids. Agent and server both call `message()` on the
parsed model, so a field order or a time format can never make them disagree. The
wire models (AttachmentRef, Evidence) are in schema/models.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is not loaded by the agent's quick commands (test_startup)
    from pydantic import BaseModel

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# A visit's photos and signed forms: a few, not an album.
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
# An upload travels in chunks of at most this (server/routes/attachments.py).
ATTACHMENT_CHUNK_BYTES = 512 * 1024
DOMAIN = b"FV1-VISIT-EVIDENCE\n"


def message(device_id: str, op_kind: str, entity_id: str, content: dict[str, Any],
            attachments: list[str], device_time: str) -> bytes:
    """The canonical bytes of one visit revision: sorted keys, attachments as their sorted
    hashes (the names are labels, the bytes are what was recorded)."""
    import orjson

    body = {"device_id": device_id, "kind": op_kind, "visit_id": entity_id,
            "content": content, "attachments": sorted(attachments), "device_time": device_time}
    return DOMAIN + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def content_of(data: BaseModel) -> dict[str, Any]:
    """The visit's content as signed: only the fields the op sets, JSON-typed."""
    return data.model_dump(mode="json", exclude_unset=True)
