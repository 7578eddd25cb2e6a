"""The HR inbox: departure files dropped by the HR system into a watched folder.

A real `fieldvault-server serve --hr-inbox DIR` picks the files up; unit tests
of `hr_inbox.process_file` cover each kind of file against an archive directly.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schema.clock import ManualClock, iso
from schema.models import CustomerCreate
from server import hr_inbox
from server.archive import SQLiteArchive

from .inproc import snapshot
from .support import ServerProcess


def drop(inbox: Path, name: str, content: str | bytes) -> None:
    """Write the file under a hidden name, then rename it in, as an HR export would."""
    raw = content.encode() if isinstance(content, str) else content
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(raw)
    os.replace(tmp, inbox / name)


def wait_filed(inbox: Path, name: str, timeout: float = 20) -> tuple[str, Path]:
    """Where the file went ('processed' or 'rejected'), waiting for the watcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for outcome in ("processed", "rejected"):
            if (inbox / outcome / name).exists():
                return outcome, inbox / outcome / name
        time.sleep(0.05)
    raise AssertionError(f"{name} was not picked up from {inbox}: {sorted(os.listdir(inbox))}")


def result_of(filed: Path) -> dict[str, Any]:
    return json.loads(filed.with_name(filed.name + ".result.json").read_text())  # type: ignore[no-any-return]


def reason_of(filed: Path) -> str:
    return filed.with_name(filed.name + ".reason.txt").read_text()


def setup_reps(arch: SQLiteArchive) -> dict[str, str]:
    ids = {"manager": arch.add_rep("Manager Ma", tier="senior")["id"]}
    ids["a"] = arch.add_rep("Rep A", manager="Manager Ma")["id"]
    ids["b"] = arch.add_rep("Rep B")["id"]
    ids["c"] = arch.add_rep("Rep C", manager="Manager Ma")["id"]
    ids["d"] = arch.add_rep("Rep D", manager="Manager Ma")["id"]
    for key in ("a", "b", "c", "d"):
        for i in range(2):
            arch.add_customer(CustomerCreate(name=f"Customer {key}{i}"), ids[key])
    return ids


def owners_of(arch: SQLiteArchive, rep_id: str) -> list[str]:
    return sorted(c["id"] for c in arch.list_customers(rep_id))


def revocations(arch: SQLiteArchive) -> int:
    return int(arch.conn.execute("SELECT count(*) FROM revocations").fetchone()[0])


# --- with a real server ------------------------------------------------------------


@pytest.mark.slow
def test_inbox_watched_by_a_real_server(tmp_path: Path) -> None:
    data, inbox = tmp_path / "server", tmp_path / "inbox"
    arch = SQLiteArchive.init(data)
    ids = setup_reps(arch)
    a_customers, c_customers = owners_of(arch, ids["a"]), owners_of(arch, ids["c"])
    inbox.mkdir()
    export = f"employee_id,effective_date,reason\n{ids['a']},2026-03-01,resigned\n"
    # Already waiting when the server starts: picked up at start.
    drop(inbox, "leavers-0301.csv", export)
    server = ServerProcess(data, replica="none", args=("--hr-inbox", str(inbox))).start()
    try:
        outcome, filed = wait_filed(inbox, "leavers-0301.csv")
        assert outcome == "processed"
        result = result_of(filed)
        assert result["status"] == "processed"
        [dep] = result["departures"]
        assert (dep["rep_id"], dep["status"], dep["already"]) == (ids["a"], "applied", False)
        assert dep["source"] == "hr-inbox" and dep["requested_by"] == "hr-inbox:leavers-0301.csv"
        # No successor named: the manager takes over.
        assert set(a_customers) <= set(owners_of(arch, ids["manager"]))

        drop(inbox, "leavers.json", json.dumps(
            {"departures": [{"rep_id": "Rep B", "successor": "Rep D", "reason": "contract ended"}]}))
        outcome, filed = wait_filed(inbox, "leavers.json")
        assert outcome == "processed" and result_of(filed)["departures"][0]["status"] == "applied"
        assert not arch.resolve_rep(ids["b"])["active"]
        assert len(owners_of(arch, ids["d"])) == 4

        # The same export again: filed beside the first, nothing reapplied.
        before = snapshot(data)
        drop(inbox, "leavers-0301.csv", export)
        deadline = time.monotonic() + 20
        again = inbox / "processed" / "leavers-0301.1.csv"
        while not again.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert again.exists() and (inbox / "processed" / "leavers-0301.csv").exists()
        assert result_of(again)["departures"][0]["already"] is True
        assert result_of(inbox / "processed" / "leavers-0301.csv")["departures"][0]["already"] is False
        assert snapshot(data) == before

        bad = {
            "broken.json": ('{"departures": [', "invalid JSON"),
            "no-rep-column.csv": ("name,reason\nRep C,left\n", "no rep/employee_id"),
            "unknown.csv": ("rep\nGhost Rep\n", "Ghost Rep"),
            # One good entry and one bad: the good one must not be applied either.
            "half-good.json": (json.dumps([{"rep": "Rep C"}, {"rep": "Ghost Rep"}]), "Ghost Rep"),
        }
        for name, (content, why) in bad.items():
            drop(inbox, name, content)
            outcome, filed = wait_filed(inbox, name)
            assert outcome == "rejected", name
            assert why in reason_of(filed), (name, reason_of(filed))
        assert snapshot(data) == before
        assert arch.resolve_rep(ids["c"])["active"]
        assert owners_of(arch, ids["c"]) == c_customers
        assert [p.name for p in inbox.iterdir() if p.is_file()] == []
    finally:
        server.stop()


# --- process_file against an archive ------------------------------------------------


@pytest.fixture
def arch(tmp_path: Path) -> SQLiteArchive:
    return SQLiteArchive.init(tmp_path / "server", ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def process(arch: SQLiteArchive, inbox: Path, name: str, content: str | bytes) -> dict[str, Any]:
    drop(inbox, name, content)
    return hr_inbox.process_file(arch, inbox / name)


VALID = {
    "csv": ("departures.csv", "rep,reason,successor\nRep A,resigned,Rep D\nRep B,dismissed,\n"),
    "json-list": ("departures.json", json.dumps([{"employee_id": "Rep A", "reassign_to": "Rep D"},
                                                  {"employee": "Rep B"}])),
    "json-object": ("departures.json", json.dumps({"departures": [
        {"rep": "Rep A", "successor": "Rep D"}, {"rep_id": "Rep B", "reason": "dismissed"}]})),
    "csv-bom-crlf": ("departures.csv", "\ufeffemployee_id,successor\r\nRep A,Rep D\r\nRep B,\r\n"),
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_file_is_applied_and_filed(arch: SQLiteArchive, inbox: Path, kind: str) -> None:
    ids = setup_reps(arch)
    a_customers, b_customers = owners_of(arch, ids["a"]), owners_of(arch, ids["b"])
    name, content = VALID[kind]
    result = process(arch, inbox, name, content)
    assert result["status"] == "processed"
    assert [(d["rep_id"], d["status"], d["already"]) for d in result["departures"]] == [
        (ids["a"], "applied", False), (ids["b"], "applied", False)]
    assert not (inbox / name).exists() and (inbox / "processed" / name).exists()
    assert result_of(inbox / "processed" / name) == json.loads(json.dumps(result))
    assert set(a_customers) <= set(owners_of(arch, ids["d"]))
    assert {arch.get_customer(c)["owner_rep_id"] for c in b_customers} == {None}  # no manager: pool
    assert not arch.resolve_rep(ids["a"])["active"] and not arch.resolve_rep(ids["b"])["active"]


def test_future_effective_date_is_scheduled(arch: SQLiteArchive, inbox: Path) -> None:
    ids = setup_reps(arch)
    when = iso(arch.clock.now() + timedelta(days=7))
    result = process(arch, inbox, "later.csv", f"rep,effective_at\nRep A,{when}\n")
    assert result["departures"][0]["status"] == "scheduled"
    assert arch.resolve_rep(ids["a"])["active"]
    assert isinstance(arch.clock, ManualClock)
    arch.clock.advance(timedelta(days=7))
    assert arch.process_due_revocations() == [ids["a"]]


def test_duplicate_file_is_idempotent(arch: SQLiteArchive, inbox: Path) -> None:
    ids = setup_reps(arch)
    name, content = VALID["csv"]
    first = process(arch, inbox, name, content)
    before = snapshot(arch.data_dir)
    second = process(arch, inbox, name, content)
    assert second["status"] == "processed"
    assert [d["already"] for d in second["departures"]] == [True, True]
    assert [d["id"] for d in second["departures"]] == [d["id"] for d in first["departures"]]
    assert snapshot(arch.data_dir) == before
    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    assert processed == ["departures.1.csv", "departures.1.csv.result.json", "departures.csv",
                         "departures.csv.result.json"]
    assert not arch.resolve_rep(ids["a"])["active"]


BAD = {
    "bad-json": ("x.json", '{"departures": [{"rep": "Rep A"}', "invalid JSON"),
    "json-not-a-list": ("x.json", '{"rep": "Rep A"}', "list of departures"),
    "json-scalars": ("x.json", '["Rep A"]', "list of departures"),
    "empty": ("x.csv", "rep,reason\n", "no departures"),
    "missing-rep-column": ("x.csv", "name,reason\nRep A,left\n", "no rep/employee_id"),
    "blank-rep": ("x.csv", "rep,reason\nRep A,left\n,left\n", "entry 2: no rep"),
    "unknown-rep": ("x.csv", "rep\nGhost Rep\n", "no rep 'Ghost Rep'"),
    "unknown-successor": ("x.csv", "rep,successor\nRep A,Ghost Rep\n", "Ghost Rep"),
    "bad-date": ("x.csv", "rep,effective_date\nRep A,next tuesday\n", "not an ISO time"),
    "not-utf8": ("x.csv", b"rep\n\xff\xfeRep A\n", "not UTF-8"),
    "huge-field": ("x.csv", "rep\n" + "x" * 200_000 + "\n", "invalid CSV"),
    "half-good": ("x.json", json.dumps([{"rep": "Rep A", "successor": "Rep D"}, {"rep": "Ghost Rep"}]),
                  "Ghost Rep"),
    "half-good-csv": ("x.csv", "rep,successor\nRep A,Rep D\nRep B,Rep A\n", "Rep A"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_is_rejected_and_changes_nothing(arch: SQLiteArchive, inbox: Path, kind: str) -> None:
    ids = setup_reps(arch)
    name, content, why = BAD[kind]
    before = snapshot(arch.data_dir)
    owned = {k: owners_of(arch, ids[k]) for k in ("a", "b", "d")}
    result = process(arch, inbox, name, content)
    assert result["status"] == "rejected"
    assert why in result["reason"], result["reason"]
    assert not (inbox / name).exists() and (inbox / "rejected" / name).exists()
    assert why in reason_of(inbox / "rejected" / name)
    assert snapshot(arch.data_dir) == before
    assert revocations(arch) == 0
    assert {k: owners_of(arch, ids[k]) for k in owned} == owned
    assert all(arch.resolve_rep(ids[k])["active"] for k in ("a", "b", "c", "d"))


def test_watcher_skips_hidden_and_other_files(inbox: Path) -> None:
    for name in (".partial.csv", "notes.txt", "a.CSV", "b.json"):
        (inbox / name).write_text("rep\n")
    (inbox / "processed").mkdir()
    assert [p.name for p in hr_inbox.pending_files(inbox)] == ["a.CSV", "b.json"]
