"""Departures and wipe orders: a leaving rep's devices refused, customers moved, visits kept."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from schema.clock import ManualClock
from schema.models import CustomerCreate
from server.archive.engine import UniqueViolation
from server.archive.errors import ArchiveError, Conflict, NotFound
from server.rules import Archive

from .kit import Ctx, Stores, assert_types, at, enroll_device, rep_row, visit_create


def test_a_departure_applies_now_and_again_is_the_same(ctx: Ctx) -> None:
    cards = [ctx.customer(ctx.a, f"A{i}") for i in range(3)]
    ctx.push(ctx.a, visit_create(cards[0]["id"]))
    done = ctx.archive.revoke("Rep A", "resigned", reassign_to="Rep B", by="hr-system", source="api")
    assert (done["status"], done["already"], done["reassigned"]) == ("applied", False, {ctx.b.rep_id: 3})
    assert done["applied_at"] == done["effective_at"] == at()
    assert ctx.archive.count_customers("Rep B") == 3
    assert ctx.archive.resolve_rep("Rep A")["active"] == 0
    assert ctx.archive.get_device(ctx.a.id).state == "revoked"
    assert ctx.archive.count_visits("Rep A") == 1  # authorship kept
    again = ctx.archive.revoke("Rep A", "resigned twice")
    assert again["already"] is True and again["id"] == done["id"]
    (listed,) = ctx.archive.list_revocations()
    assert listed["reassigned"] == {c["id"]: ctx.b.rep_id for c in cards}
    report = ctx.archive.departure_report("Rep A")
    assert report["visits_preserved"] == 1 and len(report["customers"]) == 3
    assert {c["to_name"] for c in report["customers"]} == {"Rep B"}
    assert report["devices"][0]["state"] == "revoked" and report["rep"]["active"] is False
    with pytest.raises(NotFound):
        ctx.archive.departure_report("Rep B")


def test_a_scheduled_departure_waits_for_its_time(ctx: Ctx) -> None:
    ctx.customer(ctx.a)
    when = at(timedelta(days=2))
    planned = ctx.archive.revoke("Rep A", "contract ends", effective_at=when)
    assert planned["status"] == "scheduled" and planned["applied_at"] is None
    assert ctx.archive.process_due_revocations() == []
    ctx.clock.advance(timedelta(days=2))
    assert ctx.archive.process_due_revocations() == [ctx.a.rep_id]
    assert ctx.archive.process_due_revocations() == []  # applied once
    assert ctx.archive.count_customers("pool") == 1
    actions = [e["action"] for e in ctx.archive.audit_entries()]
    assert actions.count("rep.revoke_requested") == 1 and actions.count("rep.revoke") == 1


def test_departures_to_a_team_deal_fairly_and_bad_ones_write_nothing(archive: Archive,
                                                                   clock: ManualClock) -> None:
    boss = archive.add_rep("Boss", None, "senior")["id"]
    leaver = archive.add_rep("Leaver", "Boss")["id"]
    for name, tier in (("Senior", "senior"), ("Junior", "junior")):
        clock.advance(timedelta(seconds=1))  # team order: oldest first
        archive.add_rep(name, "Boss", tier)
    for i, grade in enumerate("AABBBCC"):
        archive.add_customer(CustomerCreate(name=f"G{grade}{i}", grade=grade), leaver)
    with pytest.raises(ArchiveError):
        archive.revoke_many([("Leaver", "ok", "team", None), ("Boss", "", "pool", None)], "hr", "api")
    with pytest.raises(ArchiveError):
        archive.revoke("Boss", "no manager", reassign_to="manager")
    with pytest.raises(NotFound):
        archive.revoke("Leaver", "x", reassign_to="nobody")
    with pytest.raises(ArchiveError):
        archive.revoke("Leaver", "x", effective_at="tomorrow")
    assert archive.list_revocations() == []
    done = archive.revoke("Leaver", "moved on", reassign_to="team")
    senior, junior = archive.resolve_rep("Senior")["id"], archive.resolve_rep("Junior")["id"]
    assert done["reassigned"] == {senior: 4, junior: 3}
    assert {c["grade"] for c in archive.list_customers("Junior")} <= {"B", "C"}
    assert boss not in done["reassigned"]


def test_wipe_order_and_receipt(ctx: Ctx) -> None:
    ctx.archive.revoke("Rep A", "left")
    device = ctx.archive.get_device(ctx.a.id)
    assert ctx.archive.wipe_order(device.id) is None
    _, order = ctx.archive.final_flush(device, [])
    with pytest.raises(Conflict):
        ctx.archive.record_wipe_receipt(device, {"order_id": "wo_wrong"})
    receipt = {"order_id": order["order_id"], "wiped_at": at()}
    ctx.archive.record_wipe_receipt(device, receipt)
    ctx.archive.record_wipe_receipt(device, receipt)  # a retry: nothing new
    ctx.archive.record_wipe_receipt(device, {**receipt, "wiped_at": at(timedelta(days=1))})
    stored = ctx.archive.wipe_order(device.id)
    assert stored["receipt"] == receipt and stored["receipt_at"] == at()
    assert ctx.archive.get_device(device.id).state == "wiped"
    actions = [e["action"] for e in ctx.archive.audit_entries()]
    assert actions.count("device.wipe_receipt") == 1 and actions.count("device.wipe_receipt.again") == 1
    row = ctx.archive.list_devices("Rep A")[0]
    assert row["wipe_ordered_at"] == order["issued_at"] and row["wipe_receipt_at"] == at()


# --- the store ----------------------------------------------------------------------------


def _departure(rep_id: str, effective_at: str) -> dict[str, str]:
    return {"rep_id": rep_id, "reason": "left", "reassign_to": "pool", "effective_at": effective_at,
            "requested_by": "hr", "source": "cli", "requested_at": at()}


def test_store_revocations(stores: Stores) -> None:
    reps = [rep_row(f"R{i}") for i in range(3)]
    with stores.write() as s:
        for r in reps:
            s.insert_rep(r)
        later = s.insert_revocation(_departure(reps[0]["id"], at(timedelta(days=2))))
        now = s.insert_revocation(_departure(reps[1]["id"], at()))
    assert type(later) is int and type(now) is int and later != now
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_revocation(_departure(reps[0]["id"], at()))
    with stores.read() as s:
        row = s.revocation(reps[0]["id"])
        assert row == s.revocation_by_id(later) and row["applied_at"] is None
        assert row["reassigned"] == "{}"
        assert_types(row, ints=("id",), strs=("rep_id", "effective_at", "reassigned"))
        assert s.revocation(reps[2]["id"]) is None and s.revocation_by_id(-1) is None
        assert [r["id"] for r in s.revocations()] == [later, now]
        assert s.due_revocations(at()) == [now]
        assert s.due_revocations(at(timedelta(days=2))) == [later, now]
    with stores.write() as s:
        s.mark_revocation_applied(now, at(timedelta(minutes=1)), orjson.dumps({"c1": None}).decode())
    with stores.read() as s:
        row = s.revocation_by_id(now)
        assert row["applied_at"] == at(timedelta(minutes=1))
        assert orjson.loads(row["reassigned"]) == {"c1": None}
        assert s.due_revocations(at(timedelta(days=9))) == [later]


def test_store_wipe_orders(archive: Archive, stores: Stores) -> None:
    rep = archive.add_rep("A")["id"]
    d1, d2 = enroll_device(archive, rep), enroll_device(archive, rep)
    with stores.write() as s:
        s.insert_wipe_order("wo_1", d1.id, at())
    for order_id, device_id in (("wo_2", d1.id), ("wo_1", d2.id)):
        with pytest.raises(UniqueViolation), stores.write() as s:
            s.insert_wipe_order(order_id, device_id, at())
    with stores.read() as s:
        assert s.wipe_order(d1.id) == {"order_id": "wo_1", "device_id": d1.id, "issued_at": at(),
                                       "receipt_at": None, "receipt": None}
        assert s.wipe_order(d2.id) is None
    with stores.write() as s:
        s.set_wipe_receipt("wo_1", at(timedelta(hours=1)), '{"ok": true}')
    with stores.read() as s:
        row = s.wipe_order(d1.id)
        assert (row["receipt_at"], row["receipt"]) == (at(timedelta(hours=1)), '{"ok": true}')
        listed = {d["id"]: d for d in s.devices(rep)}
        assert listed[d1.id]["wipe_receipt_at"] == at(timedelta(hours=1))
        assert listed[d2.id]["wipe_receipt_at"] is None
