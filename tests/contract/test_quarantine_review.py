"""Quarantine and conflict review: accepting a held op applies it as if it had arrived in
time (a revoked rep's final-flush visit becomes an archive visit under their name);
rejecting keeps it, marked; resolving a conflict writes the kept value as a new card
revision. Nothing held is ever deleted."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from schema.clock import iso, parse_iso
from schema.models import CustomerPatch
from server.archive.errors import ArchiveError

from ..harness import customer_create, customer_update, new_id, op
from .kit import Ctx, Stores, at, customer_row, ops, visit_create
from .test_review import team


def held_ids(ctx: Ctx) -> dict[str, int]:
    return {h["op_id"]: h["id"] for h in ctx.archive.quarantine()}


def test_a_revoked_reps_final_flush_becomes_archive_history_under_their_name(ctx: Ctx) -> None:
    ctx.archive.add_staff("root", "admin")
    cust = ctx.customer(ctx.a, "Ocelot Freight")
    ctx.clock.advance(timedelta(hours=3))
    ctx.archive.revoke("Rep A", "离职", reassign_to="Rep B")
    device = ctx.archive.get_device(ctx.a.id)
    assert device is not None
    # Typed offline before the revocation, synced after it: held for review.
    visit = visit_create(cust["id"], started_at=at(timedelta(hours=1)), purpose="service",
                         summary="离职前的最后拜访")
    visit["at"] = at(timedelta(hours=1, minutes=5))
    card_edit = customer_update(cust["id"], notes="wants 12% off")
    lead = customer_create("Last Lead Ltd")
    unknown = op("visit.update", new_id(), {"outcome": "x"}, base_rev=1)
    results, _ = ctx.archive.final_flush(device, ops(visit, card_edit, lead, unknown))
    assert {r.status for r in results} == {"quarantined"}
    held = held_ids(ctx)
    b_seen = ctx.pull_all(ctx.b.rep_id).last_seq
    before = ctx.archive.audit_count()

    with pytest.raises(ArchiveError) as refused:
        ctx.archive.accept_quarantined(held[unknown["op_id"]], "root")
    assert refused.value.code == "cannot_apply" and "unknown visit" in refused.value.message
    with pytest.raises(ArchiveError) as not_admin:
        ctx.archive.accept_quarantined(held[visit["op_id"]], "nobody")
    assert not_admin.value.code == "unknown_user"
    assert ctx.archive.audit_count() == before and ctx.archive.list_visits() == []

    ctx.clock.advance(timedelta(days=2))
    accepted = ctx.archive.accept_quarantined(held[visit["op_id"]], "root")
    assert (accepted["decision"], accepted["decided_by"], accepted["reviewed_at"]) == (
        "accepted", "staff:root", ctx.archive.now())
    row = ctx.archive.get_visit(visit["entity_id"])
    assert (row["rep_id"], row["device_id"], row["summary"], row["status"], row["started_at"],
            row["created_at"]) == (ctx.a.rep_id, ctx.a.id, "离职前的最后拜访", "submitted",
                                   at(timedelta(hours=1)), at(timedelta(hours=1, minutes=5)))
    (rev,) = ctx.archive.visit_history(visit["entity_id"])
    assert (rev["author"], rev["op_id"]) == (ctx.a.rep_id, visit["op_id"])
    assert ctx.archive.get_customer(cust["id"])["last_served_at"] == at(timedelta(hours=1))
    # the customer's current owner's laptop gets it with the next pull
    assert [v["id"] for v in ctx.pull_all(ctx.b.rep_id, b_seen).visits] == [visit["entity_id"]]
    with pytest.raises(ArchiveError) as twice:
        ctx.archive.accept_quarantined(held[visit["op_id"]], "root")
    assert twice.value.code == "already_decided"

    # a card edit merges as the rep's, though the card is Rep B's now
    ctx.archive.accept_quarantined(held[card_edit["op_id"]], "root")
    card = ctx.archive.get_customer(cust["id"])
    assert (card["notes"], card["owner_rep_id"]) == ("wants 12% off", ctx.b.rep_id)
    assert ctx.archive.customer_history(cust["id"])[-1]["author"] == ctx.a.rep_id
    # a card the departed rep developed goes to the pool, its maker kept
    ctx.archive.accept_quarantined(held[lead["op_id"]], "root")
    new_card = ctx.archive.get_customer(lead["entity_id"])
    assert (new_card["created_by"], new_card["owner_rep_id"]) == (ctx.a.rep_id, None)
    assert [o["source"] for o in ctx.archive.ownership_history(lead["entity_id"])] == [
        "developed", "pool"]

    rejected = ctx.archive.reject_quarantined(held[unknown["op_id"]], "root", "  no such visit ")
    assert (rejected["decision"], rejected["decision_reason"]) == ("rejected", "no such visit")
    assert len(ctx.archive.quarantine()) == 4  # nothing is deleted
    assert ctx.archive.held_ops("root", open_only=True) == []
    actions = [e["action"] for e in ctx.archive.audit_entries(5)]
    assert actions == ["quarantine.accept", "quarantine.accept", "customer.assign",
                       "quarantine.accept", "quarantine.reject"]


def test_held_edits_wait_for_their_creation_and_only_an_admin_decides(ctx: Ctx) -> None:
    team(ctx)
    other = ctx.customer(ctx.b)
    # Rep A may not visit Rep B's customer: held, and so is the edit of the held visit
    visit = visit_create(other["id"], ended_at=at(timedelta(minutes=1)))
    edit = op("visit.update", visit["entity_id"], {"outcome": "签约", "ended_at": None},
              base_rev=1)
    ctx.push(ctx.a, visit, edit)
    held = held_ids(ctx)
    assert ctx.archive.quarantine()[1]["payload"]["data"] == {"outcome": "签约", "ended_at": None}
    for by, code in (("boss", "forbidden"), ("vera", "forbidden")):
        with pytest.raises(ArchiveError) as refused:
            ctx.archive.accept_quarantined(held[visit["op_id"]], by)
        assert refused.value.code == code
    with pytest.raises(ArchiveError, match="unknown visit .if its creation is held"):
        ctx.archive.accept_quarantined(held[edit["op_id"]], "root")
    with pytest.raises(ArchiveError) as no_reason:
        ctx.archive.reject_quarantined(held[edit["op_id"]], "root", " ")
    assert no_reason.value.code == "invalid_reason"
    with pytest.raises(ArchiveError) as missing:
        ctx.archive.accept_quarantined(10_000, "root")
    assert missing.value.code == "unknown_held_op"
    ctx.archive.accept_quarantined(held[visit["op_id"]], "root")
    ctx.archive.accept_quarantined(held[edit["op_id"]], "root")
    row = ctx.archive.get_visit(visit["entity_id"])
    assert (row["rep_id"], row["outcome"], row["ended_at"], row["rev"]) == (
        ctx.a.rep_id, "签约", None, 2)  # the null the rep sent clears, nothing else does


def test_an_edit_held_before_only_set_fields_were_kept_changes_only_what_it_names(
        ctx: Ctx, stores: Stores) -> None:
    ctx.archive.add_staff("root", "admin")
    visit = visit_create(ctx.customer(ctx.a)["id"], ended_at=at(timedelta(minutes=1)))
    ctx.push(ctx.a, visit)
    (edit,) = ops(op("visit.update", visit["entity_id"], {"outcome": "签约"}, base_rev=1))
    with stores.write() as s:  # as held before: every field of the edit, unset ones null
        s.insert_quarantine({"op_id": edit.op_id, "device_id": ctx.a.id, "rep_id": ctx.a.rep_id,
                             "kind": "visit.update", "entity_id": edit.entity_id,
                             "payload": edit.model_dump_json(), "reason": "old", "at": at()})
    (held,) = ctx.archive.quarantine()
    assert held["payload"]["data"]["ended_at"] is None
    ctx.archive.accept_quarantined(held["id"], "root")
    row = ctx.archive.get_visit(visit["entity_id"])
    assert (row["outcome"], row["ended_at"], row["summary"]) == (
        "签约", at(timedelta(minutes=1)), visit["data"]["summary"])


def test_resolving_a_conflict_writes_the_kept_value_as_a_new_revision(ctx: Ctx) -> None:
    team(ctx)
    cust = ctx.customer(ctx.a, "Acme")
    ctx.archive.edit_customer(cust["id"], CustomerPatch(phone="0755-1111", notes="office"), "office")
    ctx.push(ctx.a, customer_update(cust["id"], base_rev=1, phone="0755-2222", notes="rep"))
    phone, notes = sorted(ctx.archive.open_conflicts("root"), key=lambda c: c["field"])[::-1]
    assert (phone["field"], notes["field"]) == ("phone", "notes")
    for by, code in (("boss", "outside_team"), ("vera", "forbidden")):
        with pytest.raises(ArchiveError) as refused:
            ctx.archive.resolve_conflict(phone["id"], "server", by)
        assert refused.value.code == code
    with pytest.raises(ArchiveError) as bad:
        ctx.archive.resolve_conflict(phone["id"], "both", "root")
    assert bad.value.code == "invalid_keep"
    assert ctx.archive.open_conflicts("boss") == []  # not his team's

    rev = ctx.archive.get_customer(cust["id"])["rev"]
    kept = ctx.archive.resolve_conflict(phone["id"], "server", "root")  # equal to the current value
    card = ctx.archive.get_customer(cust["id"])
    assert (card["phone"], card["rev"], kept["rev"]) == ("0755-1111", rev + 1, rev + 1)
    assert (kept["customer_name"], kept["card_no"]) == ("Acme", card["card_no"])  # as listed
    last = ctx.archive.customer_history(cust["id"])[-1]
    assert (last["author"], last["rev"], last["snapshot"]["phone"]) == ("staff:root", rev + 1,
                                                                         "0755-1111")
    ctx.archive.resolve_conflict(notes["id"], "rep", "root")
    assert ctx.archive.get_customer(cust["id"])["notes"] == "rep"
    with pytest.raises(ArchiveError) as twice:
        ctx.archive.resolve_conflict(phone["id"], "rep", "root")
    assert twice.value.code == "already_resolved"
    assert ctx.archive.open_conflicts("root") == []
    closed = {c["field"]: c for c in ctx.archive.open_conflicts("root", open_only=False)}
    assert (closed["phone"]["resolution"], closed["phone"]["resolved_by"],
            closed["notes"]["resolution"]) == ("server", "staff:root", "rep")
    assert ctx.archive.audit_entries(1)[0]["action"] == "conflict.resolve"


def test_store_deciding_held_ops_and_conflicts(ctx: Ctx, stores: Stores) -> None:
    boss = ctx.archive.add_rep("Boss")["id"]
    under = ctx.archive.add_rep("Rep U", "Boss")["id"]
    card = customer_row("FV000009", None, "Nine")
    payload = orjson.dumps({"op_id": "op_1", "kind": "visit.create"}).decode()
    with stores.write() as s:
        s.insert_customer(card)
        for op_id in ("op_1", "op_2"):
            s.insert_quarantine({"op_id": op_id, "device_id": "dev_1", "rep_id": under,
                                 "kind": "visit.create", "entity_id": new_id(),
                                 "payload": payload, "reason": "why", "at": at()})
        for rep in (under, ctx.a.rep_id):
            s.insert_conflict({"customer_id": card["id"], "field": "phone", "server_value": '"1"',
                               "rep_value": '["2", 3]', "base_rev": 1, "rev": 2, "rep_id": rep,
                               "device_id": "dev_1", "op_id": new_id(), "at": at()})
    with stores.read() as s:
        first, second = (h["id"] for h in s.quarantined())
        one = s.held_op(first)
        assert one is not None and one["payload"] == {"op_id": "op_1", "kind": "visit.create"}
        assert one["decision"] is None and s.held_op(10_000) is None
        k1, k2 = (c["id"] for c in s.conflicts())
        conflict = s.conflict(k1)
        assert conflict is not None and (conflict["server_value"], conflict["rep_value"]) == (
            "1", ["2", 3])
        assert s.conflict(10_000) is None
    later = iso(parse_iso(at()) + timedelta(days=1))
    with stores.write() as s:
        assert s.decide_held_op(first, "rejected", "staff:r", "dup", later)
        assert not s.decide_held_op(first, "accepted", "staff:x", "", later)  # decided once
        assert s.resolve_conflict(k1, "rep", "staff:r", later)
        assert not s.resolve_conflict(k1, "server", "staff:x", later)
    with stores.read() as s:
        row = s.held_op(first)
        assert row is not None and (row["decision"], row["decided_by"], row["decision_reason"],
                                    row["reviewed_at"]) == ("rejected", "staff:r", "dup", later)
        assert [h["id"] for h in s.quarantined(open_only=True)] == [second]
        assert [h["id"] for h in s.quarantined(limit=1, open_only=False)] == [first]
        done = s.conflict(k1)
        assert done is not None and (done["resolution"], done["resolved_by"],
                                     done["resolved_at"]) == ("rep", "staff:r", later)
        assert [c["id"] for c in s.conflicts(open_only=True)] == [k2]
        assert [c["id"] for c in s.conflicts(under=boss)] == [k1]
        assert s.conflicts(under=boss, open_only=True) == []
