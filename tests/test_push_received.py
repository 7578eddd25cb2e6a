"""A laptop with a long backlog gets its work stored by the archive first and the
verdicts after (issue 10, server/rules/received.py): a real `serve` process on each
backend (PostgreSQL with its worker processes), the real agent CLI, SIGKILL of the
server between the answer and the apply."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

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


def test_what_a_killed_server_stored_is_applied_after_restart_and_what_it_lost_sent_again(
        backend: Backend, tmp_path: Path) -> None:
    home = tmp_path / "agent"
    server, rep, logged = stored_not_applied(backend, home, "Killed Rep")
    try:
        server.kill()  # SIGKILL, every process of it, before any stored batch was applied
        assert stored_ops(backend) == BACKLOG
        assert archive_visits(backend, rep) == {}
        # The last stored batch is gone as well (an archive put back from a copy taken
        # before it arrived): its ops must be sent again.
        with archive(backend.data)._write() as s:
            lost = s.received_of(device_of(home))[-1]
            s.delete_received(lost["id"])
        kept_first = BACKLOG - lost["op_count"]

        server.env = {}  # the default pacing
        server.start()
        wait_applied(backend)
        assert len(archive_visits(backend, rep)) == kept_first
        after = agent_cli(home, "sync", "--json")
        assert after["verdicts"] == {"accepted": kept_first} and after["pushed"] == 0
        assert outbox_counts(home)["pending"] == lost["op_count"]  # to be sent again
        again = agent_cli(home, "sync", "--json")
        # Fewer than DEFER_FROM now: applied at once, the verdicts in the answer.
        assert again["pushed"] == lost["op_count"]
        assert again["results"] == {"accepted": lost["op_count"]}
        assert set(archive_visits(backend, rep)) == {v["id"] for v in logged}
        assert outbox_counts(home) == EMPTY_OUTBOX
        # Exactly once: each op applied once, whatever was stored, lost and sent again.
        assert len(archive(backend.data).applied_ops(device_of(home))) == BACKLOG
    finally:
        server.stop()


def test_the_largest_verdicts_request_is_taken_and_a_larger_body_refused_unread(
        tmp_path: Path) -> None:
    from schema.models import MAX_VERDICTS

    from .harness import archive_of, assert_json_error, enroll_device, make_client

    client = make_client(tmp_path / "server")
    arch = archive_of(client)
    device = enroll_device(client, arch, arch.add_rep("Verdict Rep")["id"])
    ops = [["v" * 54 + f"{i:010d}", 2**53] for i in range(MAX_VERDICTS)]  # 64-character ids
    body = orjson.dumps({"ops": ops})
    resp = device.send("POST", "/v1/push/verdicts", body)  # not gzipped: the worst case
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["results"] == [] and answer["pending"] == []
    assert answer["unknown"] == [op for op, _ in ops]
    too_many = orjson.dumps({"ops": ops + ops[:1]})
    assert_json_error(device.send("POST", "/v1/push/verdicts", too_many), 422)
    huge = orjson.dumps({"ops": ops, "pad": "x" * len(body)})
    assert_json_error(device.send("POST", "/v1/push/verdicts", huge), 413, "body_too_large")
