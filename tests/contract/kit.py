"""Shared helpers of the contract suite (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from schema.clock import ManualClock, iso
from schema.fields import PULL_CUSTOMER_ROW, PULL_VISIT_ROW
from schema.models import CustomerCreate, OpResult, PushRequest
from server.archive import Device, PullPage
from server.archive.engine import Engine, JobLock, Tx
from server.archive.sqlstore import SqlStore
from server.rules import Archive

from ..harness import new_id
from ..harness import visit_create as _visit_create

BACKENDS = ["sqlite", "postgresql"]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# What the database raises when a history trigger refuses a statement: an integrity
# error of the driver (SQLite's RAISE(ABORT), PostgreSQL's restrict_violation). The
# engines pass it through unmapped: only a bug of ours would run such a statement.
REFUSED = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def at(delta: timedelta = timedelta()) -> str:
    return iso(T0 + delta)


class Stores:
    """Store transactions on the archive's own engine."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.engine: Engine = archive.engine

    @contextmanager
    def write(self) -> Iterator[SqlStore]:
        with self.engine.write() as tx:
            yield SqlStore(tx)

    @contextmanager
    def read(self) -> Iterator[SqlStore]:
        with self.engine.read() as tx:
            yield SqlStore(tx)

    def raw(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One raw statement in its own write (what the database itself allows)."""
        with self.engine.write() as tx:
            return tx.execute(sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.engine.read() as tx:
            return tx.rows(sql, params)


# --- rows for store-level tests ---------------------------------------------------------

def rep_row(name: str, manager_id: str | None = None, tier: str = "mid",
            created_at: str | None = None) -> dict[str, Any]:
    return {"id": "rep_" + new_id()[:8], "name": name, "manager_id": manager_id, "tier": tier,
            "active": 1, "created_at": created_at or at()}


def customer_row(card_no: str, owner: str | None, name: str = "Acme", **extra: Any) -> dict[str, Any]:
    return {"id": new_id(), "rev": 1, "card_no": card_no, "name": name, "created_by": "admin",
            "created_at": at(), "owner_rep_id": owner, "owned_since": at() if owner else None,
            "ownership_source": "assigned" if owner else "pool", "last_served_at": None,
            "updated_at": at(), **extra}


def visit_row(customer_id: str, rep_id: str, started_at: str | None = None,
              **extra: Any) -> dict[str, Any]:
    return {"id": new_id(), "rev": 1, "customer_id": customer_id, "rep_id": rep_id,
            "device_id": None, "started_at": started_at or at(), "purpose": "order",
            "summary": "Ordered 200 units", "status": "submitted", "created_at": at(),
            "updated_at": at(), **extra}


def assert_types(row: dict[str, Any], *, ints: Sequence[str] = (), strs: Sequence[str] = (),
                 blobs: Sequence[str] = (), floats: Sequence[str] = ()) -> None:
    """The same Python types on every backend (bool is not an int here)."""
    for names, kind in ((ints, int), (strs, str), (blobs, bytes), (floats, float)):
        for name in names:
            value = row[name]
            assert type(value) is kind, f"{name}={value!r} is {type(value).__name__}, not {kind.__name__}"


# --- a world of two reps with a laptop each, for facade tests ----------------------------

def enroll_device(archive: Archive, rep: str) -> Device:
    code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
    return archive.enroll(code, f"{rep} laptop", new_id()[:32].encode(), new_id()[:32].encode())


def visit_create(customer_id: str, visit_id: str | None = None, **data: Any) -> dict[str, Any]:
    """A visit at T0 by default: the archives here run on a manual clock, and a visit
    may be dated neither before its card existed nor ahead of the server's clock."""
    return _visit_create(customer_id, visit_id, **{"started_at": at(), "ended_at": None, **data})


def ops(*wire: dict[str, Any]) -> list[Any]:
    return list(PushRequest.model_validate({"ops": wire}).ops)


@dataclass
class Ctx:
    archive: Archive
    clock: ManualClock
    stores: Stores
    a: Device
    b: Device

    def push(self, device: Device, *wire: dict[str, Any]) -> list[OpResult]:
        return self.archive.push(device, ops(*wire))

    def pull_all(self, rep_id: str, after: int = 0, limit: int = 3) -> PullPage:
        """Every page from `after` to the end, merged (small pages to exercise paging).
        Each page is also read in rows (`shape=rows`), which must say the same."""
        total = PullPage(last_seq=after)
        for _ in range(10_000):
            page = self.archive.pull(rep_id, total.last_seq, limit)
            assert_rows_say_the_same(page, self.archive.pull(rep_id, total.last_seq, limit,
                                                             in_rows=True))
            assert page.last_seq >= total.last_seq
            total.customers += page.customers
            total.visits += page.visits
            total.evicted += page.evicted
            total.last_seq = page.last_seq
            if not page.more:
                return total
        raise AssertionError("pull did not finish")

    def customer(self, owner: Device | None, name: str | None = None) -> dict[str, Any]:
        # A unique name by default: a second card of the same name is a duplicate.
        return self.archive.add_customer(CustomerCreate(name=name or f"Customer {new_id()[:8]}"),
                                         owner.rep_id if owner else None, "admin")


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in rows}


# --- measuring the storage work of a facade call ------------------------------------------

class _RecordingTx:
    """A Tx that notes every statement it runs (for `storage_work`)."""

    def __init__(self, tx: Tx, log: list[tuple[str, tuple[Any, ...]]]) -> None:
        self._tx, self._log = tx, log
        self.dialect = tx.dialect

    def _note(self, sql: str, params: Sequence[Any]) -> None:
        self._log.append((sql, tuple(params)))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._note(sql, params)
        return self._tx.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for r in rows:
            self._note(sql, r)
        self._tx.executemany(sql, rows)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._note(sql, params)
        return self._tx.rows(sql, params)

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._note(sql, params)
        return self._tx.tuples(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        self._note(sql, params)
        return self._tx.one(sql, params)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._note(sql, params)
        return self._tx.scalar(sql, params)

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        self._note(sql, params)
        return self._tx.stream(sql, params)


class _RecordingEngine:
    def __init__(self, engine: Engine, log: list[tuple[str, tuple[Any, ...]]]) -> None:
        self._engine, self._log = engine, log
        self.kind = engine.kind

    @contextmanager
    def read(self, one_statement: bool = False) -> Iterator[Tx]:
        with self._engine.read(one_statement) as tx:
            yield _RecordingTx(tx, self._log)

    @contextmanager
    def write(self, serial: bool = True, durable: bool = True) -> Iterator[Tx]:
        with self._engine.write(serial, durable) as tx:
            yield _RecordingTx(tx, self._log)

    def job_lock(self, name: str) -> AbstractContextManager[JobLock]:
        return self._engine.job_lock(name)

    def describe(self) -> str:
        return self._engine.describe()

    def close(self) -> None:  # the archive under test owns the engine
        pass


def _pg_rows_examined(node: dict[str, Any]) -> int:
    loops = int(node.get("Actual Loops", 1))
    own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
           + node.get("Rows Removed by Index Recheck", 0)) * loops
    return int(own) + sum(_pg_rows_examined(child) for child in node.get("Plans", []))


def _work_of(engine: Engine, sql: str, params: tuple[Any, ...]) -> int:
    """The storage's own count of work for one read statement: SQLite's virtual
    machine steps, PostgreSQL's rows examined (returned plus filtered out) by
    EXPLAIN ANALYZE."""
    with engine.read() as tx:
        if tx.dialect == "postgresql":
            plan = tx.scalar("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return _pg_rows_examined(plan[0]["Plan"])
        conn: sqlite3.Connection = tx.conn  # type: ignore[attr-defined]
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(tick, 1)
        try:
            tx.rows(sql, params)
        finally:
            conn.set_progress_handler(None, 0)
        return steps[0]


def storage_work(archive: Archive, call: Callable[[Archive], Any]) -> tuple[Any, int]:
    """Run `call` on an archive over the same engine, then replay each statement it
    read with the storage's work counter; returns (call's result, total work)."""
    log: list[tuple[str, tuple[Any, ...]]] = []
    result = call(Archive(_RecordingEngine(archive.engine, log), archive.clock))
    assert log and all(sql.lstrip().upper().startswith("SELECT") for sql, _ in log), log
    return result, sum(_work_of(archive.engine, sql, params) for sql, params in log)


def records_of_rows(rows: PullPage) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cards and visits of a page read in rows, as records (what an agent makes of
    the columns): booleans from 0/1, each visit with its attachments."""
    customers = [dict(zip(PULL_CUSTOMER_ROW, r, strict=True)) for r in rows.customer_rows]
    for c in customers:
        c["locked"] = bool(c["locked"])
    visits = [dict(zip(PULL_VISIT_ROW, r, strict=True)) for r in rows.visit_rows]
    for v in visits:
        v["planned"] = bool(v["planned"])
        v["attachments"] = rows.attachments.get(v["id"], [])
    assert all(rows.attachments.values())  # only visits that name any
    return customers, visits


def assert_rows_say_the_same(page: PullPage, rows: PullPage) -> None:
    """A page in rows holds the same cards and visits as in records (order aside)."""
    assert rows.customers == [] and rows.visits == []
    customers, visits = records_of_rows(rows)
    by_id = lambda records: sorted(records, key=lambda r: r["id"])  # noqa: E731
    assert by_id(customers) == by_id(page.customers)
    assert by_id(visits) == by_id(page.visits)
    assert (rows.evicted, rows.plans, rows.last_seq, rows.more, rows.pool_rules) == (
        page.evicted, page.plans, page.last_seq, page.more, page.pool_rules)
