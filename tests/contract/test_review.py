"""Visit review (拜访记录审核): a manager approves or returns a submitted visit of their
team; the author's correction, pushed like any edit, submits it again; an approved
visit is read-only for the rep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from schema.models import CustomerCreate, VisitCreate, VisitCreateOp
from schema.records import to_record
from server.archive.errors import ArchiveError
from server.archive.store import Device
from server.rules.operations import CREATED_KEYS

from ..harness import op
from .kit import Ctx, Stores, at, enroll_device, visit_create, visit_row


@dataclass
class Team:
    """Boss manages Rep C (and, under Rep C, Rep D); Rep A and Rep B have no manager."""

    c: Device
    d_rep: str
    boss_rep: str


def team(ctx: Ctx) -> Team:
    archive = ctx.archive
    boss_rep = archive.add_rep("Boss")["id"]
    c_rep = archive.add_rep("Rep C", "Boss")["id"]
    d_rep = archive.add_rep("Rep D", "Rep C")["id"]
    archive.add_staff("boss", "manager", rep="Boss")
    archive.add_staff("lead-a", "manager", rep="Rep A")  # a manager with nobody under them
    archive.add_staff("carol", "manager", rep="Rep C")  # under boss: manages Rep D
    archive.add_staff("vera", "verifier")
    archive.add_staff("root", "admin")
    return Team(enroll_device(archive, c_rep), d_rep, boss_rep)


def logged(ctx: Ctx, device: Device, customer: str, **data: Any) -> str:
    visit = visit_create(customer, **data)
    (result,) = ctx.push(device, visit)
    assert result.status == "accepted", result
    return str(visit["entity_id"])


def test_return_comment_reaches_the_laptop_and_the_authors_edit_resubmits(ctx: Ctx) -> None:
    t = team(ctx)
    cust = ctx.archive.add_customer(CustomerCreate(name="青禾食品"), t.c.rep_id)
    visit_id = logged(ctx, t.c, cust["id"], purpose="service", summary="检修2号包装线")
    (waiting,) = ctx.archive.approvals("boss")
    assert (waiting["id"], waiting["rep_name"], waiting["customer_name"], waiting["card_no"],
            waiting["purpose"], waiting["summary"]) == (
        visit_id, "Rep C", "青禾食品", cust["card_no"], "service", "检修2号包装线")
    seen = ctx.pull_all(t.c.rep_id).last_seq

    returned = ctx.archive.return_visit(visit_id, "boss", "  写明洽谈结果  ")
    assert (returned["status"], returned["review_comment"], returned["reviewed_by"],
            returned["reviewed_at"], returned["rev"]) == (
        "returned", "写明洽谈结果", "staff:boss", at(), 2)
    assert ctx.archive.approvals("boss") == []
    (pulled,) = ctx.pull_all(t.c.rep_id, seen).visits  # the laptop's next pull
    assert (pulled["status"], pulled["review_comment"]) == ("returned", "写明洽谈结果")

    (fixed,) = ctx.push(t.c, op("visit.update", visit_id, {"outcome": "签约 200 台"}, base_rev=2))
    assert (fixed.status, fixed.rev) == ("accepted", 3)
    row = ctx.archive.get_visit(visit_id)
    assert (row["status"], row["outcome"], row["review_comment"]) == (
        "submitted", "签约 200 台", "写明洽谈结果")
    history = ctx.archive.visit_history(visit_id)
    assert [(h["snapshot"]["status"], h["author"]) for h in history] == [
        ("submitted", t.c.rep_id), ("returned", "staff:boss"), ("submitted", t.c.rep_id)]

    approved = ctx.archive.approve_visit(visit_id, "boss")
    assert (approved["status"], approved["review_comment"], approved["rev"]) == ("approved", "", 4)
    (late,) = ctx.push(t.c, op("visit.update", visit_id, {"outcome": "x"}, base_rev=4))
    assert late.status == "rejected" and "approved: read-only; ask your manager" in (late.reason or "")
    (void,) = ctx.push(t.c, op("visit.void", visit_id, {"reason": "wrong card"}, base_rev=4))
    assert void.status == "rejected" and ctx.archive.get_visit(visit_id)["status"] == "approved"
    entries = [(e["actor"], e["action"], e["subject"]) for e in ctx.archive.audit_entries()]
    assert entries[-2:] == [("staff:boss", "visit.return", visit_id),
                            ("staff:boss", "visit.approve", visit_id)]


def test_who_may_review_what(ctx: Ctx) -> None:
    t = team(ctx)
    mine = logged(ctx, t.c, ctx.archive.add_customer(CustomerCreate(name="C's"), t.c.rep_id)["id"])
    other = logged(ctx, ctx.a, ctx.customer(ctx.a)["id"])
    before = ctx.archive.audit_count()
    refusals = [
        (lambda: ctx.archive.approve_visit(other, "boss"), "outside_team"),  # not his team
        (lambda: ctx.archive.approve_visit(mine, "carol"), "outside_team"),  # her own manager's
        (lambda: ctx.archive.approve_visit(mine, "vera"), "forbidden"),  # a verifier
        (lambda: ctx.archive.approve_visit(mine, "nobody"), "unknown_user"),
        (lambda: ctx.archive.return_visit(mine, "boss", "  "), "invalid_comment"),
        (lambda: ctx.archive.return_visit(mine, "boss", "x" * 1001), "invalid_comment"),
        (lambda: ctx.archive.approve_visit("no-such-visit", "boss"), "unknown_visit"),
        (lambda: ctx.archive.approvals("boss", manager="vera"), "not_a_manager"),
        (lambda: ctx.archive.approvals("carol", manager="boss"), "outside_team"),
    ]
    for call, code in refusals:
        with pytest.raises(ArchiveError) as refused:
            call()
        assert refused.value.code == code
    assert ctx.archive.audit_count() == before and ctx.archive.get_visit(mine)["rev"] == 1

    assert [v["id"] for v in ctx.archive.approvals("boss")] == [mine]
    assert [v["id"] for v in ctx.archive.approvals("root", manager="boss")] == [mine]
    assert ctx.archive.approvals("lead-a") == [] and ctx.archive.approvals("carol") == []
    assert {v["id"] for v in ctx.archive.approvals()} == {mine, other}  # the operator: all
    ctx.archive.approve_visit(other, "root")
    with pytest.raises(ArchiveError, match="only a submitted visit") as twice:
        ctx.archive.return_visit(other, "root", "again")
    assert twice.value.code == "not_submitted"
    shown = ctx.archive.staff_visit(other, "root")
    assert [h["status"] for h in shown["history"]] == ["submitted", "approved"]
    with pytest.raises(ArchiveError, match="not in boss.s team") as hidden:
        ctx.archive.staff_visit(other, "boss")
    assert hidden.value.code == "outside_team"


def test_store_visits_to_review(ctx: Ctx, stores: Stores) -> None:
    t = team(ctx)
    cust = ctx.archive.add_customer(CustomerCreate(name="Z", phone="021-1"), t.c.rep_id)
    rows = [visit_row(cust["id"], t.c.rep_id, at()), visit_row(cust["id"], t.d_rep, at()),
            visit_row(cust["id"], ctx.a.rep_id, at(), status="approved")]
    rows[0]["started_at"] = "2026-03-02T08:00:00.000000Z"  # the oldest waits longest
    with stores.write() as s:
        for row in rows:
            s.insert_visit(row)
    with stores.read() as s:
        everyone = s.visits_to_review()
        assert [v["id"] for v in everyone] == [rows[0]["id"], rows[1]["id"]]
        assert (everyone[0]["rep_name"], everyone[0]["customer_name"], everyone[0]["phone"]) == (
            "Rep C", "Z", "021-1")
        assert [v["id"] for v in s.visits_to_review(t.boss_rep)] == [rows[0]["id"], rows[1]["id"]]
        assert [v["id"] for v in s.visits_to_review(t.c.rep_id)] == [rows[1]["id"]]
        assert s.visits_to_review(ctx.a.rep_id) == [] and len(s.visits_to_review(limit=1)) == 1


def test_a_devices_own_pushes_come_back_in_their_results_not_in_its_pulls(ctx: Ctx) -> None:
    """Issue 10: a pushed visit's result carries the visit as the archive keeps it, and
    the device's pulls leave out the rows its own pushes made; anyone else's change to
    that visit (a manager's return) still reaches it, and so does a replay's record."""
    t = team(ctx)
    cust = ctx.archive.add_customer(CustomerCreate(name="青禾食品"), t.c.rep_id)
    visit = visit_create(cust["id"], purpose="service", summary="检修2号包装线")
    (result,) = ctx.push(t.c, visit)
    visit_id = str(visit["entity_id"])
    everyone = ctx.pull_all(t.c.rep_id)  # as another laptop of the rep would see it
    (as_pulled,) = [v for v in everyone.visits if v["id"] == visit_id]
    # A new visit's result carries what the archive set, as a pull sends it; the laptop
    # holds the content it sent, which the archive kept as sent.
    assert result.record is not None
    assert set(result.record) == set(CREATED_KEYS) and "callback_note" in CREATED_KEYS
    assert result.record == {k: as_pulled[k] for k in result.record}
    assert {k: as_pulled[k] for k in VisitCreate.model_fields} == {
        k: to_record(VisitCreateOp.model_validate(visit).data)[k] for k in VisitCreate.model_fields}

    mine = ctx.archive.pull(t.c.rep_id, 0, 1000, device_id=t.c.id)
    assert [c["id"] for c in mine.customers] == [cust["id"]] and mine.visits == []
    assert (mine.last_seq, mine.more) == (everyone.last_seq, False)  # moved past its own rows

    ctx.archive.return_visit(visit_id, "boss", "写明洽谈结果")
    (back,) = ctx.archive.pull(t.c.rep_id, mine.last_seq, 1000, device_id=t.c.id).visits
    assert (back["id"], back["status"], back["review_comment"]) == (
        visit_id, "returned", "写明洽谈结果")
    (replayed,) = ctx.push(t.c, visit)  # a lost answer: the record is the visit as it is now
    assert replayed.record is not None and replayed.record["status"] == "returned"
    with ctx.stores.read() as s:
        assert s.feed_last(t.c.rep_id, 0) == s.feed_last(t.c.rep_id, mine.last_seq) > 0
        assert s.feed_last(t.c.rep_id, 10**12) == 10**12
