"""Pull and eviction: a rep's scope only, evictions when it shrinks, cost by changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schema.fields import PULL_CUSTOMER_ROW, PULL_VISIT_ROW
from schema.models import CustomerPatch
from server.archive.store import FeedRow
from server.rules import Archive

from ..harness import customer_update
from .kit import Ctx, Stores, ids, storage_work, visit_create


def test_pull_returns_only_the_reps_scope(ctx: Ctx) -> None:
    mine = [ctx.customer(ctx.a, f"A{i}") for i in range(4)]
    theirs = [ctx.customer(ctx.b, f"B{i}") for i in range(3)]
    pooled = ctx.customer(None, "Pool Co")
    my_visits = [visit_create(c["id"]) for c in mine for _ in range(2)]
    ctx.push(ctx.a, *my_visits)
    ctx.push(ctx.b, *(visit_create(c["id"]) for c in theirs))
    ctx.archive.edit_customer(theirs[0]["id"], CustomerPatch(notes="office note for B"), "office")
    ctx.archive.edit_customer(pooled["id"], CustomerPatch(notes="pool note"), "office")

    page = ctx.pull_all(ctx.a.rep_id)
    assert ids(page.customers) == ids(mine)
    assert ids(page.visits) == {v["entity_id"] for v in my_visits}
    assert page.evicted == []
    assert all(c["owner_rep_id"] == ctx.a.rep_id for c in page.customers)
    assert all("device_id" not in v for v in page.visits)  # which laptop is not the rep's news
    page_b = ctx.pull_all(ctx.b.rep_id)
    assert ids(page_b.customers) == ids(theirs)
    assert not ids(page_b.visits) & {v["entity_id"] for v in my_visits}


def test_assign_evicts_from_the_old_owner_and_gives_the_new_one_the_history(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a, "Rotating Account")
    keep = ctx.customer(ctx.a, "Stays With A")
    visits = [visit_create(cust["id"]) for _ in range(3)]
    ctx.push(ctx.a, *visits, visit_create(keep["id"]))
    cursor_a = ctx.pull_all(ctx.a.rep_id).last_seq
    cursor_b = ctx.pull_all(ctx.b.rep_id).last_seq

    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation after 2 years", "manager")
    page_a = ctx.pull_all(ctx.a.rep_id, cursor_a)
    assert page_a.evicted == [cust["id"]]
    assert page_a.customers == [] and page_a.visits == []
    page_b = ctx.pull_all(ctx.b.rep_id, cursor_b)
    assert ids(page_b.customers) == {cust["id"]}
    assert ids(page_b.visits) == {v["entity_id"] for v in visits}  # A's visits, authorship kept
    assert {v["rep_id"] for v in page_b.visits} == {ctx.a.rep_id}
    # a fresh device of A's never sees it again; of B's sees it all
    assert cust["id"] not in ids(ctx.pull_all(ctx.a.rep_id).customers)
    assert ids(ctx.pull_all(ctx.b.rep_id).visits) == {v["entity_id"] for v in visits}

    # back to the pool: B evicts it, nobody receives it
    cursor_a, cursor_b = page_a.last_seq, page_b.last_seq
    ctx.archive.assign(cust["id"], None, "no visit in 90 days", "pool-sweeper")
    assert ctx.pull_all(ctx.b.rep_id, cursor_b).evicted == [cust["id"]]
    page_a = ctx.pull_all(ctx.a.rep_id, cursor_a)
    assert page_a.evicted == [] and page_a.customers == []


def test_a_later_grant_wins_over_an_evict_in_one_page(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    cursor = ctx.pull_all(ctx.a.rep_id).last_seq
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "away", "manager")
    ctx.archive.assign(cust["id"], ctx.a.rep_id, "back", "manager")
    page = ctx.archive.pull(ctx.a.rep_id, cursor, 1000)
    assert page.evicted == [] and ids(page.customers) == {cust["id"]}


def test_pull_with_nothing_new_returns_nothing_and_keeps_the_cursor(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.push(ctx.a, visit_create(cust["id"]))
    end = ctx.pull_all(ctx.a.rep_id).last_seq
    assert end > 0
    for _ in range(2):
        page = ctx.archive.pull(ctx.a.rep_id, end, 1000)
        assert (page.customers, page.visits, page.evicted) == ([], [], [])
        assert page.last_seq == end and page.more is False
    # other reps' activity is not A's news
    other = ctx.customer(ctx.b)
    ctx.push(ctx.b, visit_create(other["id"]), customer_update(other["id"], notes="x"))
    page = ctx.archive.pull(ctx.a.rep_id, end, 1000)
    assert (page.customers, page.visits, page.evicted, page.last_seq) == ([], [], [], end)
    # one change of A's is exactly one record
    ctx.push(ctx.a, customer_update(cust["id"], notes="news"))
    page = ctx.archive.pull(ctx.a.rep_id, end, 1000)
    assert ids(page.customers) == {cust["id"]} and page.visits == [] and page.last_seq > end


def test_pull_cost_follows_the_reps_changes_not_the_archive_size(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.push(ctx.a, visit_create(cust["id"]))
    end = ctx.pull_all(ctx.a.rep_id).last_seq

    def pull_cost(after: int) -> tuple[int, int]:
        page, work = storage_work(ctx.archive, lambda a: a.pull(ctx.a.rep_id, after, 1000))
        return len(page.customers) + len(page.visits), work

    empty_records, empty_small = pull_cost(end)
    full_records, full_small = pull_cost(0)
    assert (empty_records, full_records) == (0, 2)
    # the archive grows by 1,500 visits of another rep
    others = [ctx.customer(ctx.b, f"B{i}") for i in range(5)]
    for i in range(3):
        ctx.push(ctx.b, *(visit_create(others[n % 5]["id"]) for n in range(500)))
    assert ctx.archive.count_visits("Rep B") == 1500
    _, empty_big = pull_cost(end)
    _, full_big = pull_cost(0)
    assert 0 < full_small  # the meter counts something
    assert empty_big <= empty_small * 1.5 + 20, (empty_small, empty_big)
    assert full_big <= full_small * 1.5 + 40, (full_small, full_big)


# --- the store ----------------------------------------------------------------------------


def test_store_feed_sequence_is_strictly_increasing_across_transactions(stores: Stores) -> None:
    seqs = []
    for i in range(4):
        with stores.write() as s:
            seqs.append(s.append_feed("rep_a", "customer", f"c{i}", f"c{i}"))
            seqs.append(s.append_feed(None, "visit", f"v{i}", f"c{i}"))
    with pytest.raises(RuntimeError), stores.write() as s:
        s.append_feed("rep_a", "customer", "lost", "lost")
        raise RuntimeError("rolled back")
    with stores.write() as s:
        seqs.append(s.append_feed("rep_a", "evict", "c9", "c9"))
    assert all(type(n) is int for n in seqs)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    with stores.read() as s:
        assert [r.entity_id for r in s.feed("rep_a", 0, 100)] == ["c0", "c1", "c2", "c3", "c9"]


def test_store_feed_pages_a_reps_rows_only(stores: Stores) -> None:
    with stores.write() as s:
        mine = [s.append_feed("rep_a", kind, f"e{i}", f"c{i}")
                for i, kind in enumerate(["customer", "visit", "grant", "evict"])]
        for i in range(2000):  # a large archive of other reps' changes in between
            s.append_feed(f"rep_{i % 7}", "visit", f"x{i}", f"y{i}")
        mine.append(s.append_feed("rep_a", "visit", "e4", "c4"))
    with stores.read() as s:
        page = s.feed("rep_a", 0, 3)
        assert page == [FeedRow(mine[0], "customer", "e0", "c0"), FeedRow(mine[1], "visit", "e1", "c1"),
                        FeedRow(mine[2], "grant", "e2", "c2")]
        assert all(type(r.seq) is int for r in page)
        rest = s.feed("rep_a", page[-1].seq, 3)
        assert [r.seq for r in rest] == mine[3:]
        assert s.feed("rep_a", mine[-1], 3) == []
        assert s.feed("rep_nobody", 0, 3) == []


def test_store_customer_owners_names_each_existing_cards_owner(ctx: Ctx) -> None:
    mine = [ctx.customer(ctx.a, f"Owned {i}") for i in range(3)]
    pooled = ctx.customer(None, "Pooled")
    ids = [c["id"] for c in mine] + [pooled["id"], "no-such-card"]
    with ctx.stores.read() as s:
        owners = s.customer_owners(ids * 400)  # repeated ids, beyond one IN list
    assert owners == {**{c["id"]: ctx.a.rep_id for c in mine}, pooled["id"]: None}


def test_store_rows_of_cards_and_visits_in_the_pull_columns(ctx: Ctx) -> None:
    cards = [ctx.customer(ctx.a, f"Rows {i}") for i in range(3)]
    visits = [visit_create(c["id"]) for c in cards for _ in range(2)]
    ctx.push(ctx.a, *visits)
    # Absent ids left out, beyond one IN list.
    card_ids = [c["id"] for c in cards] + [f"no-such-card-{i}" for i in range(1000)]
    visit_ids = [str(v["entity_id"]) for v in visits]
    with ctx.stores.read() as s:
        rows = s.customer_rows(card_ids)
        assert {r[0]: r for r in rows} == {
            c["id"]: tuple(int(c[k]) if k == "locked" else c[k] for k in PULL_CUSTOMER_ROW)
            for c in s.customers_by_ids(card_ids[:3])}
        by_id = s.visit_rows(visit_ids[:3])
        of_cards = s.visit_rows(card_ids[:2], of_customers=True)
    assert [len(r) for r in rows] == [len(PULL_CUSTOMER_ROW)] * 3
    assert sorted(r[0] for r in by_id) == sorted(visit_ids[:3])
    assert sorted(r[0] for r in of_cards) == sorted(visit_ids[:4])
    assert {len(r) for r in by_id + of_cards} == {len(PULL_VISIT_ROW)}


def test_store_customer_heads_give_what_a_pushed_visit_needs_of_each_card(ctx: Ctx) -> None:
    mine = [ctx.customer(ctx.a, f"Owned {i}") for i in range(3)]
    pooled = ctx.customer(None, "Pooled")
    ids = [c["id"] for c in mine] + [pooled["id"], "no-such-card"]
    with ctx.stores.read() as s:
        # more ids than one IN list takes
        heads = s.customer_heads([f"absent-{i}" for i in range(1200)] + ids)
        whole = {c["id"]: c for c in s.customers_by_ids(ids)}
    assert sorted(h["id"] for h in heads) == sorted(ids[:4])
    for head in heads:
        assert set(head) == {"id", "owner_rep_id", "owned_since", "created_at", "last_served_at"}
        assert head == {k: whole[head["id"]][k] for k in head}
    assert {h["id"]: h["owned_since"] is not None for h in heads} == {
        **{c["id"]: True for c in mine}, pooled["id"]: False}


def test_store_feed_leaves_out_one_origins_rows(stores: Stores) -> None:
    with stores.write() as s:
        office = s.append_feed("rep_a", "customer", "c1", "c1")
        own = [s.append_feed("rep_a", "visit", f"v{i}", "c1", origin="dev_a") for i in range(3)]
        other = s.append_feed("rep_a", "visit", "v9", "c1", origin="dev_b")
    with stores.read() as s:
        assert [r.seq for r in s.feed("rep_a", 0, 10)] == [office, *own, other]
        assert [r.seq for r in s.feed("rep_a", 0, 10, skip_origin="dev_a")] == [office, other]
        assert [r.seq for r in s.feed("rep_a", office, 1, skip_origin="dev_a")] == [other]
        assert s.feed_last("rep_a", 0) == other and s.feed_last("rep_a", other) == other
        # feed_page: the same page and the rep's last number, in one statement
        for after, limit, skip in [(0, 10, None), (0, 10, "dev_a"), (office, 1, "dev_a"),
                                   (0, 2, "dev_a"), (other, 10, "dev_a"), (own[0], 2, None)]:
            page, last = s.feed_page("rep_a", after, limit, skip_origin=skip)
            assert page == s.feed("rep_a", after, limit, skip_origin=skip)
            assert last == s.feed_last("rep_a", after)
        # past the device's own last rows, a page holds nothing and the last is theirs
        assert s.feed_page("rep_a", other, 10, "dev_b") == ([], other)
        assert s.feed_page("rep_a", office, 10, "dev_a") == (s.feed("rep_a", office, 10, "dev_a"),
                                                             other)
        assert s.feed_page("rep_nobody", 5, 10) == ([], 5)


def test_store_feed_read_cost_does_not_grow_with_other_reps_rows(archive: Archive,
                                                                  stores: Stores) -> None:
    with stores.write() as s:
        for i in range(5):
            s.append_feed("rep_a", "visit", f"e{i}", "c")

    def cost() -> int:
        rows, work = storage_work(archive, lambda a: _feed(a, "rep_a"))
        assert len(rows) == 5
        return work

    small = cost()
    with stores.write() as s:
        for i in range(3000):
            s.append_feed("rep_b", "visit", f"x{i}", "y")
    big = cost()
    assert big <= small * 1.5 + 20, (small, big)


def _feed(archive: Archive, rep_id: str) -> list[FeedRow]:
    with archive.engine.read() as tx:
        from server.archive.sqlstore import SqlStore

        return SqlStore(tx).feed(rep_id, 0, 100)


def test_revisions_report_only_the_reps_records(ctx: Ctx) -> None:
    mine, theirs = ctx.customer(ctx.a), ctx.customer(ctx.b)
    visit = visit_create(mine["id"])
    ctx.push(ctx.a, visit)
    ctx.clock.advance(timedelta(minutes=1))
    ctx.push(ctx.a, customer_update(mine["id"], notes="v2"))
    cards, visits = ctx.archive.revisions(ctx.a.rep_id, [mine["id"], theirs["id"], "gone"],
                                          [visit["entity_id"], "gone"])
    assert cards == {mine["id"]: 2} and visits == {visit["entity_id"]: 1}


def test_pull_counts_what_is_left_when_asked(ctx: Ctx) -> None:
    mine = [ctx.customer(ctx.a, f"Counted {i}") for i in range(3)]
    ctx.customer(ctx.b, "Not Counted")
    ctx.push(ctx.a, *(visit_create(c["id"]) for c in mine))
    first = ctx.archive.pull(ctx.a.rep_id, 0, 2, count=True)
    assert first.remaining == 6  # three cards and three visits, from this page on
    assert ctx.archive.pull(ctx.a.rep_id, 0, 2).remaining is None  # only when asked
    later = ctx.archive.pull(ctx.a.rep_id, first.last_seq, 2, count=True)
    assert later.remaining == 4
    with Stores(ctx.archive).read() as s:
        assert s.feed_size(ctx.a.rep_id, later.last_seq) == 2
        assert s.feed_size(ctx.b.rep_id, 0) == 1


def test_a_page_in_rows_holds_what_the_records_hold(ctx: Ctx) -> None:
    """`shape=rows` (issue 10): columns in the agent's vault order, booleans as 0/1, a
    pending call-back as null, as in records; kit.pull_all compares every page."""
    ctx.archive.add_staff("boss", "admin")
    key = ctx.customer(ctx.a, "Key Account")
    ctx.archive.lock_customer(key["card_no"], "boss", "top-10 account")
    other = ctx.customer(ctx.a, "Other")
    ctx.archive.set_callback_policy({"sample_pct": 100}, "boss")
    called = visit_create(key["id"], purpose="order", planned=True)
    ctx.push(ctx.a, called, visit_create(other["id"], purpose="service"))
    assert ctx.archive.get_visit(str(called["entity_id"]))["callback"] == "pending"

    page = ctx.archive.pull(ctx.a.rep_id, 0, 100, in_rows=True)
    assert page.customers == [] and page.visits == [] and page.attachments == {}
    cards = {r[0]: dict(zip(PULL_CUSTOMER_ROW, r, strict=True)) for r in page.customer_rows}
    assert (cards[key["id"]]["locked"], cards[other["id"]]["locked"]) == (1, 0)
    visits = {r[0]: dict(zip(PULL_VISIT_ROW, r, strict=True)) for r in page.visit_rows}
    mine = visits[str(called["entity_id"])]
    assert (mine["planned"], mine["callback"], mine["purpose"]) == (1, None, "order")
    assert ctx.pull_all(ctx.a.rep_id).visits  # and the same in records, page by page


def test_the_pull_route_reads_the_epoch_and_the_page_in_one_transaction(ctx: Ctx) -> None:
    """Archive.pull_after: the epoch the cursor is judged by and the page it names come
    from one snapshot; a cursor the judge refuses reads nothing and leaves nothing open."""
    mine = [ctx.customer(ctx.a, f"After {i}") for i in range(3)]
    seen: list[str] = []

    def judge(epoch: str) -> int:
        seen.append(epoch)
        return 0

    epoch, page = ctx.archive.pull_after(ctx.a.rep_id, judge, 100, count=True, in_rows=True)
    assert seen == [epoch] and epoch == ctx.archive.current_epoch() != ""
    assert sorted(r[0] for r in page.customer_rows) == sorted(c["id"] for c in mine)
    same = ctx.archive.pull(ctx.a.rep_id, 0, 100, count=True, in_rows=True)
    assert (page.last_seq, page.more, page.remaining) == (same.last_seq, same.more, 3)

    class Refused(Exception):
        pass

    def refuse(epoch: str) -> int:
        raise Refused(epoch)

    with pytest.raises(Refused):
        ctx.archive.pull_after(ctx.a.rep_id, refuse, 100)
    _, later = ctx.archive.pull_after(ctx.a.rep_id, lambda _: page.last_seq, 100)
    assert (later.customer_rows, later.last_seq) == ([], page.last_seq)


def test_id_lists_longer_than_a_statement_holds_are_read_whole(ctx: Ctx) -> None:
    """SqlBase._in: SQLite reads a long list in chunks of placeholders, PostgreSQL as one
    array; either way every row named is found, whichever part of the list names it."""
    cards = [ctx.customer(ctx.a, f"Listed {i}") for i in range(4)]
    # Small ids sort first: the real cards are at the end of 1,904 (a third chunk).
    wanted = sorted([f"{i:032x}" for i in range(1900)] + [c["id"] for c in cards])
    with Stores(ctx.archive).read() as s:
        assert s.customer_owners(wanted) == {c["id"]: ctx.a.rep_id for c in cards}
        assert sorted(r[0] for r in s.customer_rows(wanted)) == sorted(c["id"] for c in cards)
        assert s.customer_owners([]) == {}


def test_a_long_key_list_reads_keys_with_any_characters(ctx: Ctx) -> None:
    """On PostgreSQL a long list goes as one text[] literal built by the store: quotes,
    backslashes, commas, braces, spaces and the word NULL must stay the keys they are."""
    odd = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "\\\"", "中文"]
    keys = odd + [f"setting_{i}" for i in range(40)]
    with Stores(ctx.archive).write() as s:
        for i, key in enumerate(keys):
            s.set_meta(f"test:{key}", str(i))
    with Stores(ctx.archive).read() as s:
        assert s.metas([f"test:{k}" for k in keys] + ["test:absent"]) == {
            f"test:{k}": str(i) for i, k in enumerate(keys)}
        assert s.metas([f"test:{k}" for k in odd]) == {  # a short list: placeholders
            f"test:{k}": str(i) for i, k in enumerate(odd)}
