"""Reviewing what the archive held back: quarantined operations and merge conflicts.

Accepting a held operation applies it as if it had arrived in time: its author, its
device and its times are kept (a revoked rep's final-flush visit becomes a normal
archive visit under their name), and only the checks that held it are skipped.
Integrity is not: an op about a record the archive lacks is refused and nothing is
written. Rejecting marks it with the reason. Nothing held is ever deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from schema.clock import iso
from schema.enums import OpKind, OpStatus
from schema.models import CustomerPatch, PushRequest, VisitPatch

from ..archive.errors import ArchiveError, Conflict, NotFound
from ..archive.store import Store
from . import access, audit, cards, operations, review

MAX_REASON = 500
_PATCHES: dict[str, type[CustomerPatch] | type[VisitPatch]] = {
    OpKind.customer_update.value: CustomerPatch, OpKind.visit_update.value: VisitPatch}


def _held(store: Store, by: str, held_id: int) -> tuple[dict[str, Any], access.StaffMember]:
    who = access.staff_member(store, by)
    held = store.held_op(held_id)
    if held is None:
        raise NotFound("unknown_held_op", f"no quarantined operation {held_id}: see "
                       "`fieldvault-server quarantine`")
    access.authorize(store, who, "quarantine.review", held["rep_id"])
    if held["decision"]:
        raise Conflict("already_decided", f"quarantined operation {held_id} was "
                       f"{held['decision']} by {held['decided_by']} at {held['reviewed_at']}")
    return held, who


def accept(store: Store, now_dt: datetime, by: str, held_id: int) -> dict[str, Any]:
    now = iso(now_dt)
    held, who = _held(store, by, held_id)
    device = store.device(held["device_id"])
    op = held_operation(held["payload"])
    if device is None or op is None:
        raise Conflict("cannot_apply", f"quarantined operation {held_id} cannot be applied: "
                       "its device or its content is not valid any more; reject it instead")
    result = operations.apply_held(store, device, op, now_dt)
    if result.status in (OpStatus.rejected, OpStatus.quarantined):
        hint = (" (if its creation is held for review too, accept that first)"
                if (result.reason or "").startswith("unknown") else "")
        raise Conflict("cannot_apply", f"quarantined operation {held_id} ({op.kind} of "
                       f"{op.entity_id}) cannot be applied: {result.reason}{hint}; nothing "
                       "was written")
    if op.kind == OpKind.customer_create:
        rep = store.rep(held["rep_id"])
        if rep is not None and not rep["active"]:
            # A departed rep serves no one: the card they developed goes to the pool.
            cards.assign(store, now, op.entity_id, None,
                         "developed by a departed rep; accepted from quarantine", who.actor)
    store.decide_held_op(held_id, "accepted", who.actor, "", now)
    audit.append(store, now, who.actor, "quarantine.accept", str(held_id),
                 {"kind": held["kind"], "entity_id": held["entity_id"], "rep_id": held["rep_id"],
                  "op_id": held["op_id"], "result": result.status.value})
    return {**held, **_decided(store, held_id), "result": result.model_dump(mode="json")}


def held_operation(payload: dict[str, Any]) -> Any:
    """The op as the rep sent it, or None if it no longer parses. Ops held before only
    the fields set were kept list every field of an edit, unset ones as null: those
    nulls are read as unset (an edit that cleared a field that way is read as not
    touching it; the payload itself stays as it was)."""
    data = payload.get("data")
    model = _PATCHES.get(payload.get("kind", ""))
    if model is not None and isinstance(data, dict) and set(model.model_fields) <= data.keys():
        payload = {**payload, "data": {k: v for k, v in data.items() if v is not None}}
    try:
        return PushRequest.model_validate_json(orjson.dumps({"ops": [payload]})).ops[0]
    except ValidationError:
        return None


def reject(store: Store, now: str, by: str, held_id: int, reason: str) -> dict[str, Any]:
    held, who = _held(store, by, held_id)
    text = (reason or "").strip()
    if not text or len(text) > MAX_REASON:
        raise ArchiveError("invalid_reason", f"a rejection needs a reason of 1-{MAX_REASON} "
                           "characters")
    store.decide_held_op(held_id, "rejected", who.actor, text, now)
    audit.append(store, now, who.actor, "quarantine.reject", str(held_id),
                 {"kind": held["kind"], "entity_id": held["entity_id"], "rep_id": held["rep_id"],
                  "op_id": held["op_id"], "reason": text})
    return {**held, **_decided(store, held_id)}


def _decided(store: Store, held_id: int) -> dict[str, Any]:
    row = store.held_op(held_id)
    assert row is not None
    return {k: row[k] for k in ("decision", "decided_by", "decision_reason", "reviewed_at")}


def listing(store: Store, by: str | None, open_only: bool, limit: int | None
            ) -> list[dict[str, Any]]:
    access.caller(store, by, "quarantine.review")
    return store.quarantined(limit, open_only)


def resolve_conflict(store: Store, now: str, by: str, conflict_id: int,
                     keep: str) -> dict[str, Any]:
    """Close a conflict: the kept value (the server's or the rep's) becomes a new card
    revision by the person who chose, even when it equals the current value, so the
    decision is in the card's history."""
    who = access.staff_member(store, by)
    conflict = store.conflict(conflict_id)
    if conflict is None:
        raise NotFound("unknown_conflict", f"no conflict {conflict_id}: see "
                       "`fieldvault-server conflicts`")
    access.authorize(store, who, "conflict.resolve", conflict["rep_id"])
    if keep not in ("server", "rep"):
        raise ArchiveError("invalid_keep", "--keep must be server or rep")
    if conflict["resolved_at"]:
        raise Conflict("already_resolved", f"conflict {conflict_id} was resolved by "
                       f"{conflict['resolved_by']} at {conflict['resolved_at']}")
    value = conflict["server_value"] if keep == "server" else conflict["rep_value"]
    card = store.customer(conflict["customer_id"])
    assert card is not None  # conflicts reference their card
    card.update({conflict["field"]: value, "rev": card["rev"] + 1, "updated_at": now})
    cards.store_customer(store, card, who.actor, None, None)
    store.resolve_conflict(conflict_id, keep, who.actor, now)
    audit.append(store, now, who.actor, "conflict.resolve", str(conflict_id),
                 {"customer_id": card["id"], "field": conflict["field"], "keep": keep,
                  "rev": card["rev"]})
    # The card's names as the listing shows them (the conflict row alone lacks them).
    return {**conflict, "customer_name": card["name"], "card_no": card["card_no"],
            "resolution": keep, "resolved_by": who.actor, "resolved_at": now,
            "value": value, "rev": card["rev"]}


def conflicts(store: Store, by: str | None, open_only: bool, limit: int | None
              ) -> list[dict[str, Any]]:
    who = access.caller(store, by, "conflict.resolve")
    return store.conflicts(limit, review.team_root(store, who, None), open_only)
