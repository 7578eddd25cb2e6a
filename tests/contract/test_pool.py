"""The pool (公海): returns, warnings, the undo by a late visit, locks, claims and their
caps, on every backend with a manual clock; and the pool's store methods."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schema.clock import iso
from schema.enums import OpStatus
from server.archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from server.archive.store import CardFilter
from server.rules.operations import ownership_windows

from .kit import T0, Ctx, Stores, at, customer_row, rep_row, visit_create


def day(n: float) -> str:
    return iso(T0 + timedelta(days=n))


def staff(ctx: Ctx) -> None:
    ctx.archive.add_staff("boss", "admin")
    ctx.archive.add_rep("Lead", None, "senior")
    ctx.archive.add_staff("mgr", "manager", "Lead")  # A and B are not under Lead


def reasons(ctx: Ctx, card: dict) -> list[tuple[str, str]]:
    return [(h["source"], h["reason"]) for h in ctx.archive.ownership_history(card["id"])]


# --- returns and warnings -----------------------------------------------------------------


def test_unvisited_customers_are_warned_then_returned_but_not_locked_or_served_ones(
        ctx: Ctx) -> None:
    staff(ctx)
    idle, key, served = (ctx.customer(ctx.a, n) for n in ("Idle Co", "Key Co", "Served Co"))
    ctx.archive.lock_customer(key["card_no"], "boss", "key account")
    ctx.clock.set(T0 + timedelta(hours=1))
    assert ctx.push(ctx.a, visit_create(idle["id"], started_at=day(0.04)))[0].status == "accepted"
    assert ctx.archive.run_jobs(day(82.9))["warned"] == 0
    first = ctx.archive.run_jobs(day(83.1))  # due on day 90: warned 7 days before
    assert (first["warned"], first["returned"]) == (2, 0)
    assert ctx.archive.run_jobs(day(83.1))["warned"] == 0  # idempotent
    warned = {w["card_no"]: w for w in ctx.archive.pool_warnings()}
    assert set(warned) == {idle["card_no"], served["card_no"]}
    assert warned[served["card_no"]]["due_at"] == day(90)
    assert warned[served["card_no"]]["returns_at"] == day(93)  # the grace: 3 days
    assert [w["card_no"] for w in ctx.archive.pool_warnings("Rep B")] == []

    # A visit made offline on day 89, synced on day 91: it counts at its own time.
    ctx.clock.set(T0 + timedelta(days=91))
    (res,) = ctx.push(ctx.a, visit_create(served["id"], started_at=day(89)))
    assert res.status == OpStatus.accepted
    assert [w["card_no"] for w in ctx.archive.pool_warnings()] == [idle["card_no"]]
    assert ctx.archive.run_jobs(day(92))["returned"] == 0  # 92 days: the grace runs
    cursor = ctx.pull_all(ctx.a.rep_id).last_seq
    out = ctx.archive.run_jobs(day(94))  # 91 days and the grace gone
    assert (out["returned"], out["returned_cards"]) == (1, [idle["card_no"]])
    assert ctx.archive.run_jobs(day(94))["returned"] == 0
    assert ctx.archive.get_customer(idle["id"])["owner_rep_id"] is None
    assert reasons(ctx, idle)[-1] == ("pool", "no visit for 90 days (last: 2026-03-02)")
    assert ctx.pull_all(ctx.a.rep_id, cursor).evicted == [idle["id"]]
    assert ctx.archive.pool_warnings() == []
    # A key account never returns.
    assert ctx.archive.run_jobs(day(900))["returned"] == 1  # the served one, at last
    assert ctx.archive.get_customer(key["id"])["owner_rep_id"] == ctx.a.rep_id


def test_a_visit_made_before_the_return_undoes_it_unless_someone_claimed_it(ctx: Ctx) -> None:
    back, taken = ctx.customer(ctx.a, "Back Co"), ctx.customer(ctx.a, "Taken Co")
    assert ctx.archive.run_jobs(day(94))["returned"] == 2
    ctx.clock.set(T0 + timedelta(days=95))
    ctx.archive.claim(ctx.b.rep_id, taken["card_no"])
    cursor = ctx.pull_all(ctx.a.rep_id).last_seq
    results = ctx.push(ctx.a, visit_create(back["id"], started_at=day(89)),
                       visit_create(taken["id"], started_at=day(89)))
    assert [r.status for r in results] == ["accepted", "accepted"]
    card = ctx.archive.get_customer(back["id"])
    assert (card["owner_rep_id"], card["ownership_source"]) == (ctx.a.rep_id, "assigned")
    assert reasons(ctx, back)[-1] == ("assigned", "restored: visit of 2026-05-30 made before "
                                      "the return")
    assert [c["id"] for c in ctx.pull_all(ctx.a.rep_id, cursor).customers] == [back["id"]]
    assert ctx.archive.get_customer(taken["id"])["owner_rep_id"] == ctx.b.rep_id
    # An office's deliberate return is not undone, and the hook is callable on its own.
    ctx.archive.assign(back["id"], None, "office decision", "admin")
    (visit,) = ctx.push(ctx.a, visit_create(back["id"], started_at=day(89.5)))
    assert visit.status == OpStatus.accepted
    assert ctx.archive.after_visit_accepted(back["id"], visit.entity_id) is None
    assert ctx.archive.get_customer(back["id"])["owner_rep_id"] is None


# --- locks ----------------------------------------------------------------------------------


def test_locks_are_card_revisions_and_marks_that_split_no_ownership_window(
        ctx: Ctx, stores: Stores) -> None:
    staff(ctx)
    card = ctx.customer(ctx.a, "Key Account Co")
    ctx.clock.advance(timedelta(days=1))
    with stores.read() as s:
        before = ownership_windows(s, s.customer(card["id"]), ctx.a.rep_id)
    cursor = ctx.pull_all(ctx.a.rep_id).last_seq
    locked = ctx.archive.lock_customer(card["card_no"], "boss", "top-10 account")
    assert (locked["locked"], locked["rev"]) == (1, 2)
    assert ctx.archive.lock_customer(card["card_no"], "boss", "again")["rev"] == 2  # no change
    (pulled,) = ctx.pull_all(ctx.a.rep_id, cursor).customers
    assert pulled["locked"] == 1
    ctx.clock.advance(timedelta(days=1))
    ctx.archive.unlock_customer(card["id"], "boss", "account lost")
    (mark, unmark) = ctx.archive.ownership_history(card["id"])[1:]
    assert (mark["from_rep_id"], mark["to_rep_id"], mark["source"], mark["reason"], mark["by"]) \
        == (ctx.a.rep_id, ctx.a.rep_id, "locked", "top-10 account", "staff:boss")
    assert (unmark["source"], unmark["reason"]) == ("unlocked", "account lost")
    with stores.read() as s:
        assert ownership_windows(s, s.customer(card["id"]), ctx.a.rep_id) == before
    with pytest.raises(Forbidden) as err:
        ctx.archive.lock_customer(card["id"], "mgr", "not mine")
    assert err.value.code == "outside_team"
    with pytest.raises(Conflict) as err:
        ctx.archive.lock_customer(ctx.customer(None, "Pool Co")["id"], "boss", "x")
    assert err.value.code == "in_pool"
    with pytest.raises(ArchiveError):
        ctx.archive.lock_customer(card["id"], "boss", "  ")
    actions = [e["action"] for e in ctx.archive.audit_entries()]
    assert actions.count("customer.lock") == 1 and actions.count("customer.unlock") == 1


# --- claims ---------------------------------------------------------------------------------


def test_claims_are_capped_per_day_per_tier_and_for_the_previous_owner(ctx: Ctx) -> None:
    staff(ctx)
    ctx.archive.set_pool_policy({"claims_per_day": 2, "cap_junior": 3}, "boss")
    with pytest.raises(Forbidden):
        ctx.archive.set_pool_policy({"warn_days": 1}, "mgr")
    pool = [ctx.customer(None, f"Lead {i}") for i in range(4)]
    b = ctx.b.rep_id  # a junior rep
    page = ctx.archive.pool_page(b, "lead", 2, 1)
    assert [c["card_no"] for c in page["customers"]] == [pool[1]["card_no"], pool[2]["card_no"]]
    assert set(page["customers"][0]) == {"id", "card_no", "name", "industry", "area", "grade",
                                         "in_pool_since"}
    assert (page["total"], page["claims_left_today"], page["owned"], page["owned_cap"]) \
        == (4, 2, 0, 3)
    assert ctx.archive.claim(b, pool[0]["card_no"])["claims_left_today"] == 1
    ctx.clock.advance(timedelta(hours=1))
    assert ctx.archive.claim(b, pool[1]["id"])["claims_left_today"] == 0
    with pytest.raises(Forbidden) as err:
        ctx.archive.claim(b, pool[2]["id"])
    assert err.value.code == "daily_claim_cap"
    assert "2 claims in the last 24 hours (limit 2)" in err.value.message
    assert at(timedelta(hours=24)) in err.value.message  # when the first claim expires
    ctx.clock.advance(timedelta(hours=23, seconds=1))
    ctx.archive.claim(b, pool[2]["id"])
    ctx.clock.advance(timedelta(hours=2))
    with pytest.raises(Forbidden) as err:
        ctx.archive.claim(b, pool[3]["id"])
    assert err.value.code == "owned_cap"
    assert "you own 3 customers (limit 3 for a junior rep)" in err.value.message
    with pytest.raises(Conflict) as err:
        ctx.archive.claim(ctx.a.rep_id, pool[0]["id"])
    assert err.value.code == "not_in_pool"
    with pytest.raises(NotFound):
        ctx.archive.claim(ctx.a.rep_id, "FV999999")

    mine = ctx.customer(ctx.a, "Old Friend Co")
    ctx.archive.assign(mine["id"], None, "office decision", "admin")
    left = ctx.clock.now()
    with pytest.raises(Forbidden) as err:
        ctx.archive.claim(ctx.a.rep_id, mine["id"])
    assert err.value.code == "reclaim_cooldown"
    assert iso(left + timedelta(days=30)) in err.value.message
    ctx.clock.advance(timedelta(days=30))
    claimed = ctx.archive.claim(ctx.a.rep_id, mine["id"])
    assert claimed["card_no"] == mine["card_no"]
    card = ctx.archive.get_customer(mine["id"])
    assert (card["owner_rep_id"], card["ownership_source"]) == (ctx.a.rep_id, "claimed")
    assert reasons(ctx, mine)[-1] == ("claimed", "claimed from the pool")


# --- the store --------------------------------------------------------------------------------


def test_store_pool_candidates_warnings_and_claims(stores: Stores) -> None:
    rep, other = rep_row("Pool Rep"), rep_row("Other Rep")
    old = customer_row("FV000001", rep["id"], name="Old", grade="A", owned_since=at())
    served = customer_row("FV000002", rep["id"], name="Served", grade="A",
                          last_served_at=at(timedelta(days=5)))
    locked = customer_row("FV000003", rep["id"], name="Locked", grade="A", locked=1)
    pooled = customer_row("FV000004", None, name="Pooled", grade="A")
    with stores.write() as s:
        for r in (rep, other):
            s.insert_rep(r)
        for c in (old, served, locked, pooled):
            s.insert_customer(c)
        s.insert_ownership(pooled["id"], rep["id"], None, "pool", "swept", "system", at())
        for h, cid in ((1, old["id"]), (2, served["id"]), (30, old["id"])):
            s.insert_ownership(cid, None, rep["id"], "claimed", "claimed", rep["id"],
                               at(timedelta(hours=h)))
        s.insert_ownership(old["id"], None, other["id"], "assigned", "office", "admin",
                           at(timedelta(hours=3)))
        assert s.insert_pool_warning(old["id"], rep["id"], at(timedelta(days=90)), at())
        assert not s.insert_pool_warning(old["id"], rep["id"], at(timedelta(days=90)), at())
        s.insert_pool_warning(pooled["id"], rep["id"], at(timedelta(days=90)), at())
    with stores.read() as s:
        cutoff = at(timedelta(days=1))
        assert [c["card_no"] for c in s.pool_candidates("A", cutoff)] == ["FV000001"]
        assert [c["card_no"] for c in s.pool_candidates("A", at(timedelta(days=5)))] \
            == ["FV000001", "FV000002"]
        assert [c["card_no"] for c in s.pool_candidates("A", at(timedelta(days=5)), "FV000001",
                                                         1)] == ["FV000002"]
        assert s.pool_candidates("B", cutoff) == []
        (warning,) = s.pool_warnings()  # the pooled card is no longer the rep's
        assert (warning["card_no"], warning["rep_name"]) == ("FV000001", "Pool Rep")
        assert s.pool_warnings([other["id"]]) == [] and len(s.pool_warnings([rep["id"]])) == 1
        assert s.claims_since(rep["id"], at(timedelta(hours=2))) == [at(timedelta(hours=2)),
                                                                       at(timedelta(hours=30))]
        assert s.claims_since(other["id"], at()) == []


def test_store_pool_entries_and_staff_listings(stores: Stores) -> None:
    rep = rep_row("List Rep")
    cards = [customer_row("FV000010", None, name="Harbor 100% Foods", industry="Food",
                          area="Pudong"),
             customer_row("FV000011", None, name="Quiet_Co", industry="Tools", area="浦东"),
             customer_row("FV000012", rep["id"], name="Harbor Owned", grade="A", locked=1,
                          last_served_at=at(timedelta(days=3)))]
    with stores.write() as s:
        s.insert_rep(rep)
        for c in cards:
            s.insert_customer(c)
        s.insert_ownership(cards[0]["id"], rep["id"], None, "pool", "swept", "system",
                           at(timedelta(days=1)))
    with stores.read() as s:
        assert [e["card_no"] for e in s.pool_entries("", 10, 0)] == ["FV000010", "FV000011"]
        assert [e["card_no"] for e in s.pool_entries("HARBOR", 10, 0)] == ["FV000010"]
        assert [e["card_no"] for e in s.pool_entries("100%", 10, 0)] == ["FV000010"]
        assert [e["card_no"] for e in s.pool_entries("%", 10, 0)] == ["FV000010"]  # literal
        assert [e["card_no"] for e in s.pool_entries("_", 10, 0)] == ["FV000011"]
        assert [e["card_no"] for e in s.pool_entries("浦东", 10, 0)] == ["FV000011"]
        assert [e["card_no"] for e in s.pool_entries("FV000011", 10, 0)] == ["FV000011"]
        assert [e["card_no"] for e in s.pool_entries("", 1, 1)] == ["FV000011"]
        (entry,) = s.pool_entries("food", 10, 0)
        assert entry["in_pool_since"] == at(timedelta(days=1))
        assert (s.count_pool(""), s.count_pool("harbor"), s.count_pool("nothing")) == (2, 1, 0)

        def found(**kw: object) -> list[str]:
            where = CardFilter(**kw)  # type: ignore[arg-type]
            rows = s.find_customers(where, 10, 0)
            assert s.count_found_customers(where) == len(rows)
            return [r["card_no"] for r in rows]

        assert found() == ["FV000010", "FV000011", "FV000012"]
        assert found(pool=False) == ["FV000012"]
        assert found(owners=(), pool=True) == ["FV000010", "FV000011"]
        assert found(owners=(rep["id"],), pool=False) == ["FV000012"]
        assert found(owners=("rep_nobody",), pool=True) == ["FV000010", "FV000011"]
        assert found(owners=(), pool=False) == []
        assert found(grade="A") == ["FV000012"] and found(locked=True) == ["FV000012"]
        assert found(served_before=at(timedelta(days=3))) == ["FV000010", "FV000011"]
        assert s.find_customers(CardFilter(pool=False))[0]["owner_name"] == "List Rep"
