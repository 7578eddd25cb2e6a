"""Contract tests of the archive interface (server/archive/base.py `Archive`).

Every storage backend must pass this module. The tests talk to the archive only
through the interface, except where the contract is about what the storage itself
refuses (no hard delete, append-only history): there each backend supplies a way to
run a raw statement and the errors that statement must raise.

To add a backend (e.g. PostgreSQL), append a `Backend` to BACKENDS; mark it to skip
when its server is not available (e.g. no FIELDVAULT_TEST_PG_URL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schema.clock import ManualClock, iso
from schema.enums import OpKind
from schema.models import CustomerCreate, CustomerPatch, OpResult, PushRequest
from server.archive import Device, PullPage
from server.rules import Archive, init_archive

from .harness import customer_create, customer_update, new_id, op
from .harness import visit_create as _visit_create

# --- backends ----------------------------------------------------------------------------

WorkMeter = Callable[[Archive], AbstractContextManager[Callable[[], int]]]


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[Path, ManualClock], Archive]
    raw_execute: Callable[[Archive, str, tuple[Any, ...]], None]
    integrity_errors: tuple[type[BaseException], ...]
    work_meter: WorkMeter | None = None  # counts storage work done inside the block


def _sqlite_raw(archive: Archive, sql: str, params: tuple[Any, ...]) -> None:
    assert isinstance(archive, Archive)
    with closing(sqlite3.connect(archive.path)) as conn, conn:
        conn.execute(sql, params)


@contextmanager
def _sqlite_work(archive: Archive) -> Iterator[Callable[[], int]]:
    """SQLite virtual-machine instructions executed by this thread's archive connection."""
    assert isinstance(archive, Archive)
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    archive.conn.set_progress_handler(tick, 1)
    try:
        yield lambda: steps[0]
    finally:
        archive.conn.set_progress_handler(None, 0)


BACKENDS = [
    Backend("sqlite", lambda path, clock: init_archive(path, clock), _sqlite_raw,
            (sqlite3.IntegrityError,), _sqlite_work),
]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Ctx:
    backend: Backend
    archive: Archive
    clock: ManualClock
    a: Device
    b: Device

    def push(self, device: Device, *ops: dict[str, Any]) -> list[OpResult]:
        return self.archive.push(device, list(PushRequest.model_validate({"ops": ops}).ops))

    def pull_all(self, rep_id: str, after: int = 0, limit: int = 3) -> PullPage:
        """Every page from `after` to the end, merged (small pages to exercise paging)."""
        total = PullPage(last_seq=after)
        for _ in range(10_000):
            page = self.archive.pull(rep_id, total.last_seq, limit)
            assert page.last_seq >= total.last_seq
            total.customers += page.customers
            total.visits += page.visits
            total.evicted += page.evicted
            total.last_seq = page.last_seq
            if not page.more:
                return total
        raise AssertionError("pull did not finish")

    def customer(self, owner: Device | None, name: str = "Customer") -> dict[str, Any]:
        return self.archive.add_customer(CustomerCreate(name=name),
                                         owner.rep_id if owner else None, "admin")


def _device(archive: Archive, rep: str) -> Device:
    code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
    return archive.enroll(code, f"{rep} laptop", new_id()[:32].encode(), new_id()[:32].encode())


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Ctx:
    backend: Backend = request.param
    clock = ManualClock(T0)
    archive = backend.make(tmp_path / "archive", clock)
    rep_a = archive.add_rep("Rep A", None, "senior")["id"]
    rep_b = archive.add_rep("Rep B", None, "junior")["id"]
    return Ctx(backend, archive, clock, _device(archive, rep_a), _device(archive, rep_b))


def at(delta: timedelta) -> str:
    return iso(T0 + delta)


def visit_create(customer_id: str, visit_id: str | None = None, **data: Any) -> dict[str, Any]:
    """A visit at T0 by default: the archives here run on a manual clock, and a visit
    may be dated neither before its card existed nor ahead of the server's clock."""
    return _visit_create(customer_id, visit_id, **{"started_at": at(timedelta()), "ended_at": None,
                                                   **data})


# --- push: exactly once, all or nothing ---------------------------------------------------

def test_same_op_pushed_again_gives_the_same_result_and_one_row(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], started_at=at(timedelta(minutes=1)), ended_at=None)
    first = ctx.push(ctx.a, visit)
    assert first[0].status == "accepted"
    counts = ctx.archive.counts()
    for _ in range(3):  # a lost response, retried
        ctx.clock.advance(timedelta(minutes=5))
        assert ctx.push(ctx.a, visit) == first
    assert ctx.archive.counts() == counts
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert row["id"] == visit["entity_id"] and row["rev"] == 1


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
    visit = visit_create(cust["id"])
    results = ctx.archive.push(ctx.a, [*PushRequest.model_validate({"ops": [visit]}).ops] * 2)
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
    good = [visit_create(cust["id"]), customer_create("Developed Here Ltd"),
            customer_update(cust["id"], phone="0755-1234 5678")]
    cursor = ctx.pull_all(ctx.a.rep_id).last_seq
    counts = ctx.archive.counts()
    card = ctx.archive.get_customer(cust["id"])
    ops = list(PushRequest.model_validate({"ops": good}).ops)
    with pytest.raises(Exception, match="storage failure"):
        ctx.archive.push(ctx.a, [*ops, Exploding()])
    assert ctx.archive.counts() == counts
    assert ctx.archive.get_customer(cust["id"]) == card
    assert ctx.pull_all(ctx.a.rep_id, cursor).last_seq == cursor  # no feed rows either
    # nothing was recorded as applied: the same ops go through afterwards
    assert [r.status for r in ctx.archive.push(ctx.a, ops)] == ["accepted"] * 3


# --- nothing is ever hard-deleted ----------------------------------------------------------

def test_customers_and_visits_cannot_be_deleted_and_history_is_append_only(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"])
    ctx.push(ctx.a, visit, customer_update(cust["id"], notes="v2"))
    ctx.push(ctx.a, visit_create(ctx.customer(ctx.b)["id"]))  # quarantined: not A's customer
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation", "admin")
    counts = ctx.archive.counts()
    history = ctx.archive.ownership_history(cust["id"])
    raw = ctx.backend.raw_execute
    refused = [
        ("DELETE FROM customers WHERE id=?", (cust["id"],)),
        ("DELETE FROM visits WHERE id=?", (visit["entity_id"],)),
        ("UPDATE customer_revisions SET snapshot='{}' WHERE customer_id=?", (cust["id"],)),
        ("DELETE FROM customer_revisions WHERE customer_id=?", (cust["id"],)),
        ("UPDATE visit_revisions SET author='someone else' WHERE visit_id=?",
         (visit["entity_id"],)),
        ("DELETE FROM visit_revisions WHERE visit_id=?", (visit["entity_id"],)),
        ("UPDATE ownership SET to_rep_id=NULL WHERE customer_id=?", (cust["id"],)),
        ("DELETE FROM ownership WHERE customer_id=?", (cust["id"],)),
        ("DELETE FROM quarantine", ()),
    ]
    for sql, params in refused:
        with pytest.raises(ctx.backend.integrity_errors):
            raw(ctx.archive, sql, params)
    assert ctx.archive.counts() == counts
    assert ctx.archive.ownership_history(cust["id"]) == history
    assert len(ctx.archive.quarantine()) == 1


def test_voiding_a_visit_keeps_it_with_its_reason(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], summary="Wrong customer, sorry")
    ctx.push(ctx.a, visit)
    (result,) = ctx.push(ctx.a, op("visit.void", visit["entity_id"],
                                   {"reason": "logged on the wrong card"}, base_rev=1))
    assert result.status == "accepted" and result.rev == 2
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert (row["status"], row["void_reason"], row["summary"]) == (
        "void", "logged on the wrong card", "Wrong customer, sorry")


# --- pull: scope, eviction, cost ---------------------------------------------------------------

def _ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in rows}


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
    assert _ids(page.customers) == _ids(mine)
    assert _ids(page.visits) == {v["entity_id"] for v in my_visits}
    assert page.evicted == []
    assert all(c["owner_rep_id"] == ctx.a.rep_id for c in page.customers)
    page_b = ctx.pull_all(ctx.b.rep_id)
    assert _ids(page_b.customers) == _ids(theirs)
    assert not _ids(page_b.visits) & {v["entity_id"] for v in my_visits}


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
    assert _ids(page_b.customers) == {cust["id"]}
    assert _ids(page_b.visits) == {v["entity_id"] for v in visits}  # A's visits, authorship kept
    assert {v["rep_id"] for v in page_b.visits} == {ctx.a.rep_id}
    # a fresh device of A's never sees it again; of B's sees it all
    assert cust["id"] not in _ids(ctx.pull_all(ctx.a.rep_id).customers)
    assert _ids(ctx.pull_all(ctx.b.rep_id).visits) == {v["entity_id"] for v in visits}

    # back to the pool: B evicts it, nobody receives it
    cursor_a, cursor_b = page_a.last_seq, page_b.last_seq
    ctx.archive.assign(cust["id"], None, "no visit in 90 days", "pool-sweeper")
    assert ctx.pull_all(ctx.b.rep_id, cursor_b).evicted == [cust["id"]]
    page_a = ctx.pull_all(ctx.a.rep_id, cursor_a)
    assert page_a.evicted == [] and page_a.customers == []


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
    assert _ids(page.customers) == {cust["id"]} and page.visits == [] and page.last_seq > end


def test_pull_cost_follows_the_reps_changes_not_the_archive_size(ctx: Ctx) -> None:
    meter = ctx.backend.work_meter
    if meter is None:
        pytest.skip(f"{ctx.backend.name} has no work meter")
    cust = ctx.customer(ctx.a)
    ctx.push(ctx.a, visit_create(cust["id"]))
    end = ctx.pull_all(ctx.a.rep_id).last_seq

    def empty_pull_cost() -> int:
        with meter(ctx.archive) as work:
            page = ctx.archive.pull(ctx.a.rep_id, end, 1000)
        assert page.visits == [] and page.last_seq == end
        return work()

    small = empty_pull_cost()
    # the archive grows by 3,000 visits of another rep
    others = [ctx.customer(ctx.b, f"B{i}") for i in range(30)]
    for i in range(3):
        ctx.push(ctx.b, *(visit_create(others[(i * 1000 + n) % 30]["id"]) for n in range(1000)))
    assert len(ctx.archive.list_visits(rep=ctx.b.rep_id)) == 3000
    big = empty_pull_cost()
    assert 0 < small and big <= small * 1.5 + 20, (small, big)


# --- ownership history -------------------------------------------------------------------------

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


def test_visit_logged_before_a_reassignment_is_accepted_after_it_quarantined(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.clock.advance(timedelta(days=2))
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation", "admin")
    before = visit_create(cust["id"], started_at=at(timedelta(days=1)), ended_at=None)
    after = visit_create(cust["id"], started_at=at(timedelta(days=3)), ended_at=None)
    results = ctx.push(ctx.a, before, after)
    assert [r.status for r in results] == ["accepted", "quarantined"]
    assert _ids(ctx.archive.list_visits(customer=cust["id"])) == {before["entity_id"]}
    (held,) = ctx.archive.quarantine()
    assert held["entity_id"] == after["entity_id"]  # kept for review, never lost
    # the accepted one is the new owner's history now
    assert before["entity_id"] in _ids(ctx.pull_all(ctx.b.rep_id).visits)
