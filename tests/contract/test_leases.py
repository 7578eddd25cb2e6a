"""Leases and policy: how long a laptop may work without checking in."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from server.archive.errors import ArchiveError, Forbidden

from .kit import Ctx, Stores, at


def test_default_policy_and_its_changes(ctx: Ctx) -> None:
    assert ctx.archive.policy() == {"offline_block_hours": 72.0, "offline_wipe_days": 30.0,
                                    "require_pin": False, "timezone": "UTC"}
    new = ctx.archive.set_policy(24, None, True, by="security")
    assert new == {"offline_block_hours": 24.0, "offline_wipe_days": 30.0, "require_pin": True,
                   "timezone": "UTC"}
    assert ctx.archive.policy() == new
    assert ctx.archive.audit_entries()[-1]["action"] == "policy.set"
    for block, wipe in ((0, None), (24 * 366, None), (None, 0), (None, 3651), (48, 1)):
        with pytest.raises(ArchiveError) as err:
            ctx.archive.set_policy(block, wipe, None)
        assert err.value.code == "invalid_policy"
    assert ctx.archive.policy() == new  # a refused change writes nothing


def test_leases_advance_by_epoch_and_hand_back_the_wrapping_secret(ctx: Ctx) -> None:
    first = ctx.archive.issue_lease(ctx.a.id, None)
    lease = first["lease"]
    assert (lease["epoch"], lease["issued_at"], first["unwrap"]) == (1, at(), None)
    assert (lease["block_at"], lease["wipe_at"]) == (at(timedelta(hours=72)), at(timedelta(days=30)))
    assert len(base64.b64decode(lease["secret"] + "==")) == 32
    ctx.clock.advance(timedelta(hours=1))
    second = ctx.archive.issue_lease(ctx.a.id, 1)
    assert second["lease"]["epoch"] == 2 and second["unwrap"]["secret"] == lease["secret"]
    # the answer to epoch 3 is lost: asking again from 2 re-issues 3 over epoch 2's secret
    lost = ctx.archive.issue_lease(ctx.a.id, 2)
    retry = ctx.archive.issue_lease(ctx.a.id, 2)
    assert lost["lease"]["epoch"] == retry["lease"]["epoch"] == 3
    assert retry["unwrap"]["secret"] == second["lease"]["secret"]
    assert lost["lease"]["secret"] != retry["lease"]["secret"]
    # a device ahead of a restored archive goes on from its own epoch
    ahead = ctx.archive.issue_lease(ctx.a.id, 9)
    assert ahead["lease"]["epoch"] == 10 and ahead["unwrap"] is None
    row = ctx.archive.list_devices("Rep A")[0]
    assert (row["lease_epoch"], row["lease_issued_at"]) == (10, at(timedelta(hours=1)))


def test_a_revoked_device_gets_no_lease(ctx: Ctx) -> None:
    ctx.archive.issue_lease(ctx.a.id, None)
    ctx.archive.revoke("Rep A", "left")
    with pytest.raises(Forbidden):
        ctx.archive.issue_lease(ctx.a.id, 1)
    with pytest.raises(Forbidden):
        ctx.archive.issue_lease("dev_unknown", None)
    assert ctx.archive.issue_lease(ctx.b.id, None)["lease"]["epoch"] == 1


def test_store_meta_is_an_idempotent_upsert(stores: Stores) -> None:
    with stores.read() as s:
        assert s.meta("offline_block_hours") == "72"  # migrated default
        assert s.meta("nothing") is None
    with stores.write() as s:
        s.set_meta("k", "1")
        s.set_meta("k", "2")
        s.set_meta("k", "2")
    with stores.read() as s:
        assert s.meta("k") == "2"
    assert stores.rows("SELECT count(*) AS n FROM meta WHERE key='k'") == [{"n": 1}]


def test_concurrent_check_ins_of_one_device_never_lose_a_lease(ctx: Ctx, stores: Stores) -> None:
    """Leases are written outside the serial queue (every sync checks in), with the
    device's row locked while it is read and rewritten: two check-ins at once take
    distinct epochs, and the secret kept is the one of the lease with the highest."""
    import threading

    n = 6
    for _round in range(3):
        barrier = threading.Barrier(n)
        got: list[dict[str, object]] = []

        def check_in() -> None:
            barrier.wait(timeout=10)
            got.append(ctx.archive.issue_lease(ctx.a.id, None)["lease"])

        threads = [threading.Thread(target=check_in) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        epochs = sorted(int(str(lease["epoch"])) for lease in got)
        assert len(got) == n and epochs == list(range(epochs[0], epochs[0] + n)), got
        newest = max(got, key=lambda lease: int(str(lease["epoch"])))
        with stores.read() as s:
            row = s.device_row(ctx.a.id)
        assert row is not None and row["lease_epoch"] == epochs[-1]
        assert base64.b64encode(bytes(row["lease_secret"])).decode().rstrip("=") == \
            str(newest["secret"]).rstrip("=")
