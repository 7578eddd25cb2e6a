"""A laptop with a long backlog gets its work stored by the archive first and the
verdicts after (issue 10, server/rules/received.py): a real `serve` process on each
backend (PostgreSQL with its worker processes), the real agent CLI, SIGKILL of the
server between the answer and the apply."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.sync import DEFER_FROM
from schema.models import CustomerCreate

from .harness import (
    EMPTY_OUTBOX,
    Backend,
    ServerProcess,
    add_rep,
    agent_cli,
    archive,
    lib_enroll,
    log_visits,
    open_store,
    outbox_counts,
)

BACKLOG = DEFER_FROM + 150  # two batches and a bit: deferred, and more than one stored


def laptop(backend: Backend, server: ServerProcess, home: Path, name: str
           ) -> tuple[str, list[str], list[dict[str, Any]]]:
    """An enrolled laptop of a new rep with BACKLOG visits logged offline."""
    rep = add_rep(backend.data, name)
    cards = [archive(backend.data).add_customer(CustomerCreate(name=f"{name} 客户 {i}"), rep)["id"]
             for i in range(3)]
    lib_enroll(backend.data, home, server.url, rep)
    agent_cli(home, "sync")  # the cards come down
    return rep, cards, log_visits(home, cards, BACKLOG, name, fsync=False)


def stored_ops(backend: Backend) -> int:
    return int(archive(backend.data).received_backlog()["ops"])


def wait_applied(backend: Backend, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while stored_ops(backend):
        assert time.monotonic() < deadline, "the stored batches were not applied"
        time.sleep(0.2)


def archive_visits(backend: Backend, rep: str) -> dict[str, dict[str, Any]]:
    return {v["id"]: v for v in archive(backend.data).list_visits(rep=rep, limit=10**6)}


def test_a_long_backlog_is_stored_at_once_and_its_verdicts_follow(
        backend: Backend, tmp_path: Path) -> None:
    server = backend.server(env={"FIELDVAULT_APPLY_QUIET_S": "0.2"}).start()
    try:
        home = tmp_path / "agent"
        rep, _, logged = laptop(backend, server, home, "Backlog Rep")
        first = agent_cli(home, "sync", "--json")
        # Every op was stored and answered `received`; none waits on the laptop.
        assert first["pushed"] == BACKLOG and first["results"] == {"received": BACKLOG}
        counts = outbox_counts(home)
        assert counts["pending"] == 0
        assert counts["received"] + sum(first["verdicts"].values()) == BACKLOG
        assert first["awaiting_verdict"] == counts["received"]

        wait_applied(backend)
        kept = archive_visits(backend, rep)
        assert set(kept) == {v["id"] for v in logged}
        assert all(v["rev"] == 1 and v["status"] == "submitted" for v in kept.values())

        second = agent_cli(home, "sync", "--json")
        assert second["pushed"] == 0 and second["awaiting_verdict"] == 0
        assert sum(first["verdicts"].values()) + second["verdicts"]["accepted"] == BACKLOG
        assert outbox_counts(home) == EMPTY_OUTBOX
        # The laptop holds each visit as the archive does (its verdict carried it).
        with open_store(home) as store:
            mine = {r["id"]: r for r in store.db.query("SELECT id, rev, status, updated_at FROM visits")}
        for vid, row in kept.items():
            assert (mine[vid]["rev"], mine[vid]["status"], mine[vid]["updated_at"]) == (
                row["rev"], row["status"], row["updated_at"])
        # Nothing new: a third sync moves nothing.
        third = agent_cli(home, "sync", "--json")
        assert third["pushed"] == 0 and third["verdicts"] == {}
    finally:
        server.stop()


def stored_not_applied(backend: Backend, home: Path, name: str
                       ) -> tuple[ServerProcess, str, list[dict[str, Any]]]:
    """A server whose applier waits for arrivals to pause far longer than a test runs,
    and a laptop whose whole backlog it has stored (answered), none of it applied."""
    slow = {"FIELDVAULT_APPLY_QUIET_S": "600", "FIELDVAULT_APPLY_MAX_WAIT_S": "600"}
    server = backend.server(env=slow).start()
    try:
        rep, _, logged = laptop(backend, server, home, name)
        first = agent_cli(home, "sync", "--json")
        assert first["results"] == {"received": BACKLOG} and first["verdicts"] == {}
    except BaseException:
        server.stop()
        raise
    return server, rep, logged


def device_of(home: Path) -> str:
    from agent.home import AgentConfig

    return AgentConfig.load(home).device_id


def test_a_server_killed_before_it_applied_what_it_stored_applies_it_after_restart(
        backend: Backend, tmp_path: Path) -> None:
    home = tmp_path / "agent"
    server, rep, logged = stored_not_applied(backend, home, "Killed Rep")
    try:
        server.kill()  # SIGKILL, every process of it
        assert stored_ops(backend) == BACKLOG
        assert archive_visits(backend, rep) == {}

        server.env = {}  # the default pacing
        server.start()
        wait_applied(backend)
        kept = archive_visits(backend, rep)
        assert set(kept) == {v["id"] for v in logged} and len(kept) == BACKLOG
        second = agent_cli(home, "sync", "--json")
        assert second["verdicts"] == {"accepted": BACKLOG} and second["pushed"] == 0
        assert outbox_counts(home)["received"] == 0
        # Exactly once: each op applied once, whatever was stored and replayed.
        assert len(archive(backend.data).applied_ops(device_of(home))) == BACKLOG
    finally:
        server.stop()


def test_ops_the_archive_lost_after_storing_them_are_sent_again(
        backend: Backend, tmp_path: Path) -> None:
    home = tmp_path / "agent"
    server, rep, logged = stored_not_applied(backend, home, "Lost Rep")
    try:
        server.stop()
        # The stored batches are gone (an archive put back from a copy that lacks them).
        with archive(backend.data)._write() as s:
            for row in s.received_of(device_of(home)):
                s.delete_received(row["id"])
        server.env = {}
        server.start()
        lost = agent_cli(home, "sync", "--json")
        assert lost["verdicts"] == {} and lost["pushed"] == 0
        assert outbox_counts(home)["pending"] == BACKLOG  # to be sent again
        again = agent_cli(home, "sync", "--json")
        assert again["pushed"] == BACKLOG and again["results"] == {"received": BACKLOG}
        wait_applied(backend)
        assert set(archive_visits(backend, rep)) == {v["id"] for v in logged}
        assert agent_cli(home, "sync", "--json")["verdicts"] == {"accepted": BACKLOG}
        assert outbox_counts(home) == EMPTY_OUTBOX
    finally:
        server.stop()
