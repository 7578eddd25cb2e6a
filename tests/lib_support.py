"""Library shortcuts for set-up and inspection around real processes.

CLI runs cost about half a second each, so tests use these for bulk data and
for reading state, and keep the CLIs for the behaviour under test. The archive
is read through a read-only sqlite3 connection, the device through the agent's
own `Store` (the only thing that can read the encrypted vault).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import sync as sync_mod
from agent.enroll import enroll
from agent.home import AgentConfig
from agent.store import Store
from schema.enums import VisitPurpose
from schema.models import CustomerCreate, VisitCreate
from server.archive.sqlite import ARCHIVE_FILE
from server.rules import Archive, open_archive


def archive(data: Path) -> Archive:
    return open_archive(data)


def add_customers(data: Path, owner: str | None, names: list[str]) -> list[dict[str, Any]]:
    arch = archive(data)
    return [arch.add_customer(CustomerCreate(name=name), owner) for name in names]


def lib_enroll(data: Path, home: Path, url: str, rep_id: str) -> AgentConfig:
    code, _ = archive(data).create_enroll_code(rep_id, timedelta(hours=1))
    config = enroll(home, url, code)
    Store.open(home, config.rep_id).close()
    return config


@contextmanager
def open_store(home: Path) -> Iterator[Store]:
    config = AgentConfig.load(home)
    assert config is not None, f"{home} is not enrolled"
    store = Store.open(home, config.rep_id)
    try:
        yield store
    finally:
        store.close()


def lib_sync(home: Path) -> sync_mod.SyncReport:
    """One in-process sync, exactly what `fieldvault sync` does minus the process."""
    config = AgentConfig.load(home)
    assert config is not None
    with open_store(home) as store:
        transport = sync_mod.open_transport(home, config)
        try:
            return sync_mod.sync(store, transport)
        finally:
            transport.close()


def log_visits(home: Path, customer_ids: list[str], count: int, prefix: str,
               start: int = 0) -> list[dict[str, Any]]:
    """Log `count` visits quickly through the library; summaries are unique per index."""
    rows = []
    with open_store(home) as store:
        for i in range(start, start + count):
            rows.append(store.log_visit(VisitCreate(
                customer_id=customer_ids[i % len(customer_ids)], purpose=VisitPurpose.service,
                summary=f"{prefix} visit #{i}", outcome=f"outcome {i}",
                started_at=datetime.now(UTC),
            )))
    return rows


def device_rows(home: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(customers by id, visits by id) as the agent's vault holds them."""
    with open_store(home) as store:
        customers = {r["id"]: r for r in store.db.query("SELECT * FROM customers")}
        visits = {r["id"]: r for r in store.db.query("SELECT * FROM visits")}
    return customers, visits


def outbox_counts(home: Path) -> dict[str, int]:
    with open_store(home) as store:
        return store.outbox_counts()


def archive_query(data: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows from the server archive through a read-only connection."""
    uri = f"file:{data / ARCHIVE_FILE}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, params)]


def archive_count(data: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    row = archive_query(data, sql, params)[0]
    return int(next(iter(row.values())))


def check_in(home: Path) -> None:
    """One lease check-in of an enrolled agent home, as `fieldvault sync` starts with."""
    config = AgentConfig.load(home)
    assert config is not None
    transport = sync_mod.open_transport(home, config)
    try:
        sync_mod.check_in(home, config, transport)
    finally:
        transport.close()
