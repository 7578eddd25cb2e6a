"""Quarantine: operations the archive will not apply are held for a person, never lost."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from server.archive.engine import UniqueViolation

from ..harness import customer_create, customer_update, new_id, op
from .kit import REFUSED, Ctx, Stores, assert_types, at, ids, ops, visit_create


def test_visit_logged_before_a_reassignment_is_accepted_after_it_quarantined(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.clock.advance(timedelta(days=2))
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation", "admin")
    before = visit_create(cust["id"], started_at=at(timedelta(days=1)))
    after = visit_create(cust["id"], started_at=at(timedelta(days=3)))
    ctx.clock.advance(timedelta(days=2))
    results = ctx.push(ctx.a, before, after)
    assert [r.status for r in results] == ["accepted", "quarantined"]
    assert ids(ctx.archive.list_visits(customer=cust["id"])) == {before["entity_id"]}
    (held,) = ctx.archive.quarantine()
    assert held["entity_id"] == after["entity_id"]  # kept for review, never lost
    assert held["payload"]["op_id"] == after["op_id"] and held["rep_id"] == ctx.a.rep_id
    # the accepted one is the new owner's history now
    assert before["entity_id"] in ids(ctx.pull_all(ctx.b.rep_id).visits)


def test_misdated_visits_are_held(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    for when, reason in ((timedelta(days=-1), "before the customer's card"),
                         (timedelta(hours=1), "in the future")):
        (result,) = ctx.push(ctx.a, visit_create(cust["id"], started_at=at(when)))
        assert result.status == "quarantined" and reason in (result.reason or "")
    assert ctx.archive.list_visits() == []


def test_edits_of_a_held_creation_are_held_too(ctx: Ctx) -> None:
    other = ctx.customer(ctx.b)
    visit = visit_create(other["id"])  # A may not visit B's customer
    edit = op("visit.update", visit["entity_id"], {"outcome": "x"}, base_rev=1)
    card_edit = customer_update(other["id"], notes="mine now?")
    assert [r.status for r in ctx.push(ctx.a, visit, edit, card_edit)] == ["quarantined"] * 3
    assert [h["kind"] for h in ctx.archive.quarantine()] == ["visit.create", "visit.update",
                                                             "customer.update"]
    assert [h["kind"] for h in ctx.archive.quarantine(limit=1)] == ["visit.create"]
    (unknown,) = ctx.push(ctx.a, op("visit.update", new_id(), {"outcome": "x"}, base_rev=1))
    assert unknown.status == "rejected"
    with pytest.raises(REFUSED):
        ctx.stores.raw("DELETE FROM quarantine")
    assert len(ctx.archive.quarantine()) == 3 and ctx.archive.counts()["quarantine"] == 3


def test_a_final_flush_holds_everything_once_and_orders_the_wipe(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.archive.revoke("Rep A", "left the company")
    device = ctx.archive.get_device(ctx.a.id)
    assert device is not None and device.state == "revoked"
    flushed = ops(visit_create(cust["id"]), customer_create("Last Lead Ltd"))
    results, order = ctx.archive.final_flush(device, flushed)
    assert [r.status for r in results] == ["quarantined"] * 2
    again, order_again = ctx.archive.final_flush(device, flushed)
    assert again == results and order_again == order  # once per op_id, one order
    assert order["type"] == "wipe_order" and order["device_id"] == device.id
    assert len(ctx.archive.quarantine()) == 2 and ctx.archive.list_visits() == []
    assert ctx.archive.get_device(device.id).state == "wipe_pending"


def _held(op_id: str, entity: str, rep: str = "rep_a") -> dict[str, str]:
    return {"op_id": op_id, "device_id": "dev_1", "rep_id": rep, "kind": "visit.create",
            "entity_id": entity, "payload": orjson.dumps({"op_id": op_id, "n": [1, 2]}).decode(),
            "reason": "why", "at": at()}


def test_store_quarantine(stores: Stores) -> None:
    with stores.write() as s:
        s.insert_quarantine(_held("op_2", "e1"))
        s.insert_quarantine(_held("op_1", "e2", "rep_b"))
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_quarantine(_held("op_1", "e3"))
    with stores.read() as s:
        assert s.is_quarantined("e1") and s.is_quarantined("e2") and not s.is_quarantined("e3")
        rows = s.quarantined()
        assert [r["op_id"] for r in rows] == ["op_2", "op_1"]  # oldest first
        assert rows[0]["payload"] == {"op_id": "op_2", "n": [1, 2]} and rows[0]["reviewed_at"] is None
        assert_types(rows[0], ints=("id",), strs=("op_id", "reason", "at", "kind"))
        assert [r["op_id"] for r in s.quarantined(limit=1)] == ["op_2"]
        assert (s.count_quarantined(), s.count_quarantined("rep_b"), s.count_quarantined("x")) == (2, 1, 0)
