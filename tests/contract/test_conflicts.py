"""Conflicts: a rep's edit against a card changed by someone else since the rep's base."""

from __future__ import annotations

from datetime import timedelta

import orjson

from schema.models import CustomerPatch

from ..harness import customer_update
from .kit import Ctx, Stores, assert_types, at, customer_row


def test_same_field_changed_on_both_sides_is_a_conflict_kept_for_review(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a, "Acme")
    ctx.archive.edit_customer(cust["id"], CustomerPatch(phone="0755-1111"), "office")
    ctx.clock.advance(timedelta(minutes=1))
    (result,) = ctx.push(ctx.a, customer_update(cust["id"], base_rev=1, phone="0755-2222",
                                                notes="met the buyer"))
    assert result.status == "conflict" and result.conflicts == ["phone"]
    card = ctx.archive.get_customer(cust["id"])
    assert (card["phone"], card["notes"], card["rev"]) == ("0755-1111", "met the buyer", 3)
    (conflict,) = ctx.archive.conflicts()
    assert (conflict["field"], conflict["server_value"], conflict["rep_value"]) == (
        "phone", "0755-1111", "0755-2222")
    assert (conflict["customer_name"], conflict["card_no"], conflict["rep_id"]) == (
        "Acme", cust["card_no"], ctx.a.rep_id)
    assert (conflict["base_rev"], conflict["rev"], conflict["at"]) == (1, 3, at(timedelta(minutes=1)))


def test_different_fields_merge_without_conflict(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.archive.edit_customer(cust["id"], CustomerPatch(notes="office note"), "office")
    (result,) = ctx.push(ctx.a, customer_update(cust["id"], base_rev=1, phone="0755-2222"))
    assert result.status == "merged" and result.rev == 3
    card = ctx.archive.get_customer(cust["id"])
    assert (card["notes"], card["phone"]) == ("office note", "0755-2222")
    assert ctx.archive.conflicts() == []


def test_a_reps_own_earlier_edit_is_not_a_conflict(ctx: Ctx) -> None:
    cust = ctx.customer(ctx.a)
    ctx.push(ctx.a, customer_update(cust["id"], base_rev=1, phone="1"))
    (result,) = ctx.push(ctx.a, customer_update(cust["id"], base_rev=1, phone="2"))
    assert result.status in ("accepted", "merged") and result.conflicts == []
    assert ctx.archive.get_customer(cust["id"])["phone"] == "2"


def test_store_conflicts(stores: Stores) -> None:
    c1, c2 = customer_row("FV000001", None, "One"), customer_row("FV000002", None, "Two")
    with stores.write() as s:
        s.insert_customer(c1)
        s.insert_customer(c2)
        for cust, field, server, rep in ((c2, "phone", "1", "2"), (c1, "notes", None, ["x", 1])):
            s.insert_conflict({
                "customer_id": cust["id"], "field": field, "server_value": orjson.dumps(server).decode(),
                "rep_value": orjson.dumps(rep).decode(), "base_rev": 1, "rev": 2, "rep_id": "rep_a",
                "device_id": "dev_1", "op_id": "op_" + field, "at": at()})
    with stores.read() as s:
        rows = s.conflicts()
        assert [(r["card_no"], r["customer_name"], r["field"]) for r in rows] == [
            ("FV000002", "Two", "phone"), ("FV000001", "One", "notes")]  # oldest first
        assert (rows[1]["server_value"], rows[1]["rep_value"]) == (None, ["x", 1])  # decoded
        assert rows[0]["resolved_at"] is None
        assert_types(rows[0], ints=("id", "base_rev", "rev"), strs=("field", "at", "op_id"))
        assert [r["field"] for r in s.conflicts(limit=1)] == ["phone"]
        assert s.counts()["conflicts"] == 2
