"""A save whose COMMIT fails leaves no envelope behind (red-team re-check of issue 8,
finding 2). The envelope of each outbox op is appended to `outbox.sealed` before the
vault's COMMIT; if the COMMIT itself fails (a disk full at commit), the rep is told the
save failed, so its envelope must go too, or a revoked laptop's final flush would put
an op that was never saved into quarantine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from agent import envelopes
from agent.enroll import enroll
from schema.models import CustomerCreate, VisitCreate

from . import harness
from .harness import ThreadedServer


class CommitFails:
    """The vault connection, except that COMMIT fails as SQLite does on a full disk."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.strip().upper() == "COMMIT":
            raise sqlcipher3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path / "server").start()
    yield server
    server.stop()


def test_a_failed_commit_cuts_its_envelope_back(served: ThreadedServer, tmp_path: Path) -> None:
    rep = served.archive.add_rep("Cy Commit")["id"]
    customer = served.archive.add_customer(CustomerCreate(name="Teal Harbour"), rep)["id"]
    code, _ = served.archive.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "laptop"
    enroll(home, served.url, code)
    harness.lib_sync(home)
    path = home / envelopes.ENVELOPE_FILE

    def visit(summary: str) -> VisitCreate:
        return VisitCreate(customer_id=customer, purpose="service", summary=summary,
                           started_at=datetime.now(UTC))

    with harness.open_store(home) as store:
        store.log_visit(visit("saved before"))
        before = path.read_bytes()
        assert len(envelopes.read(home)) == 1
        real = store.conn
        store.conn = CommitFails(real)
        with pytest.raises(sqlcipher3.OperationalError):
            store.log_visit(visit("never saved: the commit failed"))
        store.conn = real
        assert not real.in_transaction
        assert not list(store.iter_visits(search="never saved"))
        assert path.read_bytes() == before  # no envelope of the op that was not saved
        store.log_visit(visit("saved after"))
        pending = [op["op_id"] for op in store.pending_ops(100)]
    assert [e["op_id"] for e in envelopes.read(home)] == pending and len(pending) == 2
