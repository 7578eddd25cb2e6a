"""Staff accounts, their tokens and a manager's team, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from schema.clock import ManualClock, iso
from server.archive.engine import UniqueViolation
from server.archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from server.rules import Archive, staff
from server.rules.access import StaffMember, authorize

from .kit import Stores, at, enroll_device


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
            authorize(s, who, "policy.set")
        assert err.value.code == "forbidden"
        with pytest.raises(Forbidden):
            authorize(s, StaffMember("s", "o", who.role, None), "no.such.action")
    stored = stores.rows("SELECT password_hash FROM staff WHERE name='mgr'")[0]["password_hash"]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_a_staff_token_stops_working_90_days_after_it_was_issued(
        archive: Archive, clock: ManualClock) -> None:
    archive.add_staff("erp-bot", "verifier")
    issued = clock.now()
    token = archive.create_staff_token("erp-bot", "erp")
    (row,) = archive.staff_tokens("erp-bot")
    assert row["expires_at"] == iso(issued + timedelta(days=90))
    clock.advance(timedelta(days=90) - timedelta(seconds=1))
    assert archive.staff_by_token(token) is not None
    clock.advance(timedelta(seconds=1))
    assert archive.staff_by_token(token) is None  # expired, not revoked: listed as before
    assert archive.staff_tokens("erp-bot")[0]["revoked_at"] is None
    fresh = archive.create_staff_token("erp-bot", "erp")  # the rotation: a new one works
    assert archive.staff_by_token(fresh) is not None


def test_store_listing_counts_updates_and_token_rows(archive: Archive, stores: Stores) -> None:
    with stores.write() as s:
        for sid, name, role in (("a1", "ann", "admin"), ("a2", "bob", "admin"),
                                ("v1", "vic", "verifier")):
            s.insert_staff({"id": sid, "name": name, "role": role, "rep_id": None,
                            "password_hash": "$argon2id$x" if sid == "a1" else None,
                            "created_at": at()})
        s.insert_staff_token("1" * 64, "a1", "erp", at())
        s.insert_staff_token("2" * 64, "a1", "erp", at())
        s.insert_staff_token("3" * 64, "a1", "bi", at())
        assert s.add_failed_login("v1") == 1 and s.add_failed_login("v1") == 2
        s.update_staff({"id": "a2", "disabled_at": at()})
    with stores.read() as s:
        listed = s.staff_list()
        assert [r["name"] for r in listed] == ["ann", "bob", "vic"]
        assert [r["name"] for r in s.staff_list(limit=1)] == ["ann"]
        ann, bob, vic = listed
        assert "password_hash" not in ann and ann["has_password"] == 1 and ann["tokens"] == 3
        assert bob["has_password"] == 0 and bob["disabled_at"] == at() and vic["failed_logins"] == 2
        assert s.count_active_staff("admin") == 1 and s.count_active_staff("hr") == 0
        assert [t["name"] for t in s.staff_tokens_of("a1")] == ["bi", "erp", "erp"]
        assert s.staff_tokens_of("v1") == []
    with stores.write() as s:
        assert s.revoke_staff_tokens("a1", "erp", at()) == 2
        assert s.revoke_staff_tokens("a1", "erp", at()) == 0
        s.touch_staff_token("3" * 64, at(timedelta(seconds=10)), at())
        s.touch_staff_token("3" * 64, at(timedelta(seconds=30)), at(timedelta(seconds=5)))
    with stores.read() as s:
        assert s.staff_token("1" * 64) is None  # revoked
        row = s.staff_token("3" * 64)
        # The second touch came within the period after the first: not written.
        assert row is not None and row["last_used_at"] == at(timedelta(seconds=10))
        assert s.staff_list()[0]["tokens"] == 1
        assert {t["name"]: t["revoked_at"] for t in s.staff_tokens_of("a1")} == {
            "bi": None, "erp": at()}
    with stores.write() as s:
        assert s.revoke_staff_tokens("a1", None, at()) == 1
    with stores.read() as s:
        assert s.staff_list()[0]["tokens"] == 0


def _login_error(archive: Archive, name: str, password: str) -> ArchiveError:
    with pytest.raises(ArchiveError) as err:
        archive.verify_password(name, password)
    return err.value


def test_login_lockout_and_reset(archive: Archive, stores: Stores, clock: ManualClock) -> None:
    archive.add_staff("ann", "admin", password="correct horse battery")
    archive.add_staff("tok", "verifier")  # a token-only account: no password at all
    who = archive.verify_password("ann", "correct horse battery")
    assert who.name == "ann" and who.role == "admin"
    # One answer for an unknown name, a password-less account and a wrong password.
    unknown = _login_error(archive, "nobody", "correct horse battery")
    for err in (unknown, _login_error(archive, "tok", "whatever it is"),
                _login_error(archive, "ann", "wrong password")):
        assert (type(err), err.code, err.message) == (
            Forbidden, "bad_credentials", unknown.message)
    # A success resets the count: four more failures do not lock...
    archive.verify_password("ann", "correct horse battery")
    for _ in range(staff.MAX_FAILED_LOGINS - 1):
        assert _login_error(archive, "ann", "wrong password").code == "bad_credentials"
    # ...the fifth in a row does, and says until when.
    err = _login_error(archive, "ann", "wrong password")
    until = iso(clock.now() + staff.LOCKOUT)
    assert err.code == "locked" and until in err.message
    clock.advance(staff.LOCKOUT - timedelta(seconds=1))
    err = _login_error(archive, "ann", "correct horse battery")  # even the right one
    assert err.code == "locked" and until in err.message
    locks = [e for e in archive.audit_entries() if e["action"] == "staff.locked"]
    assert len(locks) == 1 and locks[0]["details"]["until"] == until
    clock.advance(timedelta(seconds=1))
    assert archive.verify_password("ann", "correct horse battery").name == "ann"
    assert stores.rows("SELECT failed_logins, locked_until FROM staff WHERE name='ann'") == [
        {"failed_logins": 0, "locked_until": None}]
    # A password reset by an admin ends a lockout at once.
    for _ in range(staff.MAX_FAILED_LOGINS):
        _login_error(archive, "ann", "wrong password")
    assert archive.list_staff()[0]["locked_until"] is not None
    archive.set_password("ann", "a brand new passphrase")
    assert archive.list_staff()[0]["locked_until"] is None
    assert _login_error(archive, "ann", "correct horse battery").code == "bad_credentials"
    assert archive.verify_password("ann", "a brand new passphrase").name == "ann"
    with pytest.raises(ArchiveError) as weak:
        archive.set_password("ann", "short")
    assert weak.value.code == "weak_password"


def test_login_rehashes_old_parameters_and_refuses_disabled(archive: Archive,
                                                            stores: Stores) -> None:
    archive.add_staff("ann", "admin", password="correct horse battery")
    archive.add_staff("vic", "verifier", password="verifier passphrase")
    old = PasswordHasher(time_cost=1, memory_cost=8192).hash("verifier passphrase")
    stores.raw("UPDATE staff SET password_hash=? WHERE name='vic'", (old,))
    archive.verify_password("vic", "verifier passphrase")
    new = stores.rows("SELECT password_hash FROM staff WHERE name='vic'")[0]["password_hash"]
    assert new != old and not PasswordHasher().check_needs_rehash(new)
    archive.verify_password("vic", "verifier passphrase")
    archive.disable_staff("vic")
    assert _login_error(archive, "vic", "verifier passphrase").code == "user_disabled"
    assert _login_error(archive, "vic", "a wrong one").code == "bad_credentials"


def test_disable_list_tokens_and_who_may(archive: Archive, stores: Stores,
                                         clock: ManualClock) -> None:
    archive.add_rep("Boss", None, "senior")
    archive.add_staff("root", "admin", password="correct horse battery")
    archive.add_staff("mgr", "manager", "Boss")
    archive.add_staff("vic", "verifier")
    erp = archive.create_staff_token("vic", "erp", by="root")
    bi = archive.create_staff_token("vic", "bi")
    archive.create_staff_token("vic", "bi")
    root = archive.create_staff_token("root")
    listed = {r["name"]: r for r in archive.list_staff(by="root")}
    assert listed["vic"]["tokens"] == 3 and listed["root"]["tokens"] == 1
    assert listed["mgr"]["role"] == "manager" and listed["mgr"]["rep_id"] is not None
    assert not any("password_hash" in r for r in listed.values())
    assert listed["root"]["has_password"] and not listed["vic"]["has_password"]
    # Only an admin manages accounts; the operator (by=None) always may.
    for call in (lambda: archive.list_staff(by="mgr"), lambda: archive.disable_staff("vic", "vic"),
                 lambda: archive.create_staff_token("vic", "x", by="mgr"),
                 lambda: archive.add_staff("new", "hr", by="vic"),
                 lambda: archive.set_password("root", "correct horse battery", by="mgr"),
                 lambda: archive.revoke_staff_token("vic", "erp", by="vic"),
                 lambda: archive.staff_tokens("vic", by="vic")):
        with pytest.raises(Forbidden) as err:
            call()
        assert err.value.code == "forbidden"
    with pytest.raises(ArchiveError) as bad:
        archive.create_staff_token("vic", "  ")
    assert bad.value.code == "invalid_token_name"
    # last_used_at: written on first use, then at most once per period.
    assert archive.staff_by_token(erp) is not None
    first = clock.now()
    clock.advance(staff.TOKEN_TOUCH_EVERY / 2)
    archive.staff_by_token(erp)
    used = {t["name"]: t["last_used_at"] for t in archive.staff_tokens("vic", by="root")
            if t["name"] == "erp"}
    assert used == {"erp": iso(first)}
    clock.advance(staff.TOKEN_TOUCH_EVERY)
    archive.staff_by_token(erp)
    assert [t["last_used_at"] for t in archive.staff_tokens("vic") if t["name"] == "erp"] == [
        iso(clock.now())]
    # Revoking a name revokes every token of that name, and only those.
    assert archive.revoke_staff_token("vic", "bi", by="root") == 2
    assert archive.staff_by_token(bi) is None and archive.staff_by_token(erp) is not None
    with pytest.raises(NotFound) as gone:
        archive.revoke_staff_token("vic", "bi")
    assert gone.value.code == "unknown_token"
    # Disabling: its tokens stop working, it is audited, it cannot act any more.
    assert archive.disable_staff("vic", by="root")["disabled_at"] == iso(clock.now())
    assert archive.staff_by_token(erp) is None
    assert archive.disable_staff("vic")["disabled_at"] is not None  # idempotent
    assert [e["actor"] for e in archive.audit_entries() if e["action"] == "staff.disable"] == [
        "staff:root"]
    assert all(t["revoked_at"] for t in archive.staff_tokens("vic"))
    with pytest.raises(Forbidden) as off:
        archive.create_staff_token("vic")
    assert off.value.code == "user_disabled"
    # The last active admin stays; with a second one, either may go.
    with pytest.raises(Conflict) as last:
        archive.disable_staff("root", by="root")
    assert last.value.code == "last_admin" and "user add --role admin" in last.value.message
    archive.add_staff("second", "admin", by="root")
    archive.disable_staff("root", by="root")
    assert archive.staff_by_token(root) is None
    with pytest.raises(Conflict):
        archive.disable_staff("second")
    with pytest.raises(NotFound):
        archive.disable_staff("nobody")
    assert [e["action"] for e in archive.audit_entries()
            if e["action"].startswith("staff.")].count("staff.token") == 4


def test_whoami_and_a_reps_devices_within_the_team(archive: Archive, stores: Stores) -> None:
    archive.add_rep("Boss", None, "senior")
    mine = archive.add_rep("Mine", "Boss", "mid")["id"]
    theirs = archive.add_rep("Theirs", None, "mid")["id"]
    enroll_device(archive, mine)
    archive.add_staff("mgr", "manager", "Boss")
    archive.add_staff("hr1", "hr")
    archive.add_staff("vic", "verifier")
    mgr = archive.staff_member("mgr")
    me = archive.whoami(mgr)
    assert me["name"] == "mgr" and "self.read" in me["actions"] and "staff.manage" not in me["actions"]
    assert [d["rep_id"] for d in archive.rep_devices("Mine", "mgr")] == [mine]
    assert archive.rep_devices(theirs, "hr1") == []
    with pytest.raises(Forbidden) as err:
        archive.rep_devices("Theirs", "mgr")
    assert err.value.code == "outside_team"
    with pytest.raises(Forbidden) as err:
        archive.rep_devices("Mine", "vic")
    assert err.value.code == "forbidden"


def test_an_unknown_name_costs_the_same_argon2_work(archive: Archive,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    archive.add_staff("ann", "admin", password="correct horse battery")
    checked: list[str] = []
    real = staff.check_password

    def spy(digest: str, password: str) -> bool:
        checked.append(digest)
        return real(digest, password)

    monkeypatch.setattr(staff, "check_password", spy)
    _login_error(archive, "ann", "wrong password")
    _login_error(archive, "nobody", "wrong password")
    # One argon2 verification each, with the same parameters ($argon2id$v=19$m=..,t=..,p=..$).
    assert len(checked) == 2
    assert checked[0].split("$")[1:4] == checked[1].split("$")[1:4]
