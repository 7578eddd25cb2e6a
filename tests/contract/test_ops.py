"""The office's oversight on every backend: the departure preview (a dry run that is
what confirming does), people and the fleet in a manager's scope and by risk, the
policy preview, enrollment codes with their QR code, HR tokens, the audit log's
filters and chain check; and the oversight store methods."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schema.models import CustomerCreate
from server.archive.errors import ArchiveError, Forbidden, NotFound
from server.archive.store import AuditFilter

from .kit import T0, Ctx, Stores, at, enroll_device


def staff(ctx: Ctx) -> None:
    ctx.archive.add_staff("boss", "admin")
    ctx.archive.add_staff("people", "hr")
    ctx.archive.add_staff("caller", "verifier")
    ctx.archive.add_rep("Lead", None, "senior")
    ctx.archive.add_rep("Rep C", "Lead", "mid")
    ctx.archive.add_rep("Rep D", "Lead", "mid")
    ctx.archive.add_staff("mgr", "manager", "Lead")


def test_the_departure_preview_writes_nothing_and_is_what_confirming_does(
        ctx: Ctx, stores: Stores) -> None:
    staff(ctx)
    enroll_device(ctx.archive, "Rep C")
    cards = [ctx.archive.add_customer(CustomerCreate(name=f"C{i}"), "Rep C", "admin")
             for i in range(5)]
    ctx.archive.add_rep("Rep E", "Lead", "mid")
    before = ctx.archive.audit_count()
    preview = ctx.archive.departure_preview("Rep C", "team", "people")
    assert ctx.archive.audit_count() == before  # a dry run: nothing written
    assert ctx.archive.resolve_rep("Rep C")["active"] == 1
    assert preview["customers"] == 5 and preview["to_pool"] == 0 and not preview["scheduled"]
    # Dealt fairly over the team, most first (who gets the odd one: the older rep row).
    assert [t["count"] for t in preview["to"]] == [3, 2]
    assert {t["name"] for t in preview["to"]} == {"Rep D", "Rep E"}
    assert [d["state"] for d in preview["devices"]] == ["active"]
    done = ctx.archive.depart("Rep C", "resigned", "team", None, "people")
    names = {t["rep_id"]: t["count"] for t in preview["to"]}
    assert done["reassigned"] == names and done["requested_by"] == "staff:people"
    assert ctx.archive.departures_list("boss")[0]["rep_name"] == "Rep C"
    report = ctx.archive.departure_report_for("Rep C", "people")
    assert {c["customer_id"] for c in report["customers"]} == {c["id"] for c in cards}
    with pytest.raises(ArchiveError) as left:
        ctx.archive.departure_preview("Rep C", "pool", "people")
    assert left.value.code == "already_left"
    with pytest.raises(Forbidden):
        ctx.archive.departure_preview("Rep D", "pool", "mgr")
    with pytest.raises(NotFound):
        ctx.archive.departure_preview("Rep D", "nobody", "boss")
    later = ctx.archive.departure_preview("Rep D", "pool", "boss", at(timedelta(days=3)))
    assert later["scheduled"] and later["effective_at"] == at(timedelta(days=3))


def test_people_and_the_fleet_keep_a_manager_to_their_team_and_sort_by_risk(ctx: Ctx) -> None:
    staff(ctx)
    c = enroll_device(ctx.archive, "Rep C")
    assert {p["name"] for p in ctx.archive.people("mgr")} == {"Rep C", "Rep D"}
    assert {p["name"] for p in ctx.archive.people("people")} >= {"Rep A", "Rep B", "Rep C"}
    with pytest.raises(Forbidden):
        ctx.archive.people("caller")
    ctx.archive.issue_lease(ctx.a.id, None)  # A checks in now; B and C never did
    ctx.clock.advance(timedelta(hours=80))  # past the 72-hour block of A's lease
    ctx.archive.revoke("Rep B", "left", by="hr")
    fleet = ctx.archive.fleet("boss")
    assert [(d["id"], d["risk"]) for d in fleet][:2] == [(ctx.b.id, "wipe_pending"),
                                                         (ctx.a.id, "blocked")]
    assert fleet[1]["window_used"] > 1 and fleet[1]["unsynced_ops"] is None
    assert [d["id"] for d in ctx.archive.fleet("mgr")] == [c.id]
    with pytest.raises(Forbidden):
        ctx.archive.fleet("people")
    glance = ctx.archive.overview("boss")
    assert glance["devices_by_risk"]["wipe_pending"] == 1 and glance["counts"]["devices"] == 3


def test_the_policy_preview_counts_what_new_days_would_reach(ctx: Ctx) -> None:
    staff(ctx)
    for _ in range(3):
        ctx.customer(ctx.a)
    ctx.clock.set(T0 + timedelta(days=40))
    before = ctx.archive.audit_count()
    seen = ctx.archive.policy_preview("boss", {"return_days_c": 30, "warn_days": 7},
                                      block_hours=24)
    assert seen["pool"]["now"] == {"due": 0, "warned": 0}
    assert seen["pool"]["new"] == {"due": 3, "warned": 0}
    assert seen["policy"]["return_days_c"] == 30
    assert seen["offline"]["past_block_new"] == 2 == seen["offline"]["devices_active"]
    near = ctx.archive.policy_preview("boss", {"return_days_c": 45})
    assert near["pool"]["new"] == {"due": 0, "warned": 3}
    assert ctx.archive.audit_count() == before
    with pytest.raises(ArchiveError) as bad:
        ctx.archive.policy_preview("boss", {"return_days_c": 0})
    assert bad.value.code == "invalid_policy"
    with pytest.raises(Forbidden):
        ctx.archive.policy_preview("mgr", {})
    assert ctx.archive.set_offline_policy("boss", block_hours=48)["offline_block_hours"] == 48


def test_an_enrollment_code_comes_with_its_command_as_a_qr_code(ctx: Ctx) -> None:
    staff(ctx)
    made = ctx.archive.enrollment_code("Rep A", timedelta(hours=2), "https://fv.example", "boss")
    assert made["command"] == f"fieldvault enroll --server https://fv.example --code {made['code']}"
    assert made["qr_svg"].startswith("<svg role=\"img\"") and "<path" in made["qr_svg"]
    assert made["expires_at"] == at(timedelta(hours=2))
    device = ctx.archive.enroll(made["code"], "new", b"s" * 32, b"b" * 32)
    assert device.rep_id == ctx.a.rep_id
    (entry,) = ctx.archive.audit_log("boss", AuditFilter(action="enroll_code.",
                                                         actor="staff:boss"))["entries"]
    assert entry["subject"] == ctx.a.rep_id
    with pytest.raises(Forbidden):
        ctx.archive.enrollment_code("Rep A", timedelta(hours=2), "x", "people")


def test_hr_tokens_and_the_audit_log(ctx: Ctx, stores: Stores) -> None:
    staff(ctx)
    token = ctx.archive.issue_hr_token("erp", "people")
    assert ctx.archive.check_hr_token(token) == "erp"
    assert [t["name"] for t in ctx.archive.hr_tokens("boss")] == ["erp"]
    assert ctx.archive.revoke_hr_token("erp", "people") == 1
    assert ctx.archive.check_hr_token(token) is None
    with pytest.raises(NotFound):
        ctx.archive.revoke_hr_token("erp", "people")
    with pytest.raises(Forbidden):
        ctx.archive.hr_tokens("mgr")
    page = ctx.archive.audit_log("boss", AuditFilter(actor="staff:people"), limit=1)
    assert page["total"] == 2 and page["entries"][0]["action"] == "hr_token.revoke"
    assert ctx.archive.audit_log("boss", AuditFilter(action="hr_token."))["total"] == 2
    assert ctx.archive.audit_check("boss")["ok"] is True
    with pytest.raises(Forbidden):
        ctx.archive.audit_check("people")
    with pytest.raises(ArchiveError):
        ctx.archive.audit_log("boss", limit=0)


def test_the_oversight_store_methods(ctx: Ctx, stores: Stores) -> None:
    ctx.customer(ctx.a)
    with stores.write() as s:
        s.insert_hr_token("h" * 64, "erp", at())
        s.insert_hr_token("i" * 64, "erp", at(timedelta(seconds=1)))
        assert s.revoke_hr_tokens("erp", at()) == 2
        assert s.revoke_hr_tokens("erp", at()) == 0
    with stores.read() as s:
        assert [t["revoked_at"] for t in s.hr_tokens()] == [at(), at()]
        assert "token_hash" not in s.hr_tokens()[0]
        everything = s.count_audit()
        assert s.count_audit_page(AuditFilter()) == everything
        newest = s.audit_page(AuditFilter(), 2)
        assert [e["seq"] for e in newest] == [everything, everything - 1]
        assert s.audit_page(AuditFilter(), 1, 1)[0]["seq"] == everything - 1
        assert s.count_audit_page(AuditFilter(action="rep.")) == 2
        assert s.count_audit_page(AuditFilter(action="rep.add", subject=ctx.a.rep_id)) == 1
        assert s.count_audit_page(AuditFilter(since=at(timedelta(seconds=1)))) == 0
        assert s.count_audit_page(AuditFilter(until=at(timedelta(seconds=1)))) == everything
        assert s.count_audit_page(AuditFilter(action="%")) == 0  # a prefix, not a pattern
        assert s.count_pool_candidates([("C", at()), ("C", at(timedelta(seconds=-1))),
                                        ("A", at())]) == [1, 0, 0]
        assert s.count_pool_candidates([]) == []


def test_the_fleet_shows_the_unsynced_work_reported_at_check_in(ctx: Ctx, stores: Stores) -> None:
    staff(ctx)
    old = at(timedelta(hours=-30))
    ctx.archive.issue_lease(ctx.a.id, None, (7, old))  # A: 7 changes, the oldest 30 h ago
    ctx.archive.issue_lease(ctx.b.id, None, (2, at(timedelta(hours=-1))))
    fleet = {d["id"]: d for d in ctx.archive.fleet("boss")}
    assert (fleet[ctx.a.id]["unsynced_ops"], fleet[ctx.a.id]["oldest_unsynced_at"]) == (7, old)
    assert fleet[ctx.a.id]["unsynced_age_s"] == 30 * 3600
    # Same rank (ok): the older unsynced work first.
    assert [d["id"] for d in ctx.archive.fleet("boss")][:2] == [ctx.a.id, ctx.b.id]
    ctx.archive.issue_lease(ctx.a.id, None)  # an old agent reports nothing: the last stands
    assert {d["id"]: d for d in ctx.archive.fleet("boss")}[ctx.a.id]["unsynced_ops"] == 7
    with stores.write() as s:
        s.shrink_device_backlog(ctx.a.id, 5)
    with stores.read() as s:
        row = s.device_row(ctx.a.id)
        assert row is not None and (row["unsynced_ops"], row["oldest_unsynced_at"]) == (2, old)
    with stores.write() as s:
        s.shrink_device_backlog(ctx.a.id, 5)
    with stores.read() as s:
        row = s.device_row(ctx.a.id)
        assert row is not None and (row["unsynced_ops"], row["oldest_unsynced_at"]) == (0, None)
    with stores.write() as s:
        s.set_device_backlog(ctx.a.id, 0, None)
    with stores.read() as s:
        row = s.device_row(ctx.a.id)
        assert row is not None and (row["unsynced_ops"], row["oldest_unsynced_at"]) == (0, None)
    assert {d["id"]: d for d in ctx.archive.fleet("boss")}[ctx.a.id]["unsynced_age_s"] is None
