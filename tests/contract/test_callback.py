"""Call-back verification (电话回访): which visits the policy picks (deterministic, every
order and collection, every visit of a rep who is disputed too often), the verifier's
queue and results, disputes reaching the rep's manager, and the figures."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from schema.models import CustomerCreate
from server.archive.errors import ArchiveError

from ..harness import op
from .kit import Ctx, Stores, at, visit_create, visit_row
from .test_review import logged, team


def in_sample(visit_id: str, pct: int) -> bool:
    """The issue's rule, written independently: SHA-256 of the id, mapped to 0..99."""
    return int(hashlib.sha256(visit_id.encode()).hexdigest()[:16], 16) % 100 < pct


def picked(ctx: Ctx) -> dict[str, str]:
    return {v["id"]: v["callback_reason"] for v in ctx.archive.list_visits()
            if v["callback"] == "pending"}


def test_the_sample_is_deterministic_and_every_order_and_collection_is_called(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    purposes = ["service"] * 40 + ["order"] * 5 + ["collection"] * 5
    visits = [visit_create(cust["id"], f"visit-{i:04d}", purpose=p) for i, p in enumerate(purposes)]
    draft = visit_create(cust["id"], "visit-draft", purpose="order", status="draft")
    assert {r.status for r in ctx.push(ctx.a, *visits, draft)} == {"accepted"}

    expected = {v["entity_id"]: "purpose" for v in visits if v["data"]["purpose"] != "service"}
    sampled = {v["entity_id"]: "sample" for v in visits
               if v["data"]["purpose"] == "service" and in_sample(v["entity_id"], 20)}
    assert 0 < len(sampled) < 40  # a sample, not all or nothing
    assert picked(ctx) == expected | sampled  # the draft waits until it is submitted
    (submitted,) = ctx.push(ctx.a, op("visit.update", "visit-draft", {"status": "submitted"},
                                      base_rev=1))
    assert submitted.status == "accepted" and picked(ctx)["visit-draft"] == "purpose"

    # A resubmission keeps its selection, whatever the policy says by then.
    ctx.archive.add_staff("root", "admin")
    one = next(iter(sampled))
    assert ctx.archive.set_callback_policy({"sample_pct": 0}, "root")["sample_pct"] == 0
    ctx.archive.return_visit(one, "root", "which line?")
    ctx.push(ctx.a, op("visit.update", one, {"summary": "检修2号线"}, base_rev=2))
    row = ctx.archive.get_visit(one)
    assert (row["status"], row["callback"], row["callback_reason"]) == (
        "submitted", "pending", "sample")
    later = visit_create(cust["id"], purpose="service")
    ctx.push(ctx.a, later)
    assert later["entity_id"] not in picked(ctx)
    queue = ctx.archive.callback_queue("root")
    assert len(queue) == len(picked(ctx)) and queue[0]["started_at"] <= queue[-1]["started_at"]


def test_a_rep_disputed_too_often_has_every_visit_called(ctx: Ctx) -> None:
    ctx.archive.add_staff("root", "admin")
    ctx.archive.add_staff("vera", "verifier")
    ctx.archive.set_callback_policy(
        {"sample_pct": 0, "dispute_threshold_pct": 40, "dispute_min_calls": 2}, "root")
    cust_a, cust_b = ctx.customer(ctx.a), ctx.customer(ctx.b)
    orders = [logged(ctx, ctx.b, cust_b["id"], purpose="order") for _ in range(2)]
    ctx.archive.record_callback(orders[0], "disputed", "客户说没有见过业务员", "vera")
    one_call = logged(ctx, ctx.b, cust_b["id"], purpose="service")  # 1 call: too few to count
    ctx.archive.record_callback(orders[1], "verified", "", "vera")  # 1 of 2 disputed: 50% > 40%
    after = logged(ctx, ctx.b, cust_b["id"], purpose="service")
    other_rep = logged(ctx, ctx.a, cust_a["id"], purpose="service")
    assert picked(ctx) == {after: "rep_dispute_rate"}
    assert one_call not in picked(ctx) and other_rep not in picked(ctx)


def test_a_dispute_reaches_the_reps_manager(ctx: Ctx) -> None:
    t = team(ctx)
    cust = ctx.archive.add_customer(
        CustomerCreate(name="Harbor Point", phone="+852 2528 3301", decision_maker="Mark Ellison"),
        t.c.rep_id)
    visit_id = logged(ctx, t.c, cust["id"], purpose="collection", summary="收回三月货款")
    quiet_id = next(f"quiet-{i:04d}" for i in range(100) if not in_sample(f"quiet-{i:04d}", 20))
    quiet = logged(ctx, t.c, cust["id"], visit_id=quiet_id, purpose="service")
    voided = logged(ctx, t.c, cust["id"], purpose="order")
    ctx.push(t.c, op("visit.void", voided, {"reason": "wrong customer"}, base_rev=1))
    ctx.archive.set_callback_policy({"sample_pct": 0}, "root")
    (call,) = [q for q in ctx.archive.callback_queue("vera") if q["id"] == visit_id]
    assert (call["customer_name"], call["phone"], call["decision_maker"], call["started_at"],
            call["purpose"], call["summary"], call["rep_name"], call["callback_reason"]) == (
        "Harbor Point", "+852 2528 3301", "Mark Ellison", at(), "collection", "收回三月货款",
        "Rep C", "purpose")
    refusals = [
        (lambda: ctx.archive.record_callback(visit_id, "disputed", " ", "vera"), "note_required"),
        (lambda: ctx.archive.record_callback(visit_id, "approved", "", "vera"), "invalid_result"),
        (lambda: ctx.archive.record_callback(visit_id, "verified", "", "boss"), "forbidden"),
        (lambda: ctx.archive.callback_queue("boss"), "forbidden"),
        (lambda: ctx.archive.record_callback(quiet, "verified", "", "vera"), "not_picked"),
        (lambda: ctx.archive.record_callback(voided, "verified", "", "vera"), "visit_void"),
    ]
    for attempt, code in refusals:
        with pytest.raises(ArchiveError) as refused:
            attempt()
        assert refused.value.code == code

    ctx.clock.advance(timedelta(hours=2))
    disputed = ctx.archive.record_callback(visit_id, "disputed", "客户说只付了一半", "vera")
    assert (disputed["callback"], disputed["callback_note"], disputed["callback_by"],
            disputed["rev"]) == ("disputed", "客户说只付了一半", "staff:vera", 2)
    pulled = [v for v in ctx.pull_all(t.c.rep_id).visits if v["id"] == visit_id][-1]
    assert (pulled["callback"], pulled["callback_note"]) == ("disputed", "客户说只付了一半")
    with pytest.raises(ArchiveError) as again:
        ctx.archive.record_callback(visit_id, "verified", "", "vera")
    assert again.value.code == "already_called"

    assert [d["id"] for d in ctx.archive.disputes("boss")] == [visit_id]
    assert ctx.archive.disputes("lead-a") == [] and ctx.archive.disputes("carol") == []
    assert [d["id"] for d in ctx.archive.disputes("root", manager="boss")] == [visit_id]
    entry = ctx.archive.audit_entries(1)[0]
    assert (entry["actor"], entry["action"], entry["subject"]) == (
        "staff:vera", "visit.callback", visit_id)
    assert entry["details"]["manager"] == "Boss" and entry["details"]["result"] == "disputed"

    figures = ctx.archive.callback_figures("boss")
    assert [(r["rep_name"], r["called"], r["verified"], r["disputed"], r["share_disputed"],
             r["share_verified"]) for r in figures["reps"]] == [("Rep C", 1, 0, 1, 1.0, 0.0)]
    assert figures["throughput"] == []  # the office's work is not a manager's figure
    assert ctx.archive.callback_figures("vera")["throughput"] == [
        {"by": "staff:vera", "day": "2026-03-02", "calls": 1}]
    with pytest.raises(ArchiveError) as outside:
        ctx.archive.callback_figures("boss", rep="Rep A")
    assert outside.value.code == "outside_team"
    assert ctx.archive.callback_figures("root", rep="Rep A")["reps"] == []


def test_the_policy_is_the_admins_and_audited(ctx: Ctx) -> None:
    ctx.archive.add_staff("root", "admin")
    ctx.archive.add_staff("vera", "verifier")
    assert ctx.archive.callback_policy("vera") == {
        "sample_pct": 20, "dispute_threshold_pct": 20, "dispute_min_calls": 5}
    for changes, by, code in (({"sample_pct": 30}, "vera", "forbidden"),
                              ({"sample_pct": 101}, "root", "invalid_policy"),
                              ({"colour": 1}, "root", "invalid_policy"),
                              ({}, "root", "invalid_policy")):
        with pytest.raises(ArchiveError) as refused:
            ctx.archive.set_callback_policy(changes, by)
        assert refused.value.code == code
    assert ctx.archive.set_callback_policy({"sample_pct": 35}, "root")["sample_pct"] == 35
    entry = ctx.archive.audit_entries(1)[0]
    assert (entry["actor"], entry["action"], entry["details"]) == (
        "staff:root", "callback.policy.set", {"sample_pct": 35})


def test_store_callback_queries(ctx: Ctx, stores: Stores) -> None:
    cust = ctx.customer(ctx.a)
    boss = ctx.archive.add_rep("Boss")["id"]
    under = ctx.archive.add_rep("Rep U", "Boss")["id"]
    rows = [
        visit_row(cust["id"], ctx.a.rep_id, callback="pending", callback_reason="sample"),
        visit_row(cust["id"], ctx.a.rep_id, callback="pending", status="void"),
        visit_row(cust["id"], ctx.a.rep_id, callback="verified", callback_by="staff:v",
                  callback_at=at()),
        visit_row(cust["id"], under, callback="disputed", callback_by="staff:v",
                  callback_at=at(timedelta(days=1))),
        visit_row(cust["id"], under, callback="disputed", callback_by="staff:w",
                  callback_at=at(timedelta(days=1, hours=1))),
        visit_row(cust["id"], under),
    ]
    with stores.write() as s:
        for row in rows:
            s.insert_visit(row)
    with stores.read() as s:
        assert [v["id"] for v in s.callback_queue()] == [rows[0]["id"]]  # not the void one
        assert s.callback_queue()[0]["callback_reason"] == "sample" and s.callback_queue(0) == []
        assert [v["id"] for v in s.disputed_visits()] == [rows[3]["id"], rows[4]["id"]]
        assert [v["id"] for v in s.disputed_visits(boss, limit=1)] == [rows[3]["id"]]
        assert s.disputed_visits(under) == []
        counts = s.callback_counts()
        assert [(c["rep_name"], c["pending"], c["verified"], c["disputed"]) for c in counts] == [
            ("Rep A", 2, 1, 0), ("Rep U", 0, 0, 2)]
        assert all(type(c[k]) is int for c in counts for k in ("pending", "verified", "disputed"))
        assert [c["rep_id"] for c in s.callback_counts(boss)] == [under]
        assert [c["rep_id"] for c in s.callback_counts(rep_id=ctx.a.rep_id)] == [ctx.a.rep_id]
        assert s.callback_counts(rep_id=ctx.b.rep_id) == []
        assert s.callback_throughput() == [
            {"by": "staff:v", "day": "2026-03-02", "calls": 1},
            {"by": "staff:v", "day": "2026-03-03", "calls": 1},
            {"by": "staff:w", "day": "2026-03-03", "calls": 1}]
        assert s.callback_throughput("staff:w") == [
            {"by": "staff:w", "day": "2026-03-03", "calls": 1}]
