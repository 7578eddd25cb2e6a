"""Directory: reps, enrollment codes, devices, request nonces and HR tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schema.clock import ManualClock, iso
from server.archive.engine import UniqueViolation
from server.archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from server.rules import Archive

from ..harness import new_id
from .kit import Stores, assert_types, at, customer_row, enroll_device, rep_row

# --- the facade ---------------------------------------------------------------------------


def test_reps_are_added_listed_and_resolved(archive: Archive) -> None:
    boss = archive.add_rep("  Zhang Wei ", None, "senior")
    assert boss["name"] == "Zhang Wei" and boss["manager_id"] is None
    rep = archive.add_rep("Li Na", "Zhang Wei", "junior")
    assert rep["manager_id"] == boss["id"]
    assert archive.resolve_rep("Li Na") == archive.resolve_rep(rep["id"])
    listed = archive.list_reps()
    assert [r["name"] for r in listed] == ["Li Na", "Zhang Wei"]
    assert_types(listed[0], ints=("customers", "devices", "active"), strs=("id", "created_at"))
    assert [r["name"] for r in archive.list_reps(limit=1)] == ["Li Na"]


def test_a_bad_rep_is_refused(archive: Archive) -> None:
    for name, tier, code in (("", "mid", "invalid_name"), ("x" * 201, "mid", "invalid_name"),
                             ("Ok", "boss", "invalid_tier")):
        with pytest.raises(ArchiveError) as err:
            archive.add_rep(name, None, tier)
        assert err.value.code == code
    assert archive.list_reps() == []


def test_duplicate_or_unknown_reps_are_refused(archive: Archive) -> None:
    archive.add_rep("Li Na")
    with pytest.raises(Conflict):
        archive.add_rep("Li Na")
    with pytest.raises(NotFound):
        archive.add_rep("Wang", manager="nobody")
    with pytest.raises(NotFound):
        archive.resolve_rep("nobody")
    assert len(archive.list_reps()) == 1


def test_an_enrollment_code_works_once_and_until_it_expires(archive: Archive,
                                                            clock: ManualClock) -> None:
    rep = archive.add_rep("Li Na")["id"]
    code, expires = archive.create_enroll_code(rep, timedelta(minutes=10))
    assert expires == at(timedelta(minutes=10))
    device = archive.enroll(code.lower(), "laptop", b"s" * 32, b"b" * 32)  # typed by hand
    assert (device.rep_id, device.state, device.sign_public_key) == (rep, "active", b"s" * 32)
    assert archive.get_device(device.id) == device
    with pytest.raises(Forbidden):
        archive.enroll(code, "again", b"t" * 32, b"c" * 32)
    late, _ = archive.create_enroll_code(rep, timedelta(minutes=10))
    clock.advance(timedelta(minutes=11))
    with pytest.raises(Forbidden):
        archive.enroll(late, "late", b"u" * 32, b"d" * 32)
    with pytest.raises(Forbidden):
        archive.enroll("AAAA-BBBB-CCCC", "guess", b"v" * 32, b"e" * 32)
    with pytest.raises(ArchiveError):
        archive.create_enroll_code(rep, timedelta(days=31))
    assert [d["id"] for d in archive.list_devices()] == [device.id]


def test_enrolling_with_another_devices_keys_leaves_the_code_unused(archive: Archive) -> None:
    rep = archive.add_rep("Li Na")["id"]
    first = enroll_device(archive, rep)
    code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
    with pytest.raises(Conflict) as err:
        archive.enroll(code, "clone", first.sign_public_key, b"n" * 32)
    assert err.value.code == "key_in_use"
    assert archive.enroll(code, "fresh keys", b"n" * 32, b"m" * 32).rep_id == rep


def test_an_inactive_reps_code_enrolls_nothing(archive: Archive, stores: Stores) -> None:
    rep = archive.add_rep("Li Na")["id"]
    code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
    with stores.write() as s:
        s.set_rep_active(rep, False)
    with pytest.raises(Forbidden):
        archive.enroll(code, "laptop", b"s" * 32, b"b" * 32)
    assert archive.list_devices() == []


def test_devices_list_per_rep_and_a_silent_one_shows_blocked(archive: Archive,
                                                              clock: ManualClock) -> None:
    rep_a, rep_b = archive.add_rep("A")["id"], archive.add_rep("B")["id"]
    dev_a = enroll_device(archive, rep_a)
    clock.advance(timedelta(seconds=1))
    dev_b = enroll_device(archive, rep_b)
    assert [d["id"] for d in archive.list_devices()] == [dev_a.id, dev_b.id]
    assert [d["id"] for d in archive.list_devices("B")] == [dev_b.id]
    archive.issue_lease(dev_a.id, None)
    clock.advance(timedelta(hours=73))  # past the default 72 h block
    states = {d["id"]: d["state"] for d in archive.list_devices()}
    assert states == {dev_a.id: "blocked", dev_b.id: "active"}
    assert "lease_secret" not in archive.list_devices()[0]


def test_a_nonce_is_accepted_once(archive: Archive, clock: ManualClock) -> None:
    device = enroll_device(archive, archive.add_rep("A")["id"])
    assert archive.remember_nonce(device.id, "n1", 1000.0, 300) is True
    assert archive.remember_nonce(device.id, "n1", 1001.0, 300) is False
    assert archive.list_devices()[0]["last_seen_at"] == at()


def test_hr_tokens_check_by_hash(archive: Archive) -> None:
    token = archive.create_hr_token("workday")
    assert archive.check_hr_token(token) == "workday"
    assert archive.check_hr_token(token + "x") is None
    assert archive.audit_entries()[-1]["action"] == "hr_token.create"


def test_an_hr_token_stops_working_a_year_after_it_was_issued(
        archive: Archive, clock: ManualClock) -> None:
    archive.add_staff("root", "admin")
    issued = clock.now()
    token = archive.create_hr_token("workday")
    (row,) = archive.hr_tokens("root")
    assert row["expires_at"] == iso(issued + timedelta(days=365))
    clock.advance(timedelta(days=365) - timedelta(seconds=1))
    assert archive.check_hr_token(token) == "workday"
    clock.advance(timedelta(seconds=1))
    assert archive.check_hr_token(token) is None


# --- the store ----------------------------------------------------------------------------


def test_store_reps(stores: Stores) -> None:
    boss, mid, junior = rep_row("Boss", tier="senior"), None, None
    with stores.write() as s:
        s.insert_rep(boss)
        mid = rep_row("Mid", boss["id"], "mid", at(timedelta(seconds=1)))
        junior = rep_row("Junior", boss["id"], "junior", at(timedelta(seconds=2)))
        gone = rep_row("Gone", boss["id"])
        for r in (junior, mid, gone):
            s.insert_rep(r)
        s.set_rep_active(gone["id"], False)
        s.insert_customer(customer_row("FV000001", mid["id"]))
    with stores.read() as s:
        assert s.rep(boss["id"]) == s.rep("Boss") == boss
        assert s.rep("nobody") is None
        assert [r["name"] for r in s.reps()] == ["Boss", "Gone", "Junior", "Mid"]
        assert [r["name"] for r in s.reps(2)] == ["Boss", "Gone"]
        counts = {r["name"]: (r["customers"], r["devices"]) for r in s.reps()}
        assert counts["Mid"] == (1, 0) and counts["Boss"] == (0, 0)
        assert s.rep_names() == {r["id"]: r["name"] for r in (boss, mid, junior, gone)}
        assert s.team(boss["id"], without=junior["id"]) == [{"id": mid["id"], "tier": "mid"}]
        assert [r["id"] for r in s.team(boss["id"], without="")] == [mid["id"], junior["id"]]
        assert s.rep("Gone")["active"] == 0
        assert_types(s.rep("Mid"), ints=("active",), strs=("id", "name", "tier", "created_at"))


def test_store_duplicate_rep_raises_and_writes_nothing(stores: Stores) -> None:
    rep = rep_row("Li Na")
    with stores.write() as s:
        s.insert_rep(rep)
    for dup in ({**rep_row("Other"), "id": rep["id"]}, rep_row("Li Na")):
        with pytest.raises(UniqueViolation), stores.write() as s:
            s.insert_rep(rep_row("Written first"))
            s.insert_rep(dup)
    with stores.read() as s:
        assert list(s.rep_names().values()) == ["Li Na"]


def test_store_enroll_codes(stores: Stores) -> None:
    rep = rep_row("Li Na")
    with stores.write() as s:
        s.insert_rep(rep)
        s.insert_enroll_code("h1", rep["id"], at(), at(timedelta(hours=1)))
    # A unique key loses the transaction (PostgreSQL runs nothing more in it).
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_enroll_code("h1", rep["id"], at(), at())
    with stores.write() as s:
        assert s.enroll_code("h1")["used_at"] is None
        s.use_enroll_code("h1", "dev_1", at(timedelta(minutes=1)))
    with stores.read() as s:
        row = s.enroll_code("h1")
        assert (row["rep_id"], row["used_at"], row["device_id"]) == (
            rep["id"], at(timedelta(minutes=1)), "dev_1")
        assert row["expires_at"] == at(timedelta(hours=1))
        assert s.enroll_code("nope") is None


def _two_devices(stores: Stores) -> tuple[dict[str, str], list[str]]:
    rep = rep_row("Li Na")
    with stores.write() as s:
        s.insert_rep(rep)
        s.insert_device("dev_1", rep["id"], "one", b"\x00s1", b"\x00b1", at())
        s.insert_device("dev_2", rep["id"], "two", b"\x00s2", b"\x00b2", at(timedelta(seconds=1)))
    return rep, ["dev_1", "dev_2"]


def test_store_devices(stores: Stores) -> None:
    rep, (d1, d2) = _two_devices(stores)
    with stores.read() as s:
        dev = s.device(d1)
        assert dev is not None and (dev.rep_id, dev.name, dev.state) == (rep["id"], "one", "active")
        assert type(dev.sign_public_key) is bytes and dev.box_public_key == b"\x00b1"
        assert s.device("nope") is None and s.device_row("nope") is None
        row = s.device_row(d1)
        assert row["lease_secret"] is None and row["last_seq"] == 0
        assert_types(row, ints=("last_seq", "lease_epoch"), blobs=("sign_public_key",),
                     strs=("enrolled_at",))
        listed = s.devices()
        assert [d["id"] for d in listed] == [d1, d2] and listed[0]["rep_name"] == "Li Na"
        assert "lease_secret" not in listed[0] and listed[0]["wipe_ordered_at"] is None
        assert [d["id"] for d in s.devices(rep["id"], limit=1)] == [d1]
        assert s.devices("rep_nobody") == []


def test_store_device_keys_are_unique(stores: Stores) -> None:
    rep, _ = _two_devices(stores)
    for sign, box in ((b"\x00s1", b"fresh-b"), (b"fresh-s", b"\x00b1")):
        with pytest.raises(UniqueViolation), stores.write() as s:
            s.insert_device("dev_3", rep["id"], "three", sign, box, at())
    with stores.read() as s:
        assert s.device("dev_3") is None


def test_store_device_state_lease_and_seq(stores: Stores) -> None:
    rep, (d1, d2) = _two_devices(stores)
    with stores.write() as s:
        s.set_device_seen(d1, at(timedelta(minutes=5)))
        s.set_lease(d1, 3, b"\x01" * 32, b"\x02" * 32, at(), at(timedelta(hours=72)),
                    at(timedelta(days=30)))
        s.raise_last_seq(d1, 7)
        s.raise_last_seq(d1, 5)  # never lowers
    with stores.read() as s:
        row = s.device_row(d1)
    assert (row["last_seen_at"], row["last_seq"], row["lease_epoch"]) == (at(timedelta(minutes=5)), 7, 3)
    assert row["lease_secret"] == b"\x01" * 32 and type(row["lease_prev_secret"]) is bytes
    assert (row["lease_issued_at"], row["block_at"]) == (at(), at(timedelta(hours=72)))
    with stores.write() as s:
        s.set_device_state(d2, "revoked")
        assert s.revoke_devices(rep["id"], at(timedelta(hours=1))) == [d1]  # only active ones
        assert s.revoke_devices(rep["id"], at(timedelta(hours=2))) == []
    with stores.read() as s:
        row = s.device_row(d1)
        assert (row["state"], row["revoked_at"], row["lease_secret"], row["lease_prev_secret"]) == (
            "revoked", at(timedelta(hours=1)), None, None)
    with stores.write() as s:
        s.set_device_state(d1, "wipe_pending", only_from="active")  # not active: no change
        assert s.device(d1).state == "revoked"
        s.set_device_state(d1, "wipe_pending", only_from="revoked")
        assert s.device(d1).state == "wipe_pending"


def test_store_nonces(stores: Stores) -> None:
    _, (d1, d2) = _two_devices(stores)
    with stores.write() as s:
        assert s.remember_nonce(d1, "n", 100.0) is True
        assert s.remember_nonce(d1, "n", 200.0) is False  # idempotent: no error, no change
        assert s.remember_nonce(d2, "n", 300.0) is True
        s.prune_nonces(before=250.0)
    with stores.write() as s:
        assert s.remember_nonce(d1, "n", 400.0) is True  # forgotten
        assert s.remember_nonce(d2, "n", 400.0) is False
    rows = stores.rows("SELECT * FROM nonces ORDER BY device_id")
    assert_types(rows[0], floats=("seen_at",), strs=("nonce",))
    # With last_seen: the device's last-seen time too (one statement on PostgreSQL), a
    # replay included; the other device's is untouched.
    with stores.write() as s:
        assert s.remember_nonce(d1, "m", 500.0, last_seen=at(timedelta(minutes=1))) is True
        assert s.remember_nonce(d1, "m", 501.0, last_seen=at(timedelta(minutes=2))) is False
    with stores.read() as s:
        assert s.device_row(d1)["last_seen_at"] == at(timedelta(minutes=2))
        assert s.device_row(d2)["last_seen_at"] is None
    assert len(stores.rows("SELECT * FROM nonces WHERE nonce = 'm'")) == 1


def test_store_lease_with_the_backlog_in_one_update(stores: Stores) -> None:
    _, (d1, d2) = _two_devices(stores)
    with stores.write() as s:
        s.set_device_backlog(d2, 9, at(timedelta(hours=-1)))
        s.set_lease(d1, 2, b"\x03" * 32, None, at(), at(timedelta(hours=72)),
                    at(timedelta(days=30)), backlog=(5, at(timedelta(hours=-2))))
        s.set_lease(d2, 4, b"\x04" * 32, None, at(), at(timedelta(hours=72)),
                    at(timedelta(days=30)))  # no backlog given: the last report stands
    with stores.read() as s:
        one, two = s.device_row(d1), s.device_row(d2)
    assert (one["lease_epoch"], one["lease_secret"], one["unsynced_ops"],
            one["oldest_unsynced_at"]) == (2, b"\x03" * 32, 5, at(timedelta(hours=-2)))
    assert (two["lease_epoch"], two["unsynced_ops"], two["oldest_unsynced_at"]) == (
        4, 9, at(timedelta(hours=-1)))


def test_store_hr_tokens(stores: Stores) -> None:
    with stores.write() as s:
        s.insert_hr_token("hash1", "workday", at())
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_hr_token("hash1", "again", at())
    with stores.read() as s:
        assert s.hr_token("hash1") == {"token_hash": "hash1", "name": "workday", "created_at": at()}
        assert s.hr_token("nope") is None
    stores.raw("UPDATE hr_tokens SET revoked_at=? WHERE token_hash=?", (at(), "hash1"))
    with stores.read() as s:
        assert s.hr_token("hash1") is None  # a revoked token is no token


def test_store_unused_ids_are_fine(stores: Stores) -> None:
    """Updates of unknown rows change nothing and raise nothing."""
    with stores.write() as s:
        s.set_rep_active("nobody", False)
        s.set_device_seen("nobody", at())
        s.use_enroll_code(new_id(), "dev", at())
    with stores.read() as s:
        assert s.counts()["reps"] == 0
