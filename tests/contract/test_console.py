"""The staff console's sessions and paged lists on every backend: sessions end at
sign-out, when idle, at their age limit and with their account; keyset pages walk a
list without gaps or repeats; the dashboard's counts; each behind the staff rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schema.clock import ManualClock
from schema.models import CustomerCreate
from server.archive.errors import ArchiveError, Forbidden
from server.archive.store import CardFilter
from server.rules import Archive
from server.rules.archive_console import SESSION_IDLE, SESSION_MAX

from .kit import Stores, at, customer_row, rep_row, visit_row

PASSWORD = "correct horse battery"


def test_session_rows(archive: Archive, stores: Stores) -> None:
    archive.add_staff("root", "admin", password=PASSWORD)
    staff_id = archive.staff_member("root").id
    with stores.write() as s:
        s.insert_console_session({"token_digest": "d" * 64, "id": "cs_1", "staff_id": staff_id,
                                  "csrf_key": "k", "created_at": at(), "expires_at": at(timedelta(hours=1)),
                                  "last_seen_at": at()})
    with stores.write() as s:
        row = s.console_session("d" * 64)
        assert row is not None and row["name"] == "root" and row["role"] == "admin"
        assert row["csrf_key"] == "k" and row["disabled_at"] is None
        s.touch_console_session("d" * 64, at(timedelta(minutes=5)), at(timedelta(minutes=4)))
        s.touch_console_session("d" * 64, at(timedelta(minutes=6)), at(timedelta(minutes=4)))
    with stores.write() as s:
        row = s.console_session("d" * 64)
        assert row is not None and row["last_seen_at"] == at(timedelta(minutes=5))
        assert s.revoke_console_session("d" * 64, at()) == 1
        assert s.revoke_console_session("d" * 64, at()) == 0
        assert s.console_session("d" * 64) is None


def test_sign_in_idle_age_sign_out_and_lockout(archive: Archive, clock: ManualClock) -> None:
    archive.add_rep("Boss")
    archive.add_staff("mgr", "manager", rep="Boss", password=PASSWORD)
    archive.add_staff("root", "admin", password=PASSWORD)
    token, session = archive.console_sign_in("mgr", PASSWORD)
    live = archive.console_session(token)
    assert live is not None and live.who.name == "mgr" and live.id == session.id
    assert archive.console_session(token + "x") is None and archive.console_session("") is None
    # Idle: each request keeps it alive; SESSION_IDLE without one ends it.
    clock.advance(SESSION_IDLE - timedelta(minutes=1))
    assert archive.console_session(token) is not None
    clock.advance(SESSION_IDLE - timedelta(minutes=1))
    assert archive.console_session(token) is not None
    clock.advance(SESSION_IDLE)
    assert archive.console_session(token) is None
    # Age: even a busy session ends SESSION_MAX after sign-in.
    token, _ = archive.console_sign_in("mgr", PASSWORD)
    for _ in range(int(SESSION_MAX / (SESSION_IDLE / 2))):
        clock.advance(SESSION_IDLE / 2)
        if archive.console_session(token) is None:
            break
    assert archive.console_session(token) is None
    # Sign-out ends it; a disabled account's sessions stop at once.
    token, _ = archive.console_sign_in("mgr", PASSWORD)
    assert archive.console_sign_out(token) and not archive.console_sign_out(token)
    assert archive.console_session(token) is None
    token, _ = archive.console_sign_in("mgr", PASSWORD)
    archive.disable_staff("mgr", by="root")
    assert archive.console_session(token) is None
    # The staff library's lockout applies to console sign-ins.
    for _ in range(5):
        with pytest.raises(Forbidden):
            archive.console_sign_in("root", "wrong password!")
    with pytest.raises(Forbidden) as err:
        archive.console_sign_in("root", PASSWORD)
    assert err.value.code == "locked"
    actions = [e["action"] for e in archive.audit_entries()]
    assert "console.sign_in" in actions and "console.sign_out" in actions


def test_keyset_pages_and_counts(archive: Archive, stores: Stores) -> None:
    boss, other = rep_row("Boss"), rep_row("Other")
    a = rep_row("Rep A", boss["id"])
    cards = [customer_row(f"C{i:04d}", a["id"] if i % 3 else None, grade="ABC"[i % 3],
                          locked=1 if i == 4 else 0) for i in range(1, 13)]
    theirs = customer_row("C9999", other["id"])
    day1, day2 = at(), at(timedelta(days=1))
    visits = [visit_row(cards[0]["id"], a["id"], day1), visit_row(cards[1]["id"], a["id"], day1),
              visit_row(cards[1]["id"], a["id"], day2, status="approved", callback="disputed",
                        callback_by="staff:vera", callback_at=day2),
              visit_row(cards[2]["id"], a["id"], day2, status="void"),
              visit_row(theirs["id"], other["id"], day2)]
    with stores.write() as s:
        for r in (boss, other, a):
            s.insert_rep(r)
        for c in (*cards, theirs):
            s.insert_customer(c)
        for v in visits:
            s.insert_visit(v)
        s.insert_pool_warning(cards[0]["id"], a["id"], at(timedelta(days=5)), at())
        s.insert_pool_warning(cards[3]["id"], a["id"], at(timedelta(days=4)), at())  # locked
        s.insert_pool_warning(cards[1]["id"], other["id"], at(timedelta(days=4)), at())  # not owner
        s.insert_plan({"id": "p1", "rep_id": a["id"], "day": "2026-03-02", "rev": 1,
                       "status": "submitted", "items": [], "submitted_at": at()})
        s.insert_plan({"id": "p2", "rep_id": a["id"], "day": "2026-03-03", "rev": 1,
                       "status": "approved", "items": [], "submitted_at": at()})
    with stores.read() as s:
        seen: list[str] = []
        after = ""
        for _ in range(10):
            page = s.customers_page(CardFilter(owners=(a["id"],), pool=False), after, 3)
            if not page:
                break
            seen += [c["card_no"] for c in page]
            after = page[-1]["card_no"]
        assert seen == sorted(c["card_no"] for c in (*cards, theirs) if c["owner_rep_id"] == a["id"])
        pool = s.customers_page(CardFilter(owners=()), "", 50)
        assert {c["card_no"] for c in pool} == {c["card_no"] for c in cards if c["owner_rep_id"] is None}
        locked = s.customers_page(CardFilter(locked=True), "", 50)
        assert [c["card_no"] for c in locked] == ["C0004"] and locked[0]["owner_name"] == "Rep A"
        queue = s.review_page([a["id"]], ("", ""), 1)
        assert len(queue) == 1
        rest = s.review_page([a["id"]], (queue[0]["started_at"], queue[0]["id"]), 10)
        assert {queue[0]["id"], *(v["id"] for v in rest)} == {visits[0]["id"], visits[1]["id"]}
        assert len(s.review_page(None, ("", ""), 10)) == 3 and s.review_page([], ("", ""), 10) == []
        assert s.count_visits_by_status([a["id"]], "submitted") == 2
        assert s.count_visits_by_status(None, "submitted") == 3
        assert s.count_callbacks([a["id"]], "disputed") == 1
        assert s.count_callbacks([other["id"]], "disputed") == 0
        per_day = s.visits_per_day([a["id"]], day1[:10], "2026-03-04")
        assert [(r["day"], r["visits"]) for r in per_day] == [("2026-03-02", 2), ("2026-03-03", 1)]
        assert len(s.visits_per_day(None, day1[:10], "2026-03-04")) == 3
        assert s.plan_counts([a["id"]], "2026-03-01", "2026-03-31") == {"submitted": 1, "approved": 1}
        assert s.plan_counts([other["id"]], "2026-03-01", "2026-03-31") == {}
        assert s.callbacks_by("staff:vera", day1[:10]) == {"disputed": 1}
        assert s.callbacks_by("staff:vera", "2026-03-04") == {}
        assert [v["id"] for v in s.disputes_page([a["id"]], 10)] == [visits[2]["id"]]
        near = s.nearing_pool([a["id"]])
        assert near == s.pool_warnings([a["id"]]) and [w["card_no"] for w in near] == ["C0001"]
        assert near[0]["rep_name"] == "Rep A" and s.nearing_pool(None) == s.pool_warnings(None)
        assert s.nearing_pool([other["id"]]) == []
        assert s.disputes_page([other["id"]], 10) == [] and len(s.disputes_page(None, 10)) == 1


def test_console_listings_follow_the_staff_rules(archive: Archive) -> None:
    archive.add_rep("Boss")
    archive.add_rep("Rep A", "Boss")
    archive.add_rep("Stranger")
    archive.add_staff("mgr", "manager", rep="Boss")
    archive.add_staff("vera", "verifier")
    archive.add_staff("root", "admin")
    archive.add_customer(_card("Mine"), owner="Rep A")
    archive.add_customer(_card("Theirs"), owner="Stranger")
    archive.add_customer(_card("Pooled"))
    names = {c["name"] for c in archive.customers_page("mgr")}
    assert names == {"Mine", "Pooled"}
    assert {c["name"] for c in archive.customers_page("root")} == {"Mine", "Theirs", "Pooled"}
    assert [c["name"] for c in archive.customers_page("mgr", in_pool=True)] == ["Pooled"]
    with pytest.raises(Forbidden) as err:
        archive.customers_page("mgr", owner="Stranger")
    assert err.value.code == "outside_team"
    for call in (lambda: archive.customers_page("vera"), lambda: archive.team_dashboard("vera"),
                 lambda: archive.review_page("vera"), lambda: archive.callback_throughput("mgr"),
                 lambda: archive.disputes_page("vera")):
        with pytest.raises(Forbidden):
            call()
    with pytest.raises(ArchiveError):
        archive.customers_page("mgr", limit=10_000)
    board = archive.team_dashboard("mgr")
    assert [name for _, name in board["reps"]] == ["Rep A"] and len(board["days"]) == 30
    assert board["queue"] == 0 and board["disputed"] == 0
    assert archive.review_page("mgr") == [] and archive.disputes_page("mgr") == []
    assert [r["name"] for r in archive.team_reps("mgr")] == ["Rep A"]
    assert archive.callback_throughput("vera")["today"] == {}


def _card(name: str) -> CustomerCreate:
    return CustomerCreate(name=name)
