"""Staff accounts, their tokens and a manager's team, on every backend."""

from __future__ import annotations

import pytest

from server.archive.engine import UniqueViolation
from server.archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from server.rules import Archive
from server.rules.access import StaffMember, authorize

from .kit import Stores, at


def test_staff_rows_tokens_and_the_tree_below_a_rep(archive: Archive, stores: Stores) -> None:
    boss = archive.add_rep("Boss", None, "senior")["id"]
    lead = archive.add_rep("Lead", "Boss", "mid")["id"]
    rep = archive.add_rep("Rep", "Lead", "junior")["id"]
    other = archive.add_rep("Other", None, "mid")["id"]
    with stores.write() as s:
        s.insert_staff({"id": "st1", "name": "mgr", "role": "manager", "rep_id": boss,
                        "password_hash": None, "created_at": at()})
        s.insert_staff_token("h" * 64, "st1", "erp", at())
    with stores.read() as s:
        assert s.staff("mgr") == s.staff("st1")
        row = s.staff("st1")
        assert row is not None and row["role"] == "manager" and row["failed_logins"] == 0
        assert s.staff("nobody") is None
        token = s.staff_token("h" * 64)
        assert token is not None and token["token_name"] == "erp" and token["rep_id"] == boss
        assert s.staff_token("x" * 64) is None
        assert sorted(s.reps_under(boss)) == sorted([lead, rep])
        assert s.reps_under(rep) == [] and other not in s.reps_under(boss)
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_staff({"id": "st2", "name": "mgr", "role": "admin", "rep_id": None,
                        "password_hash": None, "created_at": at()})


def test_a_cycle_in_the_manager_tree_ends(archive: Archive, stores: Stores) -> None:
    a = archive.add_rep("A", None, "mid")["id"]
    b = archive.add_rep("B", "A", "mid")["id"]
    stores.raw("UPDATE reps SET manager_id=? WHERE id=?", (b, a))
    with stores.read() as s:
        assert s.reps_under(a) == [b]


def test_accounts_tokens_and_authorization(archive: Archive, stores: Stores) -> None:
    archive.add_rep("Boss", None, "senior")
    mine = archive.add_rep("Mine", "Boss", "mid")["id"]
    theirs = archive.add_rep("Theirs", None, "mid")["id"]
    archive.add_staff("mgr", "manager", "Boss", "correct horse battery")
    archive.add_staff("office", "verifier")
    for args, code in ((("mgr", "manager", "Boss"), "duplicate_user"),
                       (("x", "boss"), "invalid_role"), (("y", "manager"), "rep_required"),
                       (("", "hr"), "invalid_name"), (("z", "hr", None, "short"), "weak_password")):
        with pytest.raises(ArchiveError) as err:
            archive.add_staff(*args)  # type: ignore[arg-type]
        assert err.value.code == code
    with pytest.raises(NotFound):
        archive.add_staff("w", "manager", "No Such Rep")
    token = archive.create_staff_token("mgr", "erp")
    who = archive.staff_by_token(token)
    assert who is not None and who.name == "mgr" and who.actor == "staff:mgr"
    assert archive.staff_by_token(token + "x") is None
    with pytest.raises(Conflict):
        archive.add_staff("mgr", "admin")
    with stores.read() as s:
        authorize(s, who, "visit.review", mine)
        with pytest.raises(Forbidden) as err:
            authorize(s, who, "visit.review", theirs)
        assert err.value.code == "outside_team"
        with pytest.raises(Forbidden) as err:
            authorize(s, who, "report.export")
        assert err.value.code == "forbidden"
        with pytest.raises(Forbidden):
            authorize(s, StaffMember("s", "o", who.role, None), "no.such.action")
    stored = stores.rows("SELECT password_hash FROM staff WHERE name='mgr'")[0]["password_hash"]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
