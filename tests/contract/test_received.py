"""Push batches stored first and applied after their answer (rules/received.py): stored
whole or not at all, applied in each device's order exactly once, judged at the time
they were received, their verdicts as a push would have answered."""

from __future__ import annotations

from datetime import timedelta

import orjson

from schema.enums import OpStatus
from schema.models import PushRequest

from ..harness import customer_update, new_id
from .kit import Ctx, Stores, assert_types, at, enroll_device, ops, visit_create


def receive(ctx: Ctx, device: object, *wire: dict[str, object]) -> list[dict[str, object]]:
    body = orjson.dumps({"ops": list(wire), "defer": True})
    batch = PushRequest.model_validate_json(body, strict=True)
    return ctx.archive.receive(device, list(batch.ops), body.decode())  # type: ignore[arg-type]


def apply_all(ctx: Ctx) -> int:
    applied = 0
    for _ in range(100):
        n = ctx.archive.apply_received()
        if not n:
            return applied
        applied += n
    raise AssertionError("stored batches did not drain")


def test_a_stored_batch_is_answered_received_and_changes_nothing_until_applied(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visits = [visit_create(cust["id"]) for _ in range(3)]
    counts = ctx.archive.counts()
    stored = receive(ctx, ctx.a, *visits)
    assert [r["status"] for r in stored] == ["received"] * 3
    assert [r["op_id"] for r in stored] == [v["op_id"] for v in visits]
    assert ctx.archive.counts() == counts
    assert ctx.archive.list_visits(customer=cust["id"]) == []
    backlog = ctx.archive.received_backlog()
    assert backlog["batches"] == 1 and backlog["ops"] == 3 and backlog["oldest_at"] == at()
    # The device's next batch may go: its turn is the stored seq.
    assert ctx.archive.list_devices("Rep A")[0]["last_seq"] == max(v["seq"] for v in visits)
    asked = [(v["op_id"], v["seq"]) for v in visits]
    results, pending, unknown, epoch = ctx.archive.verdicts(ctx.a, asked)
    assert (results, pending, unknown) == ([], [v["op_id"] for v in visits], [])
    assert epoch

    assert apply_all(ctx) == 3
    assert ctx.archive.received_backlog() == {"batches": 0, "ops": 0, "oldest_at": None,
                                              "newest_at": None}
    assert len(ctx.archive.list_visits(customer=cust["id"])) == 3
    results, pending, unknown, _ = ctx.archive.verdicts(ctx.a, asked)
    assert (pending, unknown) == ([], [])
    assert [r.status for r in results] == [OpStatus.accepted] * 3
    for r in results:  # the visit as the archive holds it, as a push's answer carries it
        assert r.record is not None and r.record["id"] == r.entity_id and r.record["rev"] == 1


def test_batches_apply_in_each_devices_order_and_exactly_once(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], summary="first")
    edit = {"op_id": new_id(), "seq": visit["seq"] + 1, "kind": "visit.update",
            "entity_id": visit["entity_id"], "base_rev": 1, "at": at(),
            "data": {"summary": "corrected"}}
    receive(ctx, ctx.a, visit)
    receive(ctx, ctx.a, edit)
    receive(ctx, ctx.a, visit)  # a batch sent again (its answer was lost)
    assert apply_all(ctx) == 3
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert row["summary"] == "corrected" and row["rev"] == 2
    applied = ctx.archive.applied_ops(ctx.a.id)
    assert [a["op_id"] for a in applied] == [visit["op_id"], edit["op_id"]]


def test_a_batch_applied_at_once_waits_for_the_devices_stored_ones(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], summary="stored")
    receive(ctx, ctx.a, visit)
    edit = {"op_id": new_id(), "seq": visit["seq"] + 1, "kind": "visit.update",
            "entity_id": visit["entity_id"], "base_rev": 1, "at": at(),
            "data": {"summary": "edited at once"}}
    (result,) = ctx.push(ctx.a, edit)
    # Without the stored create applied first, the edit would name an unknown visit.
    assert result.status == OpStatus.accepted and result.rev == 2
    assert ctx.archive.received_backlog()["batches"] == 0
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert row["summary"] == "edited at once"


def test_a_stored_batch_is_judged_at_the_time_it_was_received(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    visit = visit_create(cust["id"], started_at=at(timedelta(minutes=1)))
    ctx.clock.advance(timedelta(minutes=1))
    receive(ctx, ctx.a, visit)
    # The card goes to rep B before the batch is applied: the visit was made while
    # rep A owned it, and the archive received it then.
    ctx.clock.advance(timedelta(hours=2))
    ctx.archive.assign(cust["id"], ctx.b.rep_id, "rotation", "admin")
    apply_all(ctx)
    (row,) = ctx.archive.list_visits(customer=cust["id"])
    assert row["rep_id"] == ctx.a.rep_id and row["created_at"] <= row["updated_at"]
    assert row["updated_at"] == at(timedelta(minutes=1))
    results, _, _, _ = ctx.archive.verdicts(ctx.a, [(visit["op_id"], visit["seq"])])
    assert results[0].status == OpStatus.accepted


def test_verdicts_of_quarantined_refused_and_unknown_ops(ctx: Ctx) -> None:
    theirs = ctx.customer(ctx.b)
    held = visit_create(theirs["id"])  # not rep A's customer: held for review
    refused = customer_update(new_id(), notes="no such card")
    lost = visit_create(theirs["id"])  # never stored (an archive restored since)
    used = visit_create(theirs["id"])
    ctx.push(ctx.b, used)
    stolen = {**visit_create(theirs["id"]), "op_id": used["op_id"]}
    receive(ctx, ctx.a, held, refused, stolen)
    apply_all(ctx)
    results, pending, unknown, _ = ctx.archive.verdicts(
        ctx.a, [(o["op_id"], o["seq"]) for o in (held, refused, stolen, lost)])
    by_id = {r.op_id: r for r in results}
    assert by_id[held["op_id"]].status == OpStatus.quarantined
    assert by_id[refused["op_id"]].status == OpStatus.rejected
    assert by_id[stolen["op_id"]].status == OpStatus.rejected
    assert by_id[stolen["op_id"]].reason == "op_id already used"
    assert (pending, unknown) == ([], [lost["op_id"]])
    assert len(ctx.archive.quarantine()) == 1


def test_a_revoked_devices_final_flush_applies_its_stored_batches_first(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    stored, late = visit_create(cust["id"]), visit_create(cust["id"])
    receive(ctx, ctx.a, stored)
    ctx.clock.advance(timedelta(hours=1))
    ctx.archive.revoke("Rep A", "left the company")
    device = ctx.archive.get_device(ctx.a.id)
    assert device is not None and device.state == "revoked"
    results, _ = ctx.archive.final_flush(device, ops(late))
    assert results[0].status == OpStatus.quarantined
    # Received while the device was active, the stored visit counts as any other.
    assert [v["id"] for v in ctx.archive.list_visits(customer=cust["id"])] == [stored["entity_id"]]
    assert ctx.archive.received_backlog()["batches"] == 0


def test_pool_jobs_count_stored_visits(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    receive(ctx, ctx.a, visit_create(cust["id"]))
    out = ctx.archive.run_jobs()
    assert ctx.archive.received_backlog()["batches"] == 0, out
    assert len(ctx.archive.list_visits(customer=cust["id"])) == 1


# --- the store ------------------------------------------------------------------------


def test_store_received_rows(stores: Stores) -> None:
    archive = stores.archive
    for name in ("Rep R", "Rep S"):
        archive.add_rep(name)
    r, s_ = enroll_device(archive, "Rep R"), enroll_device(archive, "Rep S")
    with stores.write() as s:
        first = s.insert_received(r.id, 1, 3, 3, '{"ops": []}', at())
        second = s.insert_received(s_.id, 1, 1, 1, "{}", at(timedelta(seconds=1)))
        third = s.insert_received(r.id, 4, 9, 6, "{}", at(timedelta(seconds=2)))
        assert first < second < third
    with stores.read() as s:
        oldest = s.oldest_received()
        assert oldest is not None and oldest["id"] == first and oldest["body"] == '{"ops": []}'
        assert_types(oldest, ints=("id", "first_seq", "last_seq", "op_count"),
                     strs=("device_id", "body", "received_at"))
        assert [row["id"] for row in s.received_of(r.id)] == [first, third]
        assert s.received_ranges(r.id) == [(1, 3), (4, 9)]
        assert s.received_ranges("nobody") == []
        assert s.received_backlog() == {"batches": 3, "ops": 10, "oldest_at": at(),
                                        "newest_at": at(timedelta(seconds=2))}
    with stores.write() as s:
        s.delete_received(first)
        s.delete_received(first)  # gone already: nothing
    with stores.read() as s:
        oldest = s.oldest_received()
        assert oldest is not None and oldest["id"] == second
        assert s.received_backlog()["ops"] == 7
