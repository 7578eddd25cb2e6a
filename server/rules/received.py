"""Push batches the archive stores first and applies after it has answered (issue 10).

A laptop back from a long stretch offline asks for this (PushRequest.defer). Each batch
is parsed and checked as any push, then stored whole (`push_inbox`) and answered
`received` in one short transaction: the rep's work is safe on the server at the speed
of the link and the parse, not of the rules. The rules (operations.apply_ops) run
after, batch by batch, oldest first, in the serial order every push has
(server/applier.py). A batch's apply and its removal from the inbox are one
transaction: a crash between the two applies it again, and its op_ids make that replay
change nothing. The verdicts wait in applied_ops until the laptop asks (`verdicts`).

- Order: a device's later batches never overtake its stored ones. A batch it does not
  defer (and a revoked device's final flush) applies them first, in its own
  transaction (`drain_device`).
- Time: a stored batch is judged at the time it was received, not the time it is
  applied, so the date checks and the ownership windows see it as an immediate push.
"""

from __future__ import annotations

from typing import Any

import orjson

from schema.clock import parse_iso
from schema.enums import OpStatus
from schema.models import OpResult, PushRequest

from ..archive.store import Device, Store
from . import operations
from .feed import visit_for_rep


def receive(s: Store, device: Device, ops: list[Any], body: str, now: str
            ) -> list[dict[str, Any]]:
    """Store one batch (`body`: its request JSON, parsed already) and answer each op
    `received` (OpResult's JSON shape: a model per op cost ~15% of a stored batch). The
    device's next batch may go now (its turn is the stored seq), and the backlog its
    check-in reported shrinks: the ops have left the laptop."""
    seqs = [op.seq for op in ops]
    s.insert_received(device.id, min(seqs), max(seqs), len(ops), body, now)
    s.raise_last_seq(device.id, max(seqs))
    s.shrink_device_backlog(device.id, len(ops))
    # The other fields of an OpResult take their defaults: a third of the JSON.
    return [{"op_id": op.op_id, "status": OpStatus.received.value, "entity_id": op.entity_id}
            for op in ops]


def apply_stored(s: Store, row: dict[str, Any]) -> int:
    """Apply one stored batch as its device's push, at the time it was received, and
    drop it; the ops it held."""
    device = s.device(row["device_id"])
    assert device is not None, "devices are never deleted"
    # The body passed the same strict parse before it was stored.
    ops = list(PushRequest.model_validate_json(row["body"], strict=True).ops)
    operations.apply_ops(s, device, ops, parse_iso(row["received_at"]), received=True)
    s.delete_received(row["id"])
    return len(ops)


def apply_oldest(s: Store) -> int:
    """Apply the batch stored first of all devices'; the ops it held (0: none waits)."""
    row = s.oldest_received()
    return apply_stored(s, row) if row is not None else 0


def drain_device(s: Store, device: Device) -> int:
    """Apply every batch the device has stored, oldest first, before a batch of its
    that is applied at once; the ops they held."""
    return sum(apply_stored(s, row) for row in s.received_of(device.id))


def verdicts(s: Store, device: Device, ops: list[tuple[str, int]]
             ) -> tuple[list[OpResult], list[str], list[str]]:
    """What became of ops the device was answered `received` for, as (op_id, seq):
    the results of those applied (as their push would have answered), the op_ids still
    stored, and those the archive holds neither way (restored from an older backup:
    the device pushes them again)."""
    applied = s.applied_ops_by_ids([op_id for op_id, _ in ops])
    ranges = s.received_ranges(device.id)
    results: list[OpResult] = []
    pending: list[str] = []
    unknown: list[str] = []
    for op_id, seq in ops:
        row = applied.get(op_id)
        if row is not None and row["device_id"] == device.id:
            results.append(OpResult.model_validate(orjson.loads(row["result"])))
        elif row is not None:  # as the apply answers an op_id another device used
            results.append(OpResult(op_id=op_id, status=OpStatus.rejected, entity_id="",
                                    reason=operations.OP_ID_USED))
        elif any(first <= seq <= last for first, last in ranges):
            pending.append(op_id)
        else:
            unknown.append(op_id)
    _attach_visits(s, results)
    return results, pending, unknown


def _attach_visits(s: Store, results: list[OpResult]) -> None:
    """An accepted visit op's verdict carries the visit as it is now (one read for
    all), as a replayed push's answer does (operations._replayed)."""
    accepted = [r for r in results if r.status == OpStatus.accepted]
    visits = {v["id"]: v for v in s.visits_by_ids(list({r.entity_id for r in accepted}))}
    for r in accepted:
        row = visits.get(r.entity_id)
        if row is not None:
            r.record = visit_for_rep(row)
