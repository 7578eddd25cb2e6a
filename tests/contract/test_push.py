"""Push and idempotency: exactly once per op_id, all or nothing, visits kept forever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from schema.enums import OpKind
from server.archive.engine import UniqueViolation

from ..harness import customer_create, customer_update, new_id, op
from .kit import (
    REFUSED,
    Ctx,
    Stores,
    assert_types,
    at,
    customer_row,
    ids,
    ops,
    rep_row,
    visit_create,
    visit_row,
)

# --- the facade ---------------------------------------------------------------------------


def test_same_op_pushed_again_gives_the_same_result_and_one_row(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], started_at=at(timedelta(minutes=1)))
    ctx.clock.advance(timedelta(minutes=1))
    first = ctx.push(ctx.a, visit)
    assert first[0].status == "accepted"
    counts = ctx.archive.counts()
    for _ in range(3):  # a lost response, retried
        ctx.clock.advance(timedelta(minutes=5))
        assert ctx.push(ctx.a, visit) == first
    assert ctx.archive.counts() == counts
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert row["id"] == visit["entity_id"] and row["rev"] == 1
    (applied,) = ctx.archive.applied_ops(ctx.a.id)
    assert applied["op_id"] == visit["op_id"] and applied["result"]["status"] == "accepted"
    assert ctx.archive.list_devices("Rep A")[0]["last_seq"] == visit["seq"]


def test_replayed_op_keeps_its_first_result_even_when_things_changed(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    edit = customer_update(cust["id"], notes="first word")
    first = ctx.push(ctx.a, edit)
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation", "admin")
    # evaluated now the edit would be quarantined; a replay answers as the first time
    assert ctx.push(ctx.a, edit) == first
    assert ctx.archive.get_customer(cust["id"])["notes"] == "first word"
    assert ctx.archive.quarantine() == []


def test_same_op_twice_in_one_call_applies_once(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    results = ctx.archive.push(ctx.a, ops(visit_create(cust["id"])) * 2)
    assert results[0] == results[1] and results[0].status == "accepted"
    assert len(ctx.archive.list_visits(customer=cust["id"])) == 1


def test_op_id_used_by_another_device_is_refused(ctx: Ctx) -> None:
    cust_a, cust_b = ctx.customer(ctx.a), ctx.customer(ctx.b)
    mine = visit_create(cust_b["id"])
    ctx.push(ctx.b, mine)
    counts = ctx.archive.counts()
    theirs = {**visit_create(cust_a["id"]), "op_id": mine["op_id"]}
    (result,) = ctx.push(ctx.a, theirs)
    assert result.status == "rejected" and result.entity_id == theirs["entity_id"]
    assert ctx.archive.counts() == counts
    assert ctx.archive.list_visits(customer=cust_a["id"]) == []


class Exploding:
    """A visit operation that fails when the archive reads its data: a crash mid-batch."""

    kind = OpKind.visit_create
    seq = 999
    base_rev = 0

    def __init__(self) -> None:
        self.op_id = new_id()
        self.entity_id = new_id()

    @property
    def data(self) -> Any:
        raise RuntimeError("storage failure in the middle of a batch")


def test_a_batch_that_fails_midway_changes_nothing(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    good = ops(visit_create(cust["id"]), customer_create("Developed Here Ltd"),
               customer_update(cust["id"], phone="0755-1234 5678"))
    cursor = ctx.pull_all(ctx.a.rep_id).last_seq
    counts = ctx.archive.counts()
    card = ctx.archive.get_customer(cust["id"])
    with pytest.raises(RuntimeError, match="storage failure"):
        ctx.archive.push(ctx.a, [*good, Exploding()])
    assert ctx.archive.counts() == counts
    assert ctx.archive.get_customer(cust["id"]) == card
    assert ctx.pull_all(ctx.a.rep_id, cursor).last_seq == cursor  # no feed rows either
    assert ctx.archive.applied_ops(ctx.a.id) == []
    # nothing was recorded as applied: the same ops go through afterwards
    assert [r.status for r in ctx.archive.push(ctx.a, good)] == ["accepted"] * 3


def test_visits_cannot_be_deleted_and_voiding_keeps_them(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], summary="Wrong customer, sorry")
    ctx.push(ctx.a, visit)
    (result,) = ctx.push(ctx.a, op("visit.void", visit["entity_id"],
                                   {"reason": "logged on the wrong card"}, base_rev=1))
    assert result.status == "accepted" and result.rev == 2
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert (row["status"], row["void_reason"], row["summary"]) == (
        "void", "logged on the wrong card", "Wrong customer, sorry")
    assert [r["snapshot"]["status"] for r in ctx.archive.visit_history(visit["entity_id"])] == [
        "submitted", "void"]
    for sql in ("DELETE FROM visits", "UPDATE visit_revisions SET author='someone else'",
                "DELETE FROM visit_revisions"):
        with pytest.raises(REFUSED):
            ctx.stores.raw(sql)
    assert ctx.archive.get_visit(visit["entity_id"]) == row
    assert len(ctx.archive.visit_history(visit["entity_id"])) == 2


def test_visit_rules_on_edits(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"])
    ctx.push(ctx.a, visit)
    edit = op("visit.update", visit["entity_id"], {"outcome": "signed"}, base_rev=1)
    (by_b,) = ctx.push(ctx.b, edit)
    assert by_b.status == "rejected"  # only the author
    (by_a,) = ctx.push(ctx.a, {**edit, "op_id": new_id()})
    assert by_a.status == "accepted" and by_a.rev == 2
    ctx.archive.add_staff("manager", "admin")
    reviewed = ctx.archive.approve_visit(visit["entity_id"], "manager")
    assert reviewed["rev"] == 3
    (late,) = ctx.push(ctx.a, op("visit.update", visit["entity_id"], {"outcome": "x"}, base_rev=3))
    assert late.status == "rejected" and "read-only" in (late.reason or "")
    with pytest.raises(Exception, match="only a submitted visit"):
        ctx.archive.return_visit(visit["entity_id"], "manager", "too late")
    assert ctx.archive.get_customer(cust["id"])["last_served_at"] == at()
    assert ctx.archive.count_visits("Rep A") == 1 and ctx.archive.count_visits(customer=cust["id"]) == 1


# --- the store: applied ops -----------------------------------------------------------------


def test_store_applied_ops(stores: Stores) -> None:
    with stores.write() as s:
        s.record_op("op_2", "dev_1", 2, '{"status": "accepted"}', at())
        s.record_op("op_1", "dev_1", 1, '{"status": "rejected"}', at())
        s.record_op("op_x", "dev_2", 1, "{}", at())
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.record_op("op_1", "dev_2", 9, "{}", at())
    with stores.read() as s:
        assert s.applied_op("op_1") == {"device_id": "dev_1", "seq": 1,
                                        "result": '{"status": "rejected"}', "at": at()}
        assert s.applied_op("nope") is None
        rows = s.applied_ops("dev_1")
        assert [r["op_id"] for r in rows] == ["op_1", "op_2"]
        assert_types(rows[0], ints=("seq",), strs=("op_id", "device_id", "result", "at"))
        assert s.applied_ops("dev_none") == []
        # A push batch's lookup of all its op ids at once: the same rows, by op_id.
        batch = s.applied_ops_by_ids(["op_1", "nope", "op_x"])
        assert batch == {"op_1": s.applied_op("op_1"), "op_x": s.applied_op("op_x")}
        assert s.applied_ops_by_ids([]) == {}
        many = s.applied_ops_by_ids([f"none_{i}" for i in range(2000)] + ["op_2"])
        assert list(many) == ["op_2"]  # past the IN-list chunk size


def test_store_rollback_on_exception_writes_nothing(stores: Stores) -> None:
    with pytest.raises(KeyError), stores.write() as s:
        s.record_op("op_1", "dev_1", 1, "{}", at())
        s.insert_rep(rep_row("A"))
        s.append_feed(None, "customer", "c", "c")
        raise KeyError("crash")
    with stores.read() as s:
        assert s.applied_op("op_1") is None and s.counts()["reps"] == 0
        assert stores.rows("SELECT * FROM feed") == []


# --- the store: visits --------------------------------------------------------------------


def _cards(stores: Stores) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    rep_a, rep_b = rep_row("A"), rep_row("B")
    c1, c2 = customer_row("FV000001", rep_a["id"]), customer_row("FV000002", rep_b["id"])
    with stores.write() as s:
        for r in (rep_a, rep_b):
            s.insert_rep(r)
        for c in (c1, c2):
            s.insert_customer(c)
    return rep_a, rep_b, c1, c2


def test_store_visits(stores: Stores) -> None:
    rep_a, rep_b, c1, c2 = _cards(stores)
    v_late = visit_row(c1["id"], rep_a["id"], at(timedelta(hours=2)))
    v_early = visit_row(c1["id"], rep_b["id"], at(timedelta(hours=1)))
    v_other = visit_row(c2["id"], rep_b["id"], at(timedelta(hours=3)))
    with stores.write() as s:
        for v in (v_late, v_early, v_other):
            s.insert_visit(v)
        s.update_visit({**v_late, "rev": 2, "outcome": "signed"})
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_visit({**visit_row(c2["id"], rep_b["id"]), "id": v_late["id"]})
    with stores.read() as s:
        got = s.visit(v_late["id"])
        assert (got["rev"], got["outcome"], got["planned"], got["void_reason"]) == (2, "signed", 0, "")
        assert_types(got, ints=("rev", "planned"), strs=("started_at", "summary", "created_at"))
        assert s.visit("nope") is None
        assert ids(s.visits_by_ids([v_late["id"], "nope"])) == {v_late["id"]}
        assert ids(s.visits_of_customers([c1["id"]])) == {v_late["id"], v_early["id"]}
        assert s.visits_of_customers([]) == []
        streamed = s.visits(None, None)
        assert iter(streamed) is streamed
        assert [v["id"] for v in streamed] == [v_early["id"], v_late["id"], v_other["id"]]
        assert [v["id"] for v in s.visits(rep_b["id"], None)] == [v_early["id"], v_other["id"]]
        assert [v["id"] for v in s.visits(rep_b["id"], c1["id"])] == [v_early["id"]]
        assert [v["id"] for v in s.visits(None, None, limit=1)] == [v_early["id"]]
        assert (s.count_visits(None, None), s.count_visits(rep_a["id"], None),
                s.count_visits(None, c2["id"]), s.count_visits(rep_a["id"], c2["id"])) == (3, 1, 1, 0)
        assert s.visit_revs(rep_a["id"], [v_late["id"], v_early["id"]]) == {v_late["id"]: 2}


def test_store_visit_revisions(stores: Stores) -> None:
    rep_a, _, c1, _ = _cards(stores)
    v = visit_row(c1["id"], rep_a["id"])
    with stores.write() as s:
        s.insert_visit(v)
        s.insert_visit_revision(v, 3, rep_a["id"], "dev_1", "op_1", at())
        s.insert_visit_revision({**v, "rev": 2, "status": "void"}, 4, "office", None, None, at())
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_visit_revision(v, 5, "x", None, None, at())
    with stores.read() as s:
        revs = s.visit_revisions(v["id"])
        assert [(r["rev"], r["server_seq"], r["snapshot"]["status"]) for r in revs] == [
            (1, 3, "submitted"), (2, 4, "void")]
        assert revs[0]["snapshot"] == v and revs[0]["op_id"] == "op_1"
        assert_types(revs[0], ints=("rev", "server_seq"), strs=("visit_id", "author", "at"))
        assert s.visit_revisions("nope") == []
