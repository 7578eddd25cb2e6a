"""The audit chain: append-only, hash-chained, verifiable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schema.clock import ManualClock
from server.archive.engine import UniqueViolation
from server.rules import Archive
from server.rules.audit import GENESIS, entry_hash

from .kit import REFUSED, Stores, assert_types, at


def test_actions_are_chained_and_verify(archive: Archive, clock: ManualClock) -> None:
    archive.add_rep("Li Na")
    clock.advance(timedelta(minutes=1))
    archive.record_export("customers", 12, {"owner": "Li Na"}, by="office")
    entries = archive.audit_entries()
    assert [e["action"] for e in entries] == ["rep.add", "export.customers"]
    assert entries[1]["details"] == {"count": 12, "owner": "Li Na"} and entries[1]["actor"] == "office"
    assert entries[0]["prev_hash"] == GENESIS and entries[1]["prev_hash"] == entries[0]["hash"]
    assert [e["seq"] for e in archive.audit_entries(limit=1)] == [2]
    assert archive.audit_count() == 2
    verdict = archive.audit_verify()
    assert (verdict.ok, verdict.entries) == (True, 2)


def test_the_log_refuses_changes_and_a_forged_entry_is_found(archive: Archive, stores: Stores) -> None:
    archive.add_rep("A")
    archive.add_rep("B")
    for sql in ("UPDATE audit_log SET actor='someone else'", "DELETE FROM audit_log"):
        with pytest.raises(REFUSED):
            stores.raw(sql)
    assert archive.audit_verify().ok
    with stores.write() as s:
        seq, head = s.audit_head()
        s.insert_audit({"seq": seq + 1, "at": at(), "actor": "mallory", "action": "rep.add",
                        "subject": "", "details": "{}", "prev_hash": head, "hash": "f" * 64})
    verdict = archive.audit_verify()
    assert (verdict.ok, verdict.first_broken, verdict.entries) == (False, 3, 3)
    assert "hash" in verdict.problem


def _entry(seq: int, prev: str, action: str = "x") -> dict[str, object]:
    details = f'{{"n":{seq}}}'
    return {"seq": seq, "at": at(), "actor": "admin", "action": action, "subject": "s",
            "details": details, "prev_hash": prev,
            "hash": entry_hash(prev, seq, at(), "admin", action, "s", details)}


def test_store_audit_log(stores: Stores) -> None:
    with stores.read() as s:
        assert s.audit_head() is None and s.count_audit() == 0 and list(s.audit_all()) == []
    first = _entry(1, GENESIS)
    second = _entry(2, str(first["hash"]))
    with stores.write() as s:
        s.insert_audit(first)
        s.insert_audit(second)
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_audit(_entry(2, GENESIS))
    with stores.read() as s:
        assert s.audit_head() == (2, second["hash"])
        seq, _ = s.audit_head()
        assert type(seq) is int
        assert s.count_audit() == 2
        assert s.audit_entries() == [first, second]
        assert s.audit_entries(limit=1) == [second]  # the newest, oldest first
        assert_types(s.audit_entries()[0], ints=("seq",), strs=("at", "details", "hash"))
        streamed = s.audit_all()
        assert iter(streamed) is streamed and list(streamed) == [first, second]
