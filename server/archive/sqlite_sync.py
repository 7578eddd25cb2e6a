"""Push and pull on the SQLite archive: applying operations, reading the change feed.

Everything here runs inside a transaction opened by the caller, so a batch
either lands whole or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

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
    VisitCreate,
    VisitCreateOp,
    VisitUpdateOp,
    VisitVoidOp,
)
from schema.records import to_record
from schema.signing import MAX_CLOCK_SKEW_S

from .base import Device, PullPage

if TYPE_CHECKING:
    from .sqlite import SQLiteArchive

_VISIT_FIELDS = tuple(VisitCreate.model_fields)

# Why a visit's start time can be held for review: it is the time the pool clock
# counts and the time ownership is judged at, so it must fall where the author
# could have made the visit.
BEFORE_CARD = "visit dated before the customer's card existed; held for review"
NOT_OWNED = "customer was not assigned to you when the visit started"
IN_FUTURE = "visit dated in the future; held for review"


# A rep who finds a new customer visits first and makes the card right after: on
# their own laptop's card, a visit may start this long before the card was made.
NEW_CARD_GRACE = timedelta(hours=12)


def card_start_for(c: sqlite3.Connection, customer: dict[str, Any], rep_id: str) -> str:
    """The earliest start a visit by `rep_id` may have on this card.

    The card's creation time, or, for a card `rep_id` made on their own laptop,
    up to NEW_CARD_GRACE before it (the visit that found the customer came first).
    A laptop-made card's time is the laptop's word, so it counts back no further
    than that laptop's enrollment (less the clock skew allowed to a signed request).
    """
    made = customer["created_at"]
    maker = c.execute(
        "SELECT d.enrolled_at, d.rep_id FROM customer_revisions r JOIN devices d "
        "ON d.id = r.device_id WHERE r.customer_id=? AND r.rev=1", (customer["id"],),
    ).fetchone()
    if maker is None:
        return str(made)
    enrolled_at, maker_rep = maker
    if maker_rep == rep_id:
        made = iso(parse_iso(made) - NEW_CARD_GRACE)
    return max(made, iso(parse_iso(enrolled_at) - timedelta(seconds=MAX_CLOCK_SKEW_S)))


def ownership_windows(
    c: sqlite3.Connection, customer: dict[str, Any], rep_id: str, made: str | None = None
) -> list[tuple[str, str | None]]:
    """The [start, end) spans in which `rep_id` owned the customer (end None: still does).

    The first span starts at `card_start_for` when that is earlier than the
    server's record of the card: a card made offline was the rep's from the
    moment they made it, and the visits logged with it count from then.
    """
    rows = c.execute(
        "SELECT to_rep_id, at FROM ownership WHERE customer_id=? ORDER BY at, id",
        (customer["id"],),
    ).fetchall()
    made = made or card_start_for(c, customer, rep_id)
    spans: list[tuple[str, str | None]] = []
    for i, (to_rep, at) in enumerate(rows):
        if to_rep != rep_id:
            continue
        start = min(at, made) if i == 0 else at
        spans.append((start, rows[i + 1][1] if i + 1 < len(rows) else None))
    return spans


def feed(c: sqlite3.Connection, rep_id: str | None, kind: str, entity_id: str, customer_id: str) -> int:
    """Append a change-feed row addressed to `rep_id`; returns its server sequence."""
    cur = c.execute(
        "INSERT INTO feed (rep_id, kind, entity_id, customer_id) VALUES (?,?,?,?)",
        (rep_id, kind, entity_id, customer_id),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def customer_revision(
    c: sqlite3.Connection, row: dict[str, Any], seq: int, author: str,
    device_id: str | None, op_id: str | None, at: str,
) -> None:
    c.execute(
        "INSERT INTO customer_revisions (customer_id, rev, server_seq, snapshot, author, "
        "device_id, op_id, at) VALUES (?,?,?,?,?,?,?,?)",
        (row["id"], row["rev"], seq, orjson.dumps(row).decode(), author, device_id, op_id, at),
    )


def store_customer(
    c: sqlite3.Connection, row: dict[str, Any], author: str, device_id: str | None,
    op_id: str | None, feed_kind: str = "customer",
) -> None:
    """Write the new state of a customer card, with its revision and feed row."""
    sets = ", ".join(f"{k}=:{k}" for k in row if k != "id")
    c.execute(f"UPDATE customers SET {sets} WHERE id=:id", row)  # noqa: S608
    seq = feed(c, row["owner_rep_id"], feed_kind, row["id"], row["id"])
    customer_revision(c, row, seq, author, device_id, op_id, row["updated_at"])


def _store_visit(
    c: sqlite3.Connection, row: dict[str, Any], owner: str | None, author: str,
    device_id: str | None, op_id: str, insert: bool,
) -> None:
    if insert:
        cols = ", ".join(row)
        c.execute(
            f"INSERT INTO visits ({cols}) VALUES ({', '.join(':' + k for k in row)})", row  # noqa: S608
        )
    else:
        sets = ", ".join(f"{k}=:{k}" for k in row if k != "id")
        c.execute(f"UPDATE visits SET {sets} WHERE id=:id", row)  # noqa: S608
    seq = feed(c, owner, "visit", row["id"], row["customer_id"])
    c.execute(
        "INSERT INTO visit_revisions (visit_id, rev, server_seq, snapshot, author, device_id, "
        "op_id, at) VALUES (?,?,?,?,?,?,?,?)",
        (row["id"], row["rev"], seq, orjson.dumps(row).decode(), author, device_id, op_id,
         row["updated_at"]),
    )


class _Apply:
    """Applies one device's operations inside the caller's transaction."""

    def __init__(self, archive: SQLiteArchive, c: sqlite3.Connection, device: Device) -> None:
        self.archive = archive
        self.c = c
        self.device = device
        self.now = archive.now()

    def result(self, op: Any, status: OpStatus, **kw: Any) -> OpResult:
        return OpResult(op_id=op.op_id, status=status, entity_id=op.entity_id, **kw)

    def quarantine(self, op: Any, reason: str) -> OpResult:
        """Keep the operation for review; it is never merged blindly nor lost."""
        self.c.execute(
            "INSERT INTO quarantine (op_id, device_id, rep_id, kind, entity_id, payload, reason, at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (op.op_id, self.device.id, self.device.rep_id, op.kind.value, op.entity_id,
             op.model_dump_json(), reason, self.now),
        )
        return self.result(op, OpStatus.quarantined, reason=reason)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        row = self.c.execute("SELECT * FROM customers WHERE id=?", (customer_id,)).fetchone()
        return dict(row) if row else None

    def visit(self, visit_id: str) -> dict[str, Any] | None:
        row = self.c.execute("SELECT * FROM visits WHERE id=?", (visit_id,)).fetchone()
        return dict(row) if row else None

    def in_quarantine(self, entity_id: str) -> bool:
        return self.c.execute(
            "SELECT 1 FROM quarantine WHERE entity_id=? LIMIT 1", (entity_id,)
        ).fetchone() is not None

    def misdated(self, customer: dict[str, Any], started_at: str) -> str | None:
        """Why a visit by this device's rep may not start at `started_at`, or None.

        A visit counts only inside the author's ownership of the customer (a visit
        made offline while they owned it still counts after a reassignment: the
        pool clock is fair to offline work), never before the card existed (but
        for the grace of a card the author made, see `card_start_for`), and never
        later than the server's now plus the clock skew a signed request may have:
        a visit dated ahead would keep the customer out of the pool.
        """
        made = card_start_for(self.c, customer, self.device.rep_id)
        if started_at < min(customer["created_at"], made):
            return BEFORE_CARD
        if started_at > iso(self.archive.clock.now() + timedelta(seconds=MAX_CLOCK_SKEW_S)):
            return IN_FUTURE
        spans = ownership_windows(self.c, customer, self.device.rep_id, made)
        if not any(start <= started_at and (end is None or started_at < end) for start, end in spans):
            return NOT_OWNED
        return None

    # --- per kind ---------------------------------------------------------------

    def customer_create(self, op: CustomerCreateOp) -> OpResult:
        if self.customer(op.entity_id) is not None:
            return self.result(op, OpStatus.rejected, reason="a customer with this id exists")
        row = self.archive._insert_customer(
            self.c, op.data, self.device.rep_id, self.device.rep_id, OwnershipSource.developed,
            customer_id=op.entity_id, created_at=to_record(op, {"at"})["at"],
            device_id=self.device.id, op_id=op.op_id,
        )
        return self.result(op, OpStatus.accepted, rev=1, card_no=row["card_no"])

    def customer_update(self, op: CustomerUpdateOp) -> OpResult:
        row = self.customer(op.entity_id)
        if row is None:
            if self.in_quarantine(op.entity_id):
                return self.quarantine(op, "the customer's creation is held for review")
            return self.result(op, OpStatus.rejected, reason="unknown customer")
        if row["owner_rep_id"] != self.device.rep_id:
            return self.quarantine(op, "customer is no longer assigned to you; held for review")
        base = max(op.base_rev, 1)
        revs = self.c.execute(
            "SELECT snapshot, device_id FROM customer_revisions WHERE customer_id=? AND rev>=? "
            "ORDER BY rev", (row["id"], base),
        ).fetchall()
        snaps = [(orjson.loads(s), d == self.device.id) for s, d in revs]
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
            store_customer(self.c, row, self.device.rep_id, self.device.id, op.op_id)
        for name in conflicts:
            server_value, rep_value = outcome.conflicts[name]
            self.c.execute(
                "INSERT INTO conflicts (customer_id, field, server_value, rep_value, base_rev, rev, "
                "rep_id, device_id, op_id, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row["id"], name, orjson.dumps(server_value).decode(),
                 orjson.dumps(rep_value).decode(), op.base_rev, row["rev"], self.device.rep_id,
                 self.device.id, op.op_id, self.now),
            )
        return self.result(op, status, rev=row["rev"], conflicts=conflicts)

    def visit_create(self, op: VisitCreateOp) -> OpResult:
        if self.c.execute("SELECT 1 FROM visits WHERE id=?", (op.entity_id,)).fetchone():
            return self.result(op, OpStatus.rejected, reason="a visit with this id exists")
        data = to_record(op.data)
        customer = self.customer(data["customer_id"])
        if customer is None:
            return self.quarantine(op, "unknown customer")
        rep = self.device.rep_id
        misdated = self.misdated(customer, data["started_at"])
        if misdated:
            return self.quarantine(op, misdated)
        row = {"id": op.entity_id, "rev": 1, **data, "rep_id": rep, "device_id": self.device.id,
               "void_reason": "", "created_at": iso(op.at), "updated_at": self.now}
        _store_visit(self.c, row, customer["owner_rep_id"], rep, self.device.id, op.op_id, True)
        if (customer["last_served_at"] or "") < data["started_at"]:
            self.c.execute(
                "UPDATE customers SET last_served_at=? WHERE id=?",
                (data["started_at"], customer["id"]),
            )
        return self.result(op, OpStatus.accepted, rev=1)

    def _editable_visit(self, op: Any) -> tuple[dict[str, Any] | None, OpResult | None]:
        row = self.visit(op.entity_id)
        if row is None:
            if self.in_quarantine(op.entity_id):
                return None, self.quarantine(op, "the visit's creation is held for review")
            return None, self.result(op, OpStatus.rejected, reason="unknown visit")
        if row["rep_id"] != self.device.rep_id:
            return None, self.result(op, OpStatus.rejected, reason="only the author may edit a visit")
        if row["status"] not in (VisitStatus.draft, VisitStatus.submitted):
            return None, self.result(
                op, OpStatus.rejected,
                reason=f"visit is {row['status']}; ask your supervisor to correct it",
            )
        return row, None

    def _save_visit(self, op: Any, row: dict[str, Any]) -> OpResult:
        row["rev"] += 1
        row["updated_at"] = self.now
        owner = self.c.execute(
            "SELECT owner_rep_id FROM customers WHERE id=?", (row["customer_id"],)
        ).fetchone()[0]
        _store_visit(self.c, row, owner, self.device.rep_id, self.device.id, op.op_id, False)
        return self.result(op, OpStatus.accepted, rev=row["rev"])

    def visit_update(self, op: VisitUpdateOp) -> OpResult:
        row, refused = self._editable_visit(op)
        if refused or row is None:
            return refused  # type: ignore[return-value]
        status = op.data.changes().get("status")
        if status and not can_transition(VisitStatus(row["status"]), VisitStatus(status)):
            return self.result(op, OpStatus.rejected,
                               reason=f"a {row['status']} visit cannot go back to {status}")
        changes = op.data.changes()
        moved = changes.get("started_at")
        row.update(changes)
        try:
            VisitCreate.model_validate({k: row[k] for k in _VISIT_FIELDS})
        except ValidationError as exc:
            return self.result(op, OpStatus.rejected, reason=exc.errors()[0]["msg"])
        if moved is not None:
            # Ownership is judged at the new time, as for a new visit: an edit may
            # not carry a visit out of the author's ownership window.
            customer = self.customer(row["customer_id"])
            assert customer is not None  # visits reference their customer
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


_HANDLERS: dict[OpKind, Callable[[_Apply, Any], OpResult]] = {
    OpKind.customer_create: _Apply.customer_create,
    OpKind.customer_update: _Apply.customer_update,
    OpKind.visit_create: _Apply.visit_create,
    OpKind.visit_update: _Apply.visit_update,
    OpKind.visit_void: _Apply.visit_void,
}


def _each_once(
    applier: _Apply, ops: list[Any], handle: Callable[[Any], OpResult]
) -> list[OpResult]:
    """Run `handle` on each op not seen before and record its result; a replayed
    op_id returns its stored result, one used by another device is rejected."""
    c, device = applier.c, applier.device
    results: list[OpResult] = []
    max_seq = 0
    for op in ops:
        seen = c.execute(
            "SELECT device_id, result FROM applied_ops WHERE op_id=?", (op.op_id,)
        ).fetchone()
        if seen is not None:
            if seen[0] == device.id:
                results.append(OpResult.model_validate_json(seen[1]))
            else:
                results.append(applier.result(op, OpStatus.rejected, reason="op_id already used"))
            continue
        res = handle(op)
        c.execute(
            "INSERT INTO applied_ops (op_id, device_id, seq, result, at) VALUES (?,?,?,?,?)",
            (op.op_id, device.id, op.seq, res.model_dump_json(), applier.now),
        )
        results.append(res)
        max_seq = max(max_seq, op.seq)
    if max_seq:
        c.execute("UPDATE devices SET last_seq=max(last_seq, ?) WHERE id=?", (max_seq, device.id))
    return results


def apply_ops(
    archive: SQLiteArchive, c: sqlite3.Connection, device: Device, ops: list[Any]
) -> list[OpResult]:
    """Apply operations in device order; a replayed op_id returns its stored result."""
    applier = _Apply(archive, c, device)
    return _each_once(applier, ops, lambda op: _HANDLERS[op.kind](applier, op))


def quarantine_ops(
    archive: SQLiteArchive, c: sqlite3.Connection, device: Device, ops: list[Any], reason: str
) -> list[OpResult]:
    """Hold every op for review instead of applying it (replays answer as before)."""
    applier = _Apply(archive, c, device)
    return _each_once(applier, ops, lambda op: applier.quarantine(op, reason))


def in_chunks(
    c: sqlite3.Connection, sql: str, ids: list[str], extra: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    """Run `sql` (one `{}` for the IN list, then `extra` params) over `ids` in bounded chunks."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        marks = ",".join("?" for _ in chunk)
        out.extend(dict(r) for r in c.execute(sql.format(marks), (*chunk, *extra)))
    return out





def read_feed(c: sqlite3.Connection, rep_id: str, after_seq: int, limit: int) -> PullPage:
    """One page of the rep's changes since `after_seq`, resolved to current state.

    The feed may name an entity several times and may name customers that have
    since left the rep; only what is in scope now is sent, and an evict is sent
    only when the customer is out of scope now (a later grant wins).
    """
    rows = c.execute(
        "SELECT seq, kind, entity_id, customer_id FROM feed WHERE rep_id=? AND seq>? "
        "ORDER BY seq LIMIT ?", (rep_id, after_seq, limit),
    ).fetchall()
    page = PullPage(last_seq=rows[-1][0] if rows else after_seq, more=len(rows) == limit)
    if not rows:
        return page
    customer_ids = list({r[3] for r in rows})
    owners = {
        r["id"]: r["owner_rep_id"]
        for r in in_chunks(c, "SELECT id, owner_rep_id FROM customers WHERE id IN ({})", customer_ids)
    }
    owned = {cid for cid, owner in owners.items() if owner == rep_id}
    send_customers: dict[str, None] = {}
    granted: dict[str, None] = {}
    visit_ids: dict[str, None] = {}
    evicted: dict[str, None] = {}
    for _, kind, entity_id, customer_id in rows:
        if customer_id not in owned:
            if kind == "evict":
                evicted[customer_id] = None
            continue
        if kind == "visit":
            visit_ids[entity_id] = None
        else:
            send_customers[customer_id] = None
            if kind == "grant":
                granted[customer_id] = None
    page.evicted = list(evicted)
    page.customers = in_chunks(c, "SELECT * FROM customers WHERE id IN ({})", list(send_customers))
    visits = in_chunks(c, "SELECT * FROM visits WHERE customer_id IN ({})", list(granted))
    have = {v["id"] for v in visits}
    visits += in_chunks(
        c, "SELECT * FROM visits WHERE id IN ({})", [v for v in visit_ids if v not in have]
    )
    for v in visits:
        v.pop("device_id", None)
    page.visits = visits
    return page
