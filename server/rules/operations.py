"""Applying a device's operations: scope, merge and date checks, exactly once per op_id.

Everything runs inside the caller's serial write, so a batch lands whole or not
at all. `now` is the server's time for the batch, passed in (tests set it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from schema.clock import iso, parse_iso
from schema.enums import OpKind, OpStatus, OwnershipSource, VisitStatus, can_transition
from schema.merge import fields_changed_by_others, merge_fields
from schema.models import (
    CUSTOMER_EDITABLE_FIELDS,
    CustomerCreateOp,
    CustomerUpdateOp,
    OpResult,
    PlanSubmitOp,
    VisitCreate,
    VisitCreateOp,
    VisitUpdateOp,
    VisitVoidOp,
)
from schema.records import to_record
from schema.signing import MAX_CLOCK_SKEW_S

from ..archive.store import Device, Store
from . import attachments, callback, cards, duplicates, plans, pool
from .feed import visit_for_rep

_VISIT_FIELDS = tuple(VisitCreate.model_fields)

# Why a visit's start time can be held for review: it is the time the pool clock
# counts and the time ownership is judged at, so it must fall where the author
# could have made the visit.
BEFORE_CARD = "visit dated before the customer's card existed; held for review"
NOT_OWNED = "customer was not assigned to you when the visit started"
IN_FUTURE = "visit dated in the future; held for review"

# An op_id another device's op was applied under: refused, at push or in its verdict.
OP_ID_USED = "op_id already used"

APPROVED_READ_ONLY = ("visit is approved: read-only; ask your manager to return it "
                      "(with a comment) if it needs a correction")

# A rep who finds a new customer visits first and makes the card right after: on
# their own laptop's card, a visit may start this long before the card was made.
NEW_CARD_GRACE = timedelta(hours=12)


class CardFacts(Protocol):
    """What the date checks read about a card: the archive, or a batch's reads of it."""

    def card_maker(self, customer_id: str) -> dict[str, Any] | None: ...

    def ownership(self, customer_id: str) -> list[dict[str, Any]]: ...


def card_start_for(store: CardFacts, customer: dict[str, Any], rep_id: str) -> str:
    """The earliest start a visit by `rep_id` may have on this card.

    The card's creation time, or, for a card `rep_id` made on their own laptop,
    up to NEW_CARD_GRACE before it (the visit that found the customer came first).
    A laptop-made card's time is the laptop's word, so it counts back no further
    than that laptop's enrollment (less the clock skew allowed to a signed request).
    """
    made = customer["created_at"]
    maker = store.card_maker(customer["id"])
    if maker is None:
        return str(made)
    if maker["rep_id"] == rep_id:
        made = iso(parse_iso(made) - NEW_CARD_GRACE)
    return max(made, iso(parse_iso(maker["enrolled_at"]) - timedelta(seconds=MAX_CLOCK_SKEW_S)))


def ownership_windows(
    store: CardFacts, customer: dict[str, Any], rep_id: str, made: str | None = None
) -> list[tuple[str, str | None]]:
    """The [start, end) spans in which `rep_id` owned the customer (end None: still does).

    The first span starts at `card_start_for` when that is earlier than the
    server's record of the card: a card made offline was the rep's from the
    moment they made it, and the visits logged with it count from then. A lock mark
    (from = to = the owner) moves no one and splits no window.
    """
    rows = [r for r in store.ownership(customer["id"]) if r["source"] not in pool.MARKS]
    made = made or card_start_for(store, customer, rep_id)
    spans: list[tuple[str, str | None]] = []
    for i, row in enumerate(rows):
        if row["to_rep_id"] != rep_id:
            continue
        start = min(row["at"], made) if i == 0 else row["at"]
        spans.append((start, rows[i + 1]["at"] if i + 1 < len(rows) else None))
    return spans


def store_visit(store: Store, row: dict[str, Any], owner: str | None, author: str,
                device_id: str | None, op_id: str | None, insert: bool,
                picker: callback.Picker | None = None, origin: str | None = None) -> None:
    """Write a visit's new state with its revision and the feed row for the card's owner.

    Every path that saves a visit comes here, so a visit saved as submitted is picked
    for call-back by the policy whichever way it came (rules/callback.py). A batch
    passes its `picker`, which reads the policy and dispute counts once. `origin`: the
    device whose push this is, when its result carries the record (feed.read_page)."""
    (picker or callback.Picker(store)).select(row)
    if insert:
        store.insert_visit(row)
    else:
        store.update_visit(row)
    seq = store.append_feed(owner, "visit", row["id"], row["customer_id"], origin)
    store.insert_visit_revision(row, seq, author, device_id, op_id, row["updated_at"])


class _BatchReads:
    """What a push batch's operations read before they write, read once for the batch:
    one query per kind instead of one per operation (on PostgreSQL each is a round trip;
    a visit took ~12 statements, now ~5). An entry the batch itself changes is dropped
    (`forget`) or updated, so each operation still sees the archive as the operations
    before it left it. Anything not loaded is read from the store as before."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.applied: dict[str, dict[str, Any]] = {}
        self.applied_loaded = False
        self.cards: dict[str, dict[str, Any] | None] = {}
        self.makers: dict[str, dict[str, Any] | None] = {}
        self.owners: dict[str, list[dict[str, Any]]] = {}
        self.history_due = False
        self.visits_checked: set[str] = set()
        self.visits_existing: set[str] = set()
        # (customer, rep) -> (card start, ownership windows): what `misdated` judges a
        # visit's date by, the same for every visit of the batch on that card.
        self.windows: dict[tuple[str, str], tuple[str, list[tuple[str, str | None]]]] = {}

    def load(self, ops: list[Any]) -> None:
        self.applied = self.store.applied_ops_by_ids([op.op_id for op in ops])
        self.applied_loaded = True
        creates = [op for op in ops if op.kind == OpKind.visit_create]
        if not creates:
            return
        ids = [op.entity_id for op in creates]
        self.visits_existing = {v["id"] for v in self.store.visits_by_ids(ids)}
        self.visits_checked = set(ids)
        cids = list(dict.fromkeys(op.data.customer_id for op in creates))
        found = {c["id"]: c for c in self.store.customer_heads(cids)}
        self.cards = {cid: found.get(cid) for cid in cids}
        self.history_due = True

    def _load_history(self) -> None:
        """The makers and ownership records of the batch's cards, read once, when the
        first visit needs them: most visits are judged by their card's current owner
        alone (`_Apply.misdated`)."""
        self.history_due = False
        cids = [cid for cid, card in self.cards.items() if card is not None]
        makers = self.store.card_makers(cids)
        self.makers = {cid: makers.get(cid) for cid in cids}
        self.owners = self.store.ownerships(cids)

    def applied_op(self, op_id: str) -> dict[str, Any] | None:
        if self.applied_loaded:
            return self.applied.get(op_id)
        return self.store.applied_op(op_id)

    def record_op(self, op_id: str, device_id: str, seq: int, result: str, at: str) -> None:
        self.store.record_op(op_id, device_id, seq, result, at)
        # The same op_id twice in one batch answers the second from the first.
        self.applied[op_id] = {"device_id": device_id, "seq": seq, "result": result, "at": at}

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        if customer_id in self.cards:
            card = self.cards[customer_id]
            return dict(card) if card is not None else None
        return self.store.customer(customer_id)

    def card_maker(self, customer_id: str) -> dict[str, Any] | None:
        if self.history_due and customer_id in self.cards:
            self._load_history()
        if customer_id in self.makers:
            return self.makers[customer_id]
        return self.store.card_maker(customer_id)

    def ownership(self, customer_id: str) -> list[dict[str, Any]]:
        if self.history_due and customer_id in self.cards:
            self._load_history()
        if customer_id in self.owners:
            return list(self.owners[customer_id])
        return self.store.ownership(customer_id)

    def visit_exists(self, visit_id: str) -> bool:
        if visit_id in self.visits_checked:
            return visit_id in self.visits_existing
        return self.store.visit(visit_id) is not None

    def visit_created(self, visit_id: str) -> None:
        self.visits_checked.add(visit_id)
        self.visits_existing.add(visit_id)

    def served(self, customer_id: str, at: str) -> None:
        card = self.cards.get(customer_id)
        if card is not None:
            card["last_served_at"] = at

    def forget(self, customer_id: str) -> None:
        """The batch changed this card (or its owner): read it from the store again."""
        for cache in (self.cards, self.makers, self.owners):
            cache.pop(customer_id, None)
        for key in [k for k in self.windows if k[0] == customer_id]:
            del self.windows[key]

    def spans(self, customer: dict[str, Any], rep_id: str
              ) -> tuple[str, list[tuple[str, str | None]]]:
        """The card start and the ownership windows of `rep_id` on this card."""
        key = (customer["id"], rep_id)
        if key not in self.windows:
            made = card_start_for(self, customer, rep_id)
            self.windows[key] = (made, ownership_windows(self, customer, rep_id, made))
        return self.windows[key]


class _Apply:
    """Applies one device's operations inside the caller's transaction.

    `accepting`: a reviewer accepts an op that was held (quarantine accept): it is
    applied as if it had arrived in time, so the checks that hold an op for review
    (ownership window, dates) are skipped, and nothing is held again: an op that
    would be comes back as `quarantined` without a row, for the caller to refuse.
    """

    def __init__(self, store: Store, device: Device, now: datetime,
                 accepting: bool = False) -> None:
        self.store = store
        self.device = device
        self.now_dt = now
        self.now = iso(now)
        self.latest_start = iso(now + timedelta(seconds=MAX_CLOCK_SKEW_S))
        self.accepting = accepting
        self.picker = callback.Picker(store)
        self.reads = _BatchReads(store)
        # Accepted from review, an op's result is not the device's to see: its rows are
        # pulled as anyone else's change.
        self.origin = None if accepting else device.id

    def created(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A new visit as its result carries it: what the archive set (CREATED_KEYS),
        for the laptop to store beside the content it sent, which the archive kept as
        sent. The content is not sent back: it was most of a push's answer."""
        return None if self.accepting else created_record(row)

    def sent(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The visit as the result carries it to the device: what a pull would send
        (a new row has the review and call-back columns' defaults; contract-tested)."""
        return None if self.accepting else visit_for_rep({**_NEW_VISIT, **row})

    def result(self, op: Any, status: OpStatus, **kw: Any) -> OpResult:
        return OpResult(op_id=op.op_id, status=status, entity_id=op.entity_id, **kw)

    def quarantine(self, op: Any, reason: str) -> OpResult:
        """Keep the operation for review; it is never merged blindly nor lost."""
        if self.accepting:
            return self.result(op, OpStatus.quarantined, reason=reason)
        self.store.insert_quarantine({
            "op_id": op.op_id, "device_id": self.device.id, "rep_id": self.device.rep_id,
            "kind": op.kind.value, "entity_id": op.entity_id,
            # Only what the rep set: in an edit, null clears a field and absent leaves it.
            "payload": op.model_dump_json(exclude_unset=True),
            "reason": reason, "at": self.now})
        return self.result(op, OpStatus.quarantined, reason=reason)

    def misdated(self, customer: dict[str, Any], started_at: str) -> str | None:
        """Why a visit by this device's rep may not start at `started_at`, or None.

        A visit counts only inside the author's ownership of the customer (a visit
        made offline while they owned it still counts after a reassignment: the
        pool clock is fair to offline work), never before the card existed (but
        for the grace of a card the author made, see `card_start_for`), and never
        later than the server's now plus the clock skew a signed request may have:
        a visit dated ahead would keep the customer out of the pool.
        """
        if self.accepting:
            return None
        rep = self.device.rep_id
        # The common case, judged without the card's history: the author owns the card
        # and the visit starts inside their current ownership, which began at
        # owned_since (cards.assign writes it with the ownership record), after the card
        # existed and not ahead of the server's clock.
        if (customer["owner_rep_id"] == rep and customer["owned_since"] is not None
                and customer["owned_since"] <= started_at <= self.latest_start
                and customer["created_at"] <= started_at):
            return None
        made, spans = self.reads.spans(customer, rep)
        if started_at < min(customer["created_at"], made):
            return BEFORE_CARD
        if started_at > self.latest_start:
            return IN_FUTURE
        if not any(start <= started_at and (end is None or started_at < end) for start, end in spans):
            return NOT_OWNED
        return None

    # --- per kind ---------------------------------------------------------------

    def customer_create(self, op: CustomerCreateOp) -> OpResult:
        self.reads.forget(op.entity_id)
        if self.store.customer(op.entity_id) is not None:
            return self.result(op, OpStatus.rejected, reason="a customer with this id exists")
        rep = self.device.rep_id
        # Who develops, serves: a second card for a customer the archive knows is held,
        # with the first card and its owner named, never merged nor lost.
        found = duplicates.find(self.store, op.data.model_dump())
        if found is not None:
            return self.quarantine(op, duplicates.quarantine_reason(self.store, *found))
        row = cards.insert_customer(
            self.store, self.now, op.data, rep, rep, OwnershipSource.developed,
            customer_id=op.entity_id, created_at=to_record(op, {"at"})["at"],
            device_id=self.device.id, op_id=op.op_id,
        )
        return self.result(op, OpStatus.accepted, rev=1, card_no=row["card_no"])

    def customer_update(self, op: CustomerUpdateOp) -> OpResult:
        self.reads.forget(op.entity_id)
        row = self.store.customer(op.entity_id)
        if row is None:
            if self.store.is_quarantined(op.entity_id) and not self.accepting:
                return self.quarantine(op, "the customer's creation is held for review")
            return self.result(op, OpStatus.rejected, reason="unknown customer")
        if row["owner_rep_id"] != self.device.rep_id and not self.accepting:
            return self.quarantine(op, "customer is no longer assigned to you; held for review")
        revs = self.store.customer_revisions(row["id"], max(op.base_rev, 1))
        snaps = [(r["snapshot"], r["device_id"] == self.device.id) for r in revs]
        fields = CUSTOMER_EDITABLE_FIELDS

        def pick(snap: dict[str, Any]) -> dict[str, Any]:
            return {k: snap.get(k) for k in fields}

        others = fields_changed_by_others(
            (pick(a[0]), pick(b[0]), b[1]) for a, b in zip(snaps, snaps[1:], strict=False)
        )
        outcome = merge_fields(row, op.data.changes(), others)
        conflicts = sorted(outcome.conflicts)
        status = (OpStatus.conflict if conflicts
                  else OpStatus.merged if op.base_rev and op.base_rev < row["rev"]
                  else OpStatus.accepted)
        if outcome.applied:
            row.update(outcome.applied)
            row["rev"] += 1
            row["updated_at"] = self.now
            cards.store_customer(self.store, row, self.device.rep_id, self.device.id, op.op_id)
        for name in conflicts:
            server_value, rep_value = outcome.conflicts[name]
            self.store.insert_conflict({
                "customer_id": row["id"], "field": name,
                "server_value": _json(server_value), "rep_value": _json(rep_value),
                "base_rev": op.base_rev, "rev": row["rev"], "rep_id": self.device.rep_id,
                "device_id": self.device.id, "op_id": op.op_id, "at": self.now})
        return self.result(op, status, rev=row["rev"], conflicts=conflicts)

    def visit_create(self, op: VisitCreateOp) -> OpResult:
        if self.reads.visit_exists(op.entity_id):
            return self.result(op, OpStatus.rejected, reason="a visit with this id exists")
        data = to_record(op.data)
        customer = self.reads.customer(data["customer_id"])
        if customer is None:
            return self.quarantine(op, "unknown customer")
        rep = self.device.rep_id
        misdated = self.misdated(customer, data["started_at"])
        if misdated:
            return self.quarantine(op, misdated)
        refused = attachments.refusal(self.store, self.device, op)
        if refused:
            return self.result(op, OpStatus.rejected, reason=refused)
        row = {"id": op.entity_id, "rev": 1, **data, "rep_id": rep, "device_id": self.device.id,
               "void_reason": "", "created_at": iso(op.at), "updated_at": self.now}
        store_visit(self.store, row, customer["owner_rep_id"], rep, self.device.id, op.op_id, True,
                    self.picker, self.origin)
        self.reads.visit_created(row["id"])
        attachments.record(self.store, self.device, op, row, self.now)
        if (customer["last_served_at"] or "") < data["started_at"]:
            self.store.set_last_served(customer["id"], data["started_at"])
            self.reads.served(customer["id"], data["started_at"])
        # A card with an owner is not in the pool: nothing to give back (the check
        # below would read the card again to find that out).
        if customer["owner_rep_id"] is None and pool.after_visit_accepted(
                self.store, self.now, customer, row) is not None:
            self.reads.forget(customer["id"])
        return self.result(op, OpStatus.accepted, rev=1, record=self.created(row))

    def _editable_visit(self, op: Any) -> tuple[dict[str, Any] | None, OpResult | None]:
        row = self.store.visit(op.entity_id)
        if row is None:
            if self.store.is_quarantined(op.entity_id) and not self.accepting:
                return None, self.quarantine(op, "the visit's creation is held for review")
            return None, self.result(op, OpStatus.rejected, reason="unknown visit")
        if row["rep_id"] != self.device.rep_id:
            return None, self.result(op, OpStatus.rejected, reason="only the author may edit a visit")
        if row["status"] == VisitStatus.approved:
            return None, self.result(op, OpStatus.rejected, reason=APPROVED_READ_ONLY)
        if row["status"] == VisitStatus.void:
            return None, self.result(op, OpStatus.rejected, reason="visit is void: it stays in "
                                     "the archive as it is; log a new visit instead")
        return row, None

    def _save_visit(self, op: Any, row: dict[str, Any]) -> OpResult:
        row["rev"] += 1
        row["updated_at"] = self.now
        customer = self.reads.customer(row["customer_id"])
        assert customer is not None  # visits reference their customer
        store_visit(self.store, row, customer["owner_rep_id"], self.device.rep_id,
                    self.device.id, op.op_id, False, self.picker, self.origin)
        attachments.record(self.store, self.device, op, row, self.now)
        return self.result(op, OpStatus.accepted, rev=row["rev"], record=self.sent(row))

    def visit_update(self, op: VisitUpdateOp) -> OpResult:
        row, refused = self._editable_visit(op)
        if refused or row is None:
            return refused  # type: ignore[return-value]
        bad_evidence = attachments.refusal(self.store, self.device, op)
        if bad_evidence:
            return self.result(op, OpStatus.rejected, reason=bad_evidence)
        changes = op.data.changes()
        status = changes.get("status")
        if status and not can_transition(VisitStatus(row["status"]), VisitStatus(status)):
            return self.result(op, OpStatus.rejected,
                               reason=f"a {row['status']} visit cannot go back to {status}")
        if row["status"] == VisitStatus.returned:
            # The author's correction resubmits it; the manager's comment stays on the
            # record (and in its history) until the next review.
            changes["status"] = VisitStatus.submitted.value
        moved = changes.get("started_at")
        row.update(changes)
        try:
            VisitCreate.model_validate({k: row[k] for k in _VISIT_FIELDS})
        except ValidationError as exc:
            return self.result(op, OpStatus.rejected, reason=exc.errors()[0]["msg"])
        if moved is not None:
            # Ownership is judged at the new time, as for a new visit: an edit may
            # not carry a visit out of the author's ownership window.
            customer = self.reads.customer(row["customer_id"])
            assert customer is not None
            misdated = self.misdated(customer, moved)
            if misdated:
                return self.quarantine(op, misdated)
        return self._save_visit(op, row)

    def visit_void(self, op: VisitVoidOp) -> OpResult:
        row, refused = self._editable_visit(op)
        if refused or row is None:
            return refused  # type: ignore[return-value]
        row.update(status=VisitStatus.void.value, void_reason=op.data.reason)
        return self._save_visit(op, row)

    def plan_submit(self, op: PlanSubmitOp) -> OpResult:
        """The rep's daily visit plan (rules/plans.py); refused with the reason when a
        customer is not theirs, the day is out of range or the plan is approved."""
        try:
            rev = plans.submit(self.store, self.now_dt, self.device.rep_id, op.entity_id, op.data)
        except plans.Refused as exc:
            return self.result(op, OpStatus.rejected, reason=str(exc))
        return self.result(op, OpStatus.accepted, rev=rev)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


_HANDLERS: dict[OpKind, Callable[[_Apply, Any], OpResult]] = {
    OpKind.customer_create: _Apply.customer_create,
    OpKind.customer_update: _Apply.customer_update,
    OpKind.visit_create: _Apply.visit_create,
    OpKind.visit_update: _Apply.visit_update,
    OpKind.visit_void: _Apply.visit_void,
    OpKind.plan_submit: _Apply.plan_submit,
}


def _each_once(applier: _Apply, ops: list[Any], handle: Callable[[Any], OpResult],
               received: bool = False) -> list[OpResult]:
    """Run `handle` on each op not seen before and record its result; a replayed
    op_id returns its stored result, one used by another device is rejected.
    `received`: a batch stored before (rules/received.py), whose receipt moved the
    device's turn and backlog already."""
    store, device, reads = applier.store, applier.device, applier.reads
    reads.load(ops)
    results: list[OpResult] = []
    for op in ops:
        seen = reads.applied_op(op.op_id)
        if seen is not None:
            if seen["device_id"] == device.id:
                results.append(_replayed(store, op, seen["result"]))
            else:
                results.append(applier.result(op, OpStatus.rejected, reason=OP_ID_USED))
            continue
        res = handle(op)
        # Stored without the record (null): a replay reads the visit as it is then.
        reads.record_op(op.op_id, device.id, op.seq,
                        orjson.dumps({**res.wire(), "record": None}).decode(), applier.now)
        results.append(res)
    if received:
        return results
    # Every op of the batch is answered now, replayed and refused ones too: the device's
    # next batch, which may already be waiting for its turn (Archive.push), may go.
    if ops:
        store.raise_last_seq(device.id, max(op.seq for op in ops))
    # The backlog the device reported at its check-in shrinks by what it pushed, so a
    # full sync shows none without waiting for the next check-in.
    store.shrink_device_backlog(device.id, len(ops))
    return results


def _replayed(store: Store, op: Any, stored: str) -> OpResult:
    """The stored result of an op applied before; an accepted visit op's carries the
    visit as it is now, since this device's pulls leave out the rows its pushes made."""
    res = OpResult.model_validate_json(stored)
    if res.status == OpStatus.accepted and op.kind in _VISIT_KINDS:
        row = store.visit(op.entity_id)
        if row is not None:
            res.record = (created_record(row) if op.kind == OpKind.visit_create
                          else visit_for_rep(row))
    return res


# The columns of a visit the push does not set, as a new row holds them.
_NEW_VISIT: dict[str, Any] = {"review_comment": "", "reviewed_by": None, "reviewed_at": None,
                              "callback": None, "callback_note": ""}
# A new visit's result: its id, card and start (the laptop notes the card served), and
# the columns the archive sets, which is what agent.store applies of it.
CREATED_KEYS = ("id", "customer_id", "started_at", "rev", "status", "created_at", "updated_at",
                *_NEW_VISIT)


def created_record(row: dict[str, Any]) -> dict[str, Any]:
    """A visit.create's result record: CREATED_KEYS of the visit as a pull sends it (a
    new row without the review columns has their defaults)."""
    sent = visit_for_rep({**_NEW_VISIT, **row})
    return {k: sent[k] for k in CREATED_KEYS}
_VISIT_KINDS = frozenset({OpKind.visit_create, OpKind.visit_update, OpKind.visit_void})


def apply_ops(store: Store, device: Device, ops: list[Any], now: datetime,
              received: bool = False) -> list[OpResult]:
    """Apply operations in device order; a replayed op_id returns its stored result.
    `received`: a stored batch applied after its answer (see `_each_once`)."""
    applier = _Apply(store, device, now)
    return _each_once(applier, ops, lambda op: _HANDLERS[op.kind](applier, op), received)


def apply_held(store: Store, device: Device, op: Any, now: datetime) -> OpResult:
    """Apply an op a reviewer accepts from quarantine, as if it had arrived in time (see
    `_Apply`). Its result is not recorded: the op_id keeps its answer `quarantined`."""
    handler = _HANDLERS.get(op.kind)
    if handler is None or op.kind == OpKind.plan_submit:  # a plan is submitted again, not held
        return OpResult(op_id=op.op_id, status=OpStatus.rejected, entity_id=op.entity_id,
                        reason=f"a held {op.kind} cannot be applied from review")
    return handler(_Apply(store, device, now, accepting=True), op)


def quarantine_ops(store: Store, device: Device, ops: list[Any], reason: str,
                   now: datetime) -> list[OpResult]:
    """Hold every op for review instead of applying it (replays answer as before)."""
    applier = _Apply(store, device, now)
    return _each_once(applier, ops, lambda op: applier.quarantine(op, reason))
