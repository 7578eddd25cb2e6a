"""Cards and ownership: customer cards, their revisions, listings and owners."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schema.clock import iso
from schema.models import CustomerCreate, CustomerPatch
from server.archive.engine import UniqueViolation
from server.archive.errors import ArchiveError, NotFound

from ..harness import customer_create, new_id
from .kit import REFUSED, T0, Ctx, Stores, assert_types, at, customer_row, ids, rep_row

# --- the facade ---------------------------------------------------------------------------


def test_cards_get_numbers_in_order_and_a_first_revision(ctx: Ctx) -> None:
    first, second = ctx.customer(ctx.a, "First"), ctx.customer(None, "Second")
    assert (first["card_no"], second["card_no"]) == ("FV000001", "FV000002")
    assert ctx.archive.get_customer("FV000001") == ctx.archive.get_customer(first["id"])
    assert (second["owner_rep_id"], second["ownership_source"]) == (None, "pool")
    (rev,) = ctx.archive.customer_history(first["id"])
    assert rev["rev"] == 1 and rev["snapshot"]["name"] == "First" and rev["author"] == "admin"
    with pytest.raises(NotFound):
        ctx.archive.get_customer("FV999999")
    with pytest.raises(NotFound):
        ctx.archive.add_customer(CustomerCreate(name="X"), "nobody")


def test_an_office_edit_is_a_new_revision(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.clock.advance(timedelta(hours=1))
    row = ctx.archive.edit_customer(cust["card_no"], CustomerPatch(phone="0755-1"), "office")
    assert (row["rev"], row["phone"], row["updated_at"]) == (2, "0755-1", at(timedelta(hours=1)))
    assert ctx.archive.get_customer(cust["id"]) == row
    assert [r["rev"] for r in ctx.archive.customer_history(cust["id"])] == [1, 2]
    assert ctx.archive.customer_history("unknown") == []
    # the owner's laptop hears of it
    assert ids(ctx.pull_all(ctx.a.rep_id).customers) == {cust["id"]}


def test_listings_filter_by_owner_and_pool(ctx: Ctx) -> None:
    mine = [ctx.customer(ctx.a, f"A{i}") for i in range(3)]
    ctx.customer(ctx.b, "B0")
    pooled = ctx.customer(None, "P0")
    assert [c["id"] for c in ctx.archive.list_customers("Rep A")] == [c["id"] for c in mine]
    assert [c["id"] for c in ctx.archive.list_customers("pool")] == [pooled["id"]]
    assert len(ctx.archive.list_customers()) == 5
    assert [c["card_no"] for c in ctx.archive.list_customers(limit=2)] == ["FV000001", "FV000002"]
    assert (ctx.archive.count_customers(), ctx.archive.count_customers("Rep A"),
            ctx.archive.count_customers("pool")) == (5, 3, 1)
    streamed = ctx.archive.iter_customers(ctx.a.rep_id)
    assert next(streamed)["id"] == mine[0]["id"]
    assert len(list(streamed)) == 2
    with pytest.raises(NotFound):  # now, not at the first row
        ctx.archive.iter_customers("nobody")
    with pytest.raises(NotFound):
        ctx.archive.count_customers("nobody")


def test_csv_import_is_all_or_nothing(ctx: Ctx, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("name,grade,owner\nAcme,A,Rep A\nBeta,B,\n", encoding="utf-8")
    assert ctx.archive.import_csv(good, "office") == 2
    assert ctx.archive.count_customers("Rep A") == 1 and ctx.archive.count_customers("pool") == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("name,grade\nGamma,A\nDelta,Z\n", encoding="utf-8")
    with pytest.raises(ArchiveError) as err:
        ctx.archive.import_csv(bad, "office")
    assert err.value.code == "invalid_csv" and ":3:" in err.value.message
    unknown = tmp_path / "owner.csv"
    unknown.write_text("name,owner\nEpsilon,nobody\n", encoding="utf-8")
    with pytest.raises(ArchiveError):
        ctx.archive.import_csv(unknown, "office")
    assert ctx.archive.count_customers() == 2
    assert ctx.archive.import_customers([(CustomerCreate(name="Zeta"), "Rep B")], "office") == 1


def test_every_change_of_owner_is_recorded(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a, "History Co")
    ctx.clock.advance(timedelta(days=30))
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation", "manager-zhang")
    ctx.clock.advance(timedelta(days=1))
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "again", "manager-zhang")  # no change: no entry
    ctx.clock.advance(timedelta(days=100))
    ctx.archive.assign(cust["id"], None, "no visit in 90 days", "pool-sweeper")

    history = [{k: h[k] for k in ("from_rep_id", "to_rep_id", "reason", "by", "at")}
               for h in ctx.archive.ownership_history(cust["id"])]
    assert history == [
        {"from_rep_id": None, "to_rep_id": ctx.a.rep_id, "reason": "card created",
         "by": "admin", "at": iso(T0)},
        {"from_rep_id": ctx.a.rep_id, "to_rep_id": ctx.b.rep_id, "reason": "rotation",
         "by": "manager-zhang", "at": iso(T0 + timedelta(days=30))},
        {"from_rep_id": ctx.b.rep_id, "to_rep_id": None, "reason": "no visit in 90 days",
         "by": "pool-sweeper", "at": iso(T0 + timedelta(days=131))},
    ]
    card = ctx.archive.get_customer(cust["id"])
    assert card["owner_rep_id"] is None and card["ownership_source"] == "pool"
    assert card["rev"] == 3
    with pytest.raises(NotFound):
        ctx.archive.assign(cust["id"], "nobody", "x", "admin")


def test_a_card_made_on_a_laptop_is_the_makers(ctx: Ctx) -> None:
    wire = customer_create("Found Today Ltd")
    (result,) = ctx.push(ctx.a, wire)
    assert result.status == "accepted" and result.card_no == "FV000001"
    card = ctx.archive.get_customer(wire["entity_id"])
    assert (card["owner_rep_id"], card["ownership_source"]) == (ctx.a.rep_id, "developed")
    assert ctx.archive.ownership_history(card["id"])[0]["source"] == "developed"


# --- the store ----------------------------------------------------------------------------


def test_store_card_numbers_and_meta(stores: Stores) -> None:
    with stores.write() as s:
        assert [s.next_card_number() for _ in range(3)] == [1, 2, 3]
    with pytest.raises(RuntimeError), stores.write() as s:
        assert s.next_card_number() == 4
        raise RuntimeError("rolled back")
    with stores.write() as s:
        assert s.next_card_number() == 4  # a rolled-back number was never handed out
        assert s.meta("card_counter") == "4"


def test_store_customers(stores: Stores) -> None:
    rep, other = rep_row("A"), rep_row("B")
    with stores.write() as s:
        s.insert_rep(rep)
        s.insert_rep(other)
        rows = [customer_row("FV000003", rep["id"], "Three"), customer_row("FV000001", rep["id"], "One"),
                customer_row("FV000002", None, "Pool"), customer_row("FV000004", other["id"], "Four")]
        for r in rows:
            s.insert_customer(r)
    three, one, pool, four = rows
    with stores.read() as s:
        stored = s.customer(one["id"])
        assert {k: stored[k] for k in one} == one and stored["grade"] == "C"
        assert_types(stored, ints=("rev",), strs=("id", "card_no", "created_at", "name"))
        assert s.customer_by_ref("FV000001") == s.customer_by_ref(one["id"]) == stored
        assert s.customer("nope") is None and s.customer_by_ref("nope") is None
        streamed = s.customers(rep["id"])
        assert iter(streamed) is streamed  # an iterator, not a list
        assert [c["id"] for c in streamed] == [one["id"], three["id"]]
        assert [c["id"] for c in s.customers(None, pool=True)] == [pool["id"]]
        assert [c["card_no"] for c in s.customers(None)] == [f"FV00000{i}" for i in range(1, 5)]
        assert [c["card_no"] for c in s.customers(None, limit=2)] == ["FV000001", "FV000002"]
        assert (s.count_customers(None), s.count_customers(rep["id"]),
                s.count_customers(None, pool=True)) == (4, 2, 1)
        assert ids(s.customers_by_ids([one["id"], "missing", four["id"]])) == {one["id"], four["id"]}
        assert s.customers_by_ids([]) == []
        assert s.customer_revs(rep["id"], [one["id"], four["id"], "x"]) == {one["id"]: 1}


def test_store_customers_by_many_ids_in_chunks(stores: Stores) -> None:
    rep = rep_row("A")
    with stores.write() as s:
        s.insert_rep(rep)
        made = [customer_row(f"FV{i:06d}", rep["id"]) for i in range(1, 4)]
        for r in made:
            s.insert_customer(r)
    wanted = [new_id() for _ in range(1900)] + [r["id"] for r in made]  # more than one IN chunk
    with stores.read() as s:
        assert ids(s.customers_by_ids(wanted)) == ids(made)
        assert set(s.customer_revs(rep["id"], wanted)) == ids(made)


def test_store_duplicate_card_raises(stores: Stores) -> None:
    first = customer_row("FV000001", None)
    with stores.write() as s:
        s.insert_customer(first)
    for clash in ("id", "card_no"):
        dup = customer_row("FV000002", None)
        dup[clash] = first[clash]
        with pytest.raises(UniqueViolation), stores.write() as s:
            s.insert_customer(dup)
    with stores.read() as s:
        assert s.count_customers(None) == 1


def test_store_update_and_last_served(stores: Stores) -> None:
    row = customer_row("FV000001", None)
    with stores.write() as s:
        s.insert_customer(row)
        s.update_customer({**row, "rev": 2, "notes": "new", "updated_at": at(timedelta(hours=1))})
        s.set_last_served(row["id"], at(timedelta(days=1)))
    with stores.read() as s:
        got = s.customer(row["id"])
    assert (got["rev"], got["notes"], got["last_served_at"]) == (2, "new", at(timedelta(days=1)))


def test_store_revisions_are_append_only(stores: Stores) -> None:
    row = customer_row("FV000001", None)
    with stores.write() as s:
        s.insert_customer(row)
        s.insert_customer_revision(row, 1, "admin", None, None, at())
        s.insert_customer_revision({**row, "rev": 2, "notes": "x"}, 5, "rep", "dev_1", "op_1",
                                   at(timedelta(minutes=1)))
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_customer_revision(row, 9, "admin", None, None, at())
    with stores.read() as s:
        revs = s.customer_revisions(row["id"], 1)
        assert [(r["rev"], r["server_seq"]) for r in revs] == [(1, 1), (2, 5)]
        assert revs[1]["snapshot"] == {**row, "rev": 2, "notes": "x"}
        assert (revs[1]["author"], revs[1]["device_id"], revs[1]["op_id"]) == ("rep", "dev_1", "op_1")
        assert_types(revs[0], ints=("rev", "server_seq"), strs=("customer_id", "at"))
        assert [r["rev"] for r in s.customer_revisions(row["id"], 2)] == [2]
        assert s.customer_revisions("nope", 1) == []
    for sql in ("UPDATE customer_revisions SET author='x'", "DELETE FROM customer_revisions",
                "DELETE FROM customers"):
        with pytest.raises(REFUSED):
            stores.raw(sql)
    with stores.read() as s:
        assert len(s.customer_revisions(row["id"], 1)) == 2 and s.count_customers(None) == 1


def test_store_card_maker(stores: Stores) -> None:
    rep = rep_row("A")
    office, laptop = customer_row("FV000001", rep["id"]), customer_row("FV000002", rep["id"])
    with stores.write() as s:
        s.insert_rep(rep)
        s.insert_device("dev_1", rep["id"], "one", b"s", b"b", at(timedelta(days=-3)))
        for r in (office, laptop):
            s.insert_customer(r)
        s.insert_customer_revision(office, 1, "admin", None, None, at())
        s.insert_customer_revision(laptop, 2, rep["id"], "dev_1", "op_1", at())
    with stores.read() as s:
        assert s.card_maker(office["id"]) is None
        assert s.card_maker(laptop["id"]) == {"enrolled_at": at(timedelta(days=-3)), "rep_id": rep["id"]}
        # Many cards at once (a push batch): only the laptop-made ones, by customer id.
        assert s.card_makers([office["id"], laptop["id"], "nope"]) == {
            laptop["id"]: s.card_maker(laptop["id"])}
        assert s.card_makers([]) == {}


def test_store_ownership_is_append_only(stores: Stores) -> None:
    rep = rep_row("A")
    row = customer_row("FV000001", rep["id"])
    with stores.write() as s:
        s.insert_rep(rep)
        s.insert_customer(row)
        s.insert_ownership(row["id"], rep["id"], None, "pool", "swept", "sweeper", at(timedelta(days=2)))
        s.insert_ownership(row["id"], None, rep["id"], "assigned", "card created", "admin", at())
    with stores.read() as s:
        history = s.ownership(row["id"])
    assert [(h["from_rep_id"], h["to_rep_id"]) for h in history] == [(None, rep["id"]), (rep["id"], None)]
    assert_types(history[0], ints=("id",), strs=("customer_id", "source", "reason", "by", "at"))
    for sql in ("UPDATE ownership SET to_rep_id=NULL", "DELETE FROM ownership"):
        with pytest.raises(REFUSED):
            stores.raw(sql)
    with stores.read() as s:
        assert s.ownership(row["id"]) == history and s.ownership("nope") == []
        assert s.ownerships([row["id"], "nope"]) == {row["id"]: history, "nope": []}
        assert s.ownerships([]) == {}
