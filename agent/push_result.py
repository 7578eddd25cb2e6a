"""One pushed op's answer as the agent reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schema.enums import OpStatus


@dataclass(slots=True)
class PushResult:
    """One op's answer (schema.models.OpResult on the wire), read without pydantic: its
    models cost a push process ~0.1-0.3 s of imports for fields checked here as well."""

    op_id: str
    status: OpStatus
    entity_id: str
    rev: int | None = None
    reason: str | None = None
    conflicts: list[str] = field(default_factory=list)
    card_no: str | None = None
    record: dict[str, Any] | None = None

    @classmethod
    def from_wire(cls, r: Any) -> PushResult:
        try:
            result = cls(op_id=r["op_id"], status=OpStatus(r["status"]),
                         entity_id=r["entity_id"], rev=r.get("rev"), reason=r.get("reason"),
                         conflicts=list(r.get("conflicts") or []), card_no=r.get("card_no"),
                         record=r.get("record"))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise RuntimeError(f"server answered a push with a malformed result: {r!r:.200}") from None
        if not (isinstance(result.op_id, str) and isinstance(result.entity_id, str)
                and (result.rev is None or type(result.rev) is int)
                and (result.record is None or isinstance(result.record, dict))
                and all(isinstance(f, str) for f in result.conflicts)):
            raise RuntimeError(f"server answered a push with a malformed result: {r!r:.200}")
        return result
