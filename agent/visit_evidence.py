"""Signing a visit revision as it is saved (schema/evidence.py): the laptop's word,
with its own clock, on what it recorded and which attachments went with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schema import evidence
from schema.enums import OpKind
from schema.signing import b64e

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def sign(key: Ed25519PrivateKey | None, device_id: str, kind: OpKind, entity_id: str,
         data: dict[str, Any], attached: list[dict[str, Any]], at: str) -> dict[str, Any] | None:
    """The evidence for a visit op about to be queued (None without a device key: a
    vault opened for a test or a tool, which queues nothing the server could check)."""
    if key is None:
        return None
    from schema.models import VisitCreate, VisitPatch

    model = VisitCreate if kind == OpKind.visit_create else VisitPatch
    content = evidence.content_of(model.model_validate(data))
    message = evidence.message(device_id, kind.value, entity_id, content,
                               [a["sha256"] for a in attached], at)
    return {"device_time": at, "attachments": attached, "signature": b64e(key.sign(message))}
