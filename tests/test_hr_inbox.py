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
from server.rules import Archive, init_archive

from .harness import ServerProcess, snapshot


def drop(inbox: Path, name: str, content: str | bytes) -> None:
    """Write the file under a hidden name, then rename it in, as an HR export would."""
    raw = content.encode() if isinstance(content, str) else content
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(raw)
    os.replace(tmp, inbox / name)


def wait_filed(filed: Path, name: str, timeout: float = 20) -> tuple[str, Path]:
    """Where the file went ('processed' or 'rejected' under DATA/hr-inbox), waiting for
    the watcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for outcome in ("processed", "rejected"):
            if (filed / outcome / name).exists():
                return outcome, filed / outcome / name
        time.sleep(0.05)
    raise AssertionError(f"{name} was not filed in {filed}")


def result_of(filed: Path) -> dict[str, Any]:
    return json.loads(filed.with_name(filed.name + ".result.json").read_text())  # type: ignore[no-any-return]


def reason_of(filed: Path) -> str:
    return filed.with_name(filed.name + ".reason.txt").read_text()


def setup_reps(arch: Archive) -> dict[str, str]:
    ids = {"manager": arch.add_rep("Manager Ma", tier="senior")["id"]}
    ids["a"] = arch.add_rep("Rep A", manager="Manager Ma")["id"]
    ids["b"] = arch.add_rep("Rep B")["id"]
    ids["c"] = arch.add_rep("Rep C", manager="Manager Ma")["id"]
    ids["d"] = arch.add_rep("Rep D", manager="Manager Ma")["id"]
    for key in ("a", "b", "c", "d"):
        for i in range(2):
            arch.add_customer(CustomerCreate(name=f"Customer {key}{i}"), ids[key])
    return ids


def owners_of(arch: Archive, rep_id: str) -> list[str]:
    return sorted(c["id"] for c in arch.list_customers(rep_id))


def revocations(arch: Archive) -> int:
    return len(arch.list_revocations())


# --- with a real server ------------------------------------------------------------


@pytest.mark.slow
def test_inbox_watched_by_a_real_server(tmp_path: Path) -> None:
    data, inbox = tmp_path / "server", tmp_path / "inbox"
    outbox = data / "hr-inbox"
    arch = init_archive(data)
    ids = setup_reps(arch)
    a_customers, c_customers = owners_of(arch, ids["a"]), owners_of(arch, ids["c"])
    inbox.mkdir()
    export = f"employee_id,effective_date,reason\n{ids['a']},2026-03-01,resigned\n"
    # Already waiting when the server starts: picked up at start.
    drop(inbox, "leavers-0301.csv", export)
    server = ServerProcess(data, replica="none", args=("--hr-inbox", str(inbox))).start()
    try:
        outcome, filed = wait_filed(outbox, "leavers-0301.csv")
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
        outcome, filed = wait_filed(outbox, "leavers.json")
        assert outcome == "processed" and result_of(filed)["departures"][0]["status"] == "applied"
        assert not arch.resolve_rep(ids["b"])["active"]
        assert len(owners_of(arch, ids["d"])) == 4

        # The same export again: filed beside the first, nothing reapplied.
        before = snapshot(data)
        drop(inbox, "leavers-0301.csv", export)
        deadline = time.monotonic() + 20
        again = outbox / "processed" / "leavers-0301.1.csv"
        while not again.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert again.exists() and (outbox / "processed" / "leavers-0301.csv").exists()
        assert result_of(again)["departures"][0]["already"] is True
        assert result_of(outbox / "processed" / "leavers-0301.csv")["departures"][0]["already"] is False
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
            outcome, filed = wait_filed(outbox, name)
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
def arch(tmp_path: Path) -> Archive:
    return init_archive(tmp_path / "server", ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def process(arch: Archive, inbox: Path, name: str, content: str | bytes) -> dict[str, Any]:
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
def test_valid_file_is_applied_and_filed(arch: Archive, inbox: Path, kind: str) -> None:
    ids = setup_reps(arch)
    a_customers, b_customers = owners_of(arch, ids["a"]), owners_of(arch, ids["b"])
    name, content = VALID[kind]
    result = process(arch, inbox, name, content)
    assert result["status"] == "processed"
    assert [(d["rep_id"], d["status"], d["already"]) for d in result["departures"]] == [
        (ids["a"], "applied", False), (ids["b"], "applied", False)]
    filed = arch.data_dir / "hr-inbox" / "processed" / name
    assert not (inbox / name).exists() and filed.exists()
    assert result_of(filed) == json.loads(json.dumps({k: v for k, v in result.items()
                                                      if k != "filed_as"}))
    assert result["filed_as"] == str(filed)
    assert set(a_customers) <= set(owners_of(arch, ids["d"]))
    assert {arch.get_customer(c)["owner_rep_id"] for c in b_customers} == {None}  # no manager: pool
    assert not arch.resolve_rep(ids["a"])["active"] and not arch.resolve_rep(ids["b"])["active"]


def test_future_effective_date_is_scheduled(arch: Archive, inbox: Path) -> None:
    ids = setup_reps(arch)
    when = iso(arch.clock.now() + timedelta(days=7))
    result = process(arch, inbox, "later.csv", f"rep,effective_at\nRep A,{when}\n")
    assert result["departures"][0]["status"] == "scheduled"
    assert arch.resolve_rep(ids["a"])["active"]
    assert isinstance(arch.clock, ManualClock)
    arch.clock.advance(timedelta(days=7))
    assert arch.process_due_revocations() == [ids["a"]]


def test_duplicate_file_is_idempotent(arch: Archive, inbox: Path) -> None:
    ids = setup_reps(arch)
    name, content = VALID["csv"]
    first = process(arch, inbox, name, content)
    before = snapshot(arch.data_dir)
    second = process(arch, inbox, name, content)
    assert second["status"] == "processed"
    assert [d["already"] for d in second["departures"]] == [True, True]
    assert [d["id"] for d in second["departures"]] == [d["id"] for d in first["departures"]]
    assert snapshot(arch.data_dir) == before
    processed = sorted(p.name for p in (arch.data_dir / "hr-inbox" / "processed").iterdir())
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
def test_bad_file_is_rejected_and_changes_nothing(arch: Archive, inbox: Path, kind: str) -> None:
    ids = setup_reps(arch)
    name, content, why = BAD[kind]
    before = snapshot(arch.data_dir)
    owned = {k: owners_of(arch, ids[k]) for k in ("a", "b", "d")}
    result = process(arch, inbox, name, content)
    assert result["status"] == "rejected"
    assert why in result["reason"], result["reason"]
    filed = arch.data_dir / "hr-inbox" / "rejected" / name
    assert not (inbox / name).exists() and filed.exists()
    assert why in reason_of(filed)
    assert snapshot(arch.data_dir) == before
    assert revocations(arch) == 0
    assert {k: owners_of(arch, ids[k]) for k in owned} == owned
    assert all(arch.resolve_rep(ids[k])["active"] for k in ("a", "b", "c", "d"))


def test_watcher_skips_hidden_and_other_files(inbox: Path) -> None:
    for name in (".partial.csv", "notes.txt", "a.CSV", "b.json"):
        (inbox / name).write_text("rep\n")
    (inbox / "processed").mkdir()
    assert [p.name for p in hr_inbox.pending_files(inbox)] == ["a.CSV", "b.json"]


# --- whoever writes the inbox is not trusted (issue 8, finding 1) -------------------


def victim_dir(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder of root-owned files the server must never write into."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n")
    os.chmod(victim / "passwd", 0o644)
    return victim, {p.name: p.read_bytes() for p in victim.iterdir()}


def unchanged(victim: Path, before: dict[str, bytes]) -> bool:
    return {p.name: p.read_bytes() for p in victim.iterdir()} == before


def regular_files(root: Path) -> list[Path]:
    """Every regular file under root (symlinks are not followed)."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def test_symlinked_filed_folders_in_the_inbox_are_ignored(
        arch: Archive, inbox: Path, tmp_path: Path) -> None:
    setup_reps(arch)
    victim, _ = victim_dir(tmp_path)
    (inbox / "rejected").symlink_to(victim)
    (inbox / "processed").symlink_to(victim)
    # The notes' temporary names, in the inbox and behind the symlinked folders, each a
    # link to a root-owned file: writing a note through one would overwrite that file.
    for folder in (inbox, victim):
        (folder / ".bad.csv.reason.txt.tmp").symlink_to(victim / "passwd")
        (folder / ".good.csv.result.json.tmp").symlink_to(victim / "passwd")
    before = {p.name: p.read_bytes() for p in victim.iterdir() if not p.is_symlink()}
    assert process(arch, inbox, "bad.csv", "rep\nroot::0:0:owned:/:/bin/sh\n")["status"] == "rejected"
    assert process(arch, inbox, "good.csv", "rep\nRep A\n")["status"] == "processed"
    assert {p.name: p.read_bytes() for p in victim.iterdir() if not p.is_symlink()} == before
    filed = arch.data_dir / "hr-inbox"
    assert (filed / "rejected" / "bad.csv").is_file() and (filed / "processed" / "good.csv").is_file()
    for folder in (filed, filed / "rejected", filed / "processed"):
        assert os.stat(folder).st_mode & 0o777 == 0o700
    notes = [p for p in regular_files(filed) if p.name.endswith((".reason.txt", ".result.json"))]
    assert len(notes) == 2 and all(os.stat(n).st_mode & 0o777 == 0o600 for n in notes)


def test_symlinked_data_folder_for_filed_files_is_refused(arch: Archive, inbox: Path,
                                                          tmp_path: Path) -> None:
    setup_reps(arch)
    victim, before = victim_dir(tmp_path)
    (arch.data_dir / "hr-inbox").symlink_to(victim)
    drop(inbox, "x.csv", "rep\nRep A\n")
    with pytest.raises(OSError, match="not a symlink"):
        hr_inbox.process_file(arch, inbox / "x.csv")
    assert unchanged(victim, before)
    assert (inbox / "x.csv").exists()  # kept, not lost


SECRET = "TOPSECRET-7f3a9c-root-only"


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_linked_file_is_rejected_without_reading_its_target(
        arch: Archive, inbox: Path, tmp_path: Path, how: str,
        caplog: pytest.LogCaptureFixture) -> None:
    setup_reps(arch)
    secret = tmp_path / "shadow"
    secret.write_text(f"rep\n{SECRET}\n")
    os.chmod(secret, 0o600)
    if how == "symlink":
        (inbox / "leak.csv").symlink_to(secret)
    else:
        os.link(secret, inbox / "leak.csv")
    caplog.set_level("DEBUG", logger="fieldvault.hr_inbox")
    watcher = hr_inbox.InboxWatcher(arch, inbox)
    [result] = watcher.drain()
    assert result["status"] == "rejected"
    assert ("symbolic link" if how == "symlink" else "hard links") in result["reason"]
    assert SECRET not in json.dumps(result) and SECRET not in caplog.text
    for path in regular_files(arch.data_dir / "hr-inbox"):
        if path.stat().st_ino != secret.stat().st_ino:
            assert SECRET.encode() not in path.read_bytes(), path
    assert not (inbox / "leak.csv").exists() and secret.read_text() == f"rep\n{SECRET}\n"
    assert revocations(arch) == 0


def test_oversized_file_is_rejected_without_reading(arch: Archive, inbox: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    setup_reps(arch)
    huge = inbox / "huge.csv"
    with huge.open("wb") as fh:
        fh.truncate(1_500_000_000)  # sparse: 1.5 GB that takes no disk
    reads: list[int] = []
    real_pread = os.pread

    def spy(fd: int, n: int, offset: int) -> bytes:
        reads.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", spy)
    monkeypatch.setattr(os, "read", lambda *a: pytest.fail("read() of the inbox file"))
    result = hr_inbox.process_file(arch, huge)
    monkeypatch.undo()
    assert result["status"] == "rejected" and "over 1048576 bytes" in result["reason"]
    assert reads == []
    filed = arch.data_dir / "hr-inbox" / "rejected" / "huge.csv"
    assert filed.stat().st_size == 1_500_000_000 and not huge.exists()


def test_fifo_is_rejected_without_blocking(arch: Archive, inbox: Path) -> None:
    os.mkfifo(inbox / "pipe.csv")
    result = hr_inbox.process_file(arch, inbox / "pipe.csv")
    assert result["status"] == "rejected" and "regular file" in result["reason"]


def test_deeply_nested_json_is_rejected_once(arch: Archive, inbox: Path) -> None:
    setup_reps(arch)
    drop(inbox, "deep.json", "[" * 200_000 + "]" * 200_000)
    watcher = hr_inbox.InboxWatcher(arch, inbox)
    [result] = watcher.drain()
    assert result["status"] == "rejected" and "nested too deeply" in result["reason"]
    assert watcher.drain() == []  # filed away: not parsed again on the next event
    assert reason_of(arch.data_dir / "hr-inbox" / "rejected" / "deep.json").startswith(
        "invalid JSON")


def test_reason_note_quotes_only_a_short_sanitized_excerpt(arch: Archive,
                                                          inbox: Path) -> None:
    setup_reps(arch)
    ghost = "Ghost\x1b[2J\x07Rep " + "x" * 5000
    result = process(arch, inbox, "x.csv", f"rep\n{ghost}\n")
    note = reason_of(arch.data_dir / "hr-inbox" / "rejected" / "x.csv")
    assert result["status"] == "rejected" and "Ghost" in note
    assert len(note) <= 301 and "\x1b" not in note and "\x07" not in note


# --- half-written files (issue 8, finding 4) -----------------------------------------


def test_file_changed_while_read_is_left_for_the_next_round(arch: Archive,
                                                            inbox: Path) -> None:
    ids = setup_reps(arch)
    path = inbox / "leavers.csv"
    path.write_text("rep\nRep A\n")  # written in place, in two parts (against the protocol)

    def hr_writes_on() -> None:
        with path.open("a") as fh:
            fh.write("Rep B\n")

    result = hr_inbox.process_file(arch, path, after_read=hr_writes_on)
    assert result == {"file": "leavers.csv", "status": "changed"}
    assert path.exists() and revocations(arch) == 0
    assert arch.resolve_rep(ids["a"])["active"]
    result = hr_inbox.process_file(arch, path)  # the next round: the whole file
    assert [d["rep_id"] for d in result["departures"]] == [ids["a"], ids["b"]]


def test_same_size_rewrite_with_old_mtime_is_caught_by_the_hash(arch: Archive,
                                                                inbox: Path) -> None:
    ids = setup_reps(arch)
    path = inbox / "leavers.csv"
    path.write_text("rep\nRep A\n")
    st = path.stat()

    def rewrite_same_size() -> None:
        with path.open("r+") as fh:
            fh.write("rep\nRep B\n")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    assert hr_inbox.process_file(arch, path, after_read=rewrite_same_size)["status"] == "changed"
    assert revocations(arch) == 0
    assert [d["rep_id"] for d in hr_inbox.process_file(arch, path)["departures"]] == [ids["b"]]


def test_temporary_names_are_never_read(inbox: Path) -> None:
    for name in (".leavers.csv", "leavers.csv.part", "leavers.csv.tmp", "leavers.json.PART"):
        (inbox / name).write_text("rep\nRep A\n")
    (inbox / "dir.csv").mkdir()
    assert hr_inbox.pending_files(inbox) == []


@pytest.mark.slow
def test_real_server_ignores_a_part_file_until_it_is_renamed(tmp_path: Path) -> None:
    data, inbox = tmp_path / "server", tmp_path / "inbox"
    filed = data / "hr-inbox"
    arch = init_archive(data)
    ids = setup_reps(arch)
    inbox.mkdir()
    server = ServerProcess(data, replica="none", args=("--hr-inbox", str(inbox))).start()
    try:
        part = inbox / "leavers.csv.part"
        with part.open("w") as fh:  # the HR export, half written
            fh.write("rep\nRep A\n")
            fh.flush()
            # Another file dropped meanwhile: once it is filed, the watcher has seen the
            # inbox with the .part file in it, and must have left it alone.
            drop(inbox, "marker.csv", "rep\nRep D\n")
            assert wait_filed(filed, "marker.csv")[0] == "processed"
            assert part.exists() and arch.resolve_rep(ids["a"])["active"]
            fh.write("Rep B\n")
        assert part.exists() and arch.resolve_rep(ids["a"])["active"]  # closed: still ignored
        os.rename(part, inbox / "leavers.csv")
        outcome, where = wait_filed(filed, "leavers.csv")
        assert outcome == "processed"
        assert [d["rep_id"] for d in result_of(where)["departures"]] == [ids["a"], ids["b"]]
        assert not arch.resolve_rep(ids["b"])["active"]
    finally:
        server.stop()
